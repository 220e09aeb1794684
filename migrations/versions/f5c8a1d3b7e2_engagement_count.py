"""engagement_count: the engagement list's total from counts kept on write (issue 18)

The unfiltered engagement list (web and API) counted every engagement in the user's scope for its total: an
index-only scan over the whole history (province scale, the region's admin: 1.7 ms at 1x, 3.5 ms at 2x). Each
bureau's number of engagements is now kept in engagement_count, recounted from engagement for each bureau a
transaction touched just before it commits (procurement.counts), and filled here from the existing engagements.

Revision ID: f5c8a1d3b7e2
Revises: d7f1a3c5e8b2
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = 'f5c8a1d3b7e2'
down_revision = 'd7f1a3c5e8b2'
branch_labels = None
depends_on = None

# what procurement.counts.recount counts, for every bureau (the same on SQLite and PostgreSQL)
FILL_SQL = """
    INSERT INTO engagement_count (bureau_id, n)
    SELECT bureau_id, count(*) FROM engagement GROUP BY bureau_id
"""


def upgrade():
    op.create_table('engagement_count',
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_engagement_count_bureau_id_bureau')),
    sa.PrimaryKeyConstraint('bureau_id', name=op.f('pk_engagement_count'))
    )
    op.execute(FILL_SQL)


def downgrade():
    op.drop_table('engagement_count')
