"""user_account: when a pending second-factor enrolment began (totp_begun_at), so that its secret expires

Written by hand. ``totp_begin`` stored the new secret and it stayed confirmable for ever; the secret is shown on the
screen at the begin (QR code and text), so a photograph or screenshot of it could bind a phone weeks later.
core/accounts.py now accepts a confirmation only within TOTP_ENROLMENT_MINUTES (15) of ``totp_begun_at``.

Enrolments pending at the upgrade are of unknown age: their secrets are cleared here (the code treats a pending
secret without a begin time as expired anyway); the administrator begins again. Enabled second factors are not
touched.

Revision ID: a1d3f5b7c9e2
Revises: f2a4b6c8d0e3
Create Date: 2026-12-09 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a1d3f5b7c9e2'
down_revision = 'f2a4b6c8d0e3'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE (SQLite 3.35+ and PostgreSQL), not a batch: SQLite's batch copies the table and would lose
    # the expression index uq_user_account_username_lower, which it cannot reflect.
    op.add_column('user_account', sa.Column('totp_begun_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE user_account SET totp_secret_encrypted = NULL, totp_last_step = NULL"
               " WHERE totp_enabled_at IS NULL AND totp_secret_encrypted IS NOT NULL")


def downgrade():
    op.drop_column('user_account', 'totp_begun_at')
