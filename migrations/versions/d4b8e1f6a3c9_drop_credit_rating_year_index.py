"""credit_rating: drop the plain index on year (issue 18)

ix_credit_rating_ranking (year, rated DESC, total DESC, id) leads with the year and serves every query by year
alone; with the plain index beside it the planner read a prefecture's credit page from the whole year's
ratings, filtered to the prefecture's and sorted (1,000 rows read at 2x province scale for 75 kept), a cost that
grew with every other bureau's ratings. Without it the page reads the prefecture's rows (its bureau-year index)
or walks the ranking and stops after the page.

Revision ID: d4b8e1f6a3c9
Revises: c7a3e5f9d2b4
Create Date: 2026-12-06
"""
from alembic import op

revision = 'd4b8e1f6a3c9'
down_revision = 'c7a3e5f9d2b4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_rating_year')


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.create_index('ix_credit_rating_year', ['year'], unique=False)
