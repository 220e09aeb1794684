"""engagement (year DESC, reference): the engagement lists' order by index (issue 18)

At province scale the region's engagement list joined its five one-row relations to every engagement of the
newest year (~2,000) and sorted them for a page of 20 (12.9 ms by EXPLAIN ANALYZE); with this index the page
reads its rows in order and stops.

Revision ID: dab3f5c7e9a1
Revises: d9c2e4a6b8f0
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = 'dab3f5c7e9a1'
down_revision = 'd9c2e4a6b8f0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.create_index('ix_engagement_list_order', [sa.text('year DESC'), 'reference'], unique=False)


def downgrade():
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.drop_index('ix_engagement_list_order')
