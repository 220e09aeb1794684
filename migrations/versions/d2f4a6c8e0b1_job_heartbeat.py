"""job.heartbeat_at: a running job's last sign of life, for the reaper

Written by hand. The reaper failed a job still running six hours after it started: a job whose worker died showed
运行中 for up to seven hours (its workbook, identity numbers in clear, kept in the file store meanwhile), and a
job still at work past six hours would have been failed under its worker. A running job now moves heartbeat_at
every five minutes (core/jobs.py ``_Heartbeat``) and at each progress report; the reaper fails one whose heartbeat
is thirty minutes old. Existing rows stay NULL: a job running at the upgrade counts from its start (its worker is
restarted with the release anyway). No index: the reaper reads the running jobs, a handful.

Revision ID: d2f4a6c8e0b1
Revises: c1365a838aba
Create Date: 2026-12-07 17:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd2f4a6c8e0b1'
down_revision = 'c1365a838aba'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
