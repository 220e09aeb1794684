"""session generation: a per-user counter that ends every browser session at once (issue 11, sessions)

Written by hand. One column on user_account; existing accounts start at 1, so sessions signed in before
the upgrade (whose id carries no generation) are refused once and their users sign in again.

Revision ID: d5e2a7c93b10
Revises: c1a0d17c4e01
Create Date: 2026-11-24 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5e2a7c93b10'
down_revision = 'c1a0d17c4e01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('user_account', sa.Column('session_generation', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    op.drop_column('user_account', 'session_generation')
