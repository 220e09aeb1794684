"""user_account: a login name unique whatever its case, held by the database (a unique index on lower(username))

Written by hand. core/accounts.py ``username_problem`` checked lower(username) with a SELECT before the insert, so
two accounts opened at the same moment as "KRL.Wang" and "krl.wang" were both written. The index makes the second
insert fail (answered 409 by core/concurrency.py), and serves sign-in and 忘记密码, which now find the name
whatever its case. An expression index: SQLite (3.9+) and PostgreSQL alike. Fails on a database that already
holds two names differing only in case — rename one first (they cannot both be told apart in the log anyway).

Revision ID: f2a4b6c8d0e3
Revises: e1f3a5c7b9d2
Create Date: 2026-12-07 09:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2a4b6c8d0e3'
down_revision = 'e1f3a5c7b9d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('uq_user_account_username_lower', 'user_account', [sa.text('lower(username)')], unique=True)


def downgrade():
    op.drop_index('uq_user_account_username_lower', table_name='user_account')
