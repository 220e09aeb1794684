"""firm: an index in the firm list's order (issue 18)

The firm list shows the newest applications first (applied_at DESC, id DESC). Without an index in that order
PostgreSQL read every firm in the user's scope and sorted it for each page, so the page grew with the
registry; with ix_firm_applied it walks the index backwards and stops after the page's rows.

Revision ID: f3b9d2c5a7e1
Revises: e2a7c4f9b1d6
Create Date: 2026-12-06
"""
from alembic import op

revision = 'f3b9d2c5a7e1'
down_revision = 'e2a7c4f9b1d6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('firm', schema=None) as batch_op:
        batch_op.create_index('ix_firm_applied', ['applied_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('firm', schema=None) as batch_op:
        batch_op.drop_index('ix_firm_applied')
