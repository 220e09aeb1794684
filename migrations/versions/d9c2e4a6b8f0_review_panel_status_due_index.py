"""review_panel (status, review_due): the overdue-review panels by index (issue 18)

The dashboards list open panels past their review deadline; at province scale PostgreSQL scanned all
~37,000 panels for it on every request (9–11 ms).

Revision ID: d9c2e4a6b8f0
Revises: d8b5e1f3a7c9
Create Date: 2026-12-05
"""
from alembic import op

revision = 'd9c2e4a6b8f0'
down_revision = 'd8b5e1f3a7c9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('review_panel', schema=None) as batch_op:
        batch_op.create_index('ix_review_panel_status_due', ['status', 'review_due'], unique=False)


def downgrade():
    with op.batch_alter_table('review_panel', schema=None) as batch_op:
        batch_op.drop_index('ix_review_panel_status_due')
