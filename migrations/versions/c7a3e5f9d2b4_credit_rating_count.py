"""credit_rating_count: the credit page's total from counts kept on write (issue 18)

The credit page counted every rating of the year in the user's scope (joined to firms) for its total, a count
that grows with the data (+12..13% from province scale to 2x). Each bureau's number of ratings per year is now
kept in credit_rating_count, recounted from credit_rating for each (bureau, year) a transaction touched just
before it commits (credit.services.RATING_COUNTS), and filled here from the existing ratings.

Revision ID: c7a3e5f9d2b4
Revises: b6e2c9d4f1a7
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = 'c7a3e5f9d2b4'
down_revision = 'b6e2c9d4f1a7'
branch_labels = None
depends_on = None

# what RATING_COUNTS recounts, for every (bureau, year): ratings of every status (the same on SQLite and
# PostgreSQL)
FILL_SQL = """
    INSERT INTO credit_rating_count (bureau_id, year, n)
    SELECT bureau_id, year, count(*) FROM credit_rating GROUP BY bureau_id, year
"""


def upgrade():
    op.create_table('credit_rating_count',
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_credit_rating_count_bureau_id_bureau')),
    sa.PrimaryKeyConstraint('bureau_id', 'year', name=op.f('pk_credit_rating_count'))
    )
    op.execute(FILL_SQL)


def downgrade():
    op.drop_table('credit_rating_count')
