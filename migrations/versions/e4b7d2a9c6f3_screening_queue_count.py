"""screening_queue_count: the queue's length per (year, kind, bureau) kept on write; the queue's order indexed (issue 18)

The screening queue ranked every screening of the year in scope to show a page of 20 and counted them all for
its totals: at province scale the region's queue (/screening/queue?year=2025) cost 14.0 ms at 1x and 16.1 ms
at 2x. The page now walks ix_report_screening_ranking (year, kind, risk DESC, id) and stops at the page's last
row, and reads the number of texts in the queue per (year, kind, bureau) from screening_queue_count,
recounted from report_screening for each (year, kind) a transaction touched just before it commits
(screening.services), and filled here from the existing screenings. ix_report_screening_year_kind stays: a
whole year read in risk order would visit its rows scattered over the table.

Revision ID: e4b7d2a9c6f3
Revises: f5c8a1d3b7e2
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = 'e4b7d2a9c6f3'
down_revision = 'f5c8a1d3b7e2'
branch_labels = None
depends_on = None

# what screening.services.QUEUE_COUNTS counts, for every (year, kind): the latest screened version of each
# engagement's text of a kind in a year, per bureau (the same on SQLite and PostgreSQL)
FILL_SQL = """
    INSERT INTO screening_queue_count (year, kind, bureau_id, n)
    SELECT rs.year, rs.kind, rs.bureau_id, count(*) FROM report_screening AS rs
    WHERE NOT EXISTS (SELECT 1 FROM report_screening AS later
                      WHERE later.engagement_id = rs.engagement_id AND later.kind = rs.kind
                        AND later.year = rs.year AND later.submission_id > rs.submission_id)
    GROUP BY rs.year, rs.kind, rs.bureau_id
"""


def upgrade():
    op.create_table('screening_queue_count',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('work_plan', 'report', 'self_evaluation', name='submissionkind', native_enum=False, length=32), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_screening_queue_count_bureau_id_bureau')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_screening_queue_count')),
    sa.UniqueConstraint('year', 'kind', 'bureau_id', name=op.f('uq_screening_queue_count_year_kind_bureau_id'))
    )
    op.execute(FILL_SQL)

    with op.batch_alter_table('report_screening', schema=None) as batch_op:
        batch_op.create_index('ix_report_screening_ranking', ['year', 'kind', sa.text('risk DESC'), 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('report_screening', schema=None) as batch_op:
        batch_op.drop_index('ix_report_screening_ranking')

    op.drop_table('screening_queue_count')
