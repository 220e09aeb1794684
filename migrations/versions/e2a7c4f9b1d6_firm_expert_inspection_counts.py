"""firm_count, expert_count, inspection_count: the dashboard's cards from counts kept on write (issue 18)

The dashboard counted the firms of the user's library by status, the experts of its pool and the inspections of
its tree by status: for the region's admin a scan of every firm, expert and inspection (6,000 experts at twice
province scale took 1.2 ms of the count statement's 3.4 ms), growing with the province and its history. Each
bureau's number per status is now kept in these tables, recounted from the rows for each bureau a transaction
touched just before it commits (registry.counts, supervision.services.INSPECTIONS), and filled here from the
existing rows.

Revision ID: e2a7c4f9b1d6
Revises: d4b8e1f6a3c9
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = 'e2a7c4f9b1d6'
down_revision = 'd4b8e1f6a3c9'
branch_labels = None
depends_on = None

# what core.summaries recounts, for every bureau and status (the same on SQLite and PostgreSQL)
FILL_SQL = {table: f"INSERT INTO {table} (bureau_id, status, n) "
                   f"SELECT bureau_id, status, count(*) FROM {source} GROUP BY bureau_id, status"
            for table, source in {"firm_count": "firm", "expert_count": "expert", "inspection_count": "inspection"}.items()}


def upgrade():
    for table, fill in FILL_SQL.items():
        op.create_table(table,
        sa.Column('bureau_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f(f'fk_{table}_bureau_id_bureau')),
        sa.PrimaryKeyConstraint('bureau_id', 'status', name=op.f(f'pk_{table}'))
        )
        op.execute(fill)


def downgrade():
    for table in FILL_SQL:
        op.drop_table(table)
