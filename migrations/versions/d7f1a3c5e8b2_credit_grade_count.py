"""credit_grade_count: the dashboard's grade chart from counts kept on write; the watch-list probe indexed (issue 18)

The dashboard counted every published or final rated rating in scope by (year, grade): at province scale 2x
(9,000 ratings, the region's admin) 6 ms of a 21 ms page, doubling with the history. The counts per
(bureau, year, grade) are now kept in credit_grade_count, recounted from credit_rating for each (bureau, year) a
transaction touched just before it commits (credit.services), and filled here from the existing ratings. The
dashboard's "any rating on the watch list?" probe scanned every rating in scope when none is: a partial index
over the watched rows answers it.

Revision ID: d7f1a3c5e8b2
Revises: c4e8a2f6d1b3
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = 'd7f1a3c5e8b2'
down_revision = 'c4e8a2f6d1b3'
branch_labels = None
depends_on = None

# what credit.services.recount_grades counts, for every (bureau, year) (the same on SQLite and PostgreSQL)
FILL_SQL = """
    INSERT INTO credit_grade_count (bureau_id, year, grade, n)
    SELECT bureau_id, year, grade, count(*) FROM credit_rating
    WHERE status IN ('published', 'final') AND rated AND grade IS NOT NULL
    GROUP BY bureau_id, year, grade
"""


def upgrade():
    op.create_table('credit_grade_count',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('grade', sa.Enum('A', 'B', 'C', 'D', name='creditgrade', native_enum=False, length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_credit_grade_count_bureau_id_bureau')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_grade_count')),
    sa.UniqueConstraint('bureau_id', 'year', 'grade', name=op.f('uq_credit_grade_count_bureau_id_year_grade'))
    )
    op.execute(FILL_SQL)

    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.create_index('ix_credit_rating_watched', ['bureau_id'], unique=False,
                              postgresql_where=sa.text('watch_list IS true'),
                              sqlite_where=sa.text('watch_list IS 1'))


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_rating_watched')

    op.drop_table('credit_grade_count')
