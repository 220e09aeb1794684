"""result_finding.deadline_from, deadline_days: a finding's default rectification deadline keeps what it was counted with

Written by hand. A finding's rectification deadline is either a date the bureau chose (entered on the row, or set
anew when it returns the row) or, left empty, the bureau's default: ``results.rectification_days`` calendar days from
the confirmation day, the last day rolled to a working day (民法典 第二百零三条, results/services.py
``confirm_findings``). Nothing said which, so a calendar correction could not roll the default again without moving
a chosen date too. Kept now, beside the deadline (as credit_rating.objection_from / objection_workdays, a4c6e8f0b2d4):

- result_finding.deadline_from: the confirmation day the default counts from;
- result_finding.deadline_days: the calendar days it was counted with (the setting may change later).

Both NULL for a chosen date, and left NULL for existing rows: whether an existing deadline was the default cannot be
told from the row (a chosen date may equal it, the setting may have changed since), and a chosen date must never
move. Such a row keeps its deadline through a correction, as before; what that costs is at most the roll of a last
day on a holiday entered after its confirmation, for rows confirmed before this release.

Revision ID: 9689ba5996fb
Revises: d2f4a6c8e0b1
Create Date: 2026-12-07 17:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9689ba5996fb'
down_revision = 'd2f4a6c8e0b1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('result_finding', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_from', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('deadline_days', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('result_finding', schema=None) as batch_op:
        batch_op.drop_column('deadline_days')
        batch_op.drop_column('deadline_from')
