"""Stored deadlines keep what they were counted with, so a calendar correction can recount them

Written by hand. A deadline computed from the working-day calendar once and stored (a challenge period, the answer
owed to a challenge or an objection, a firm's objection period, an evaluated unit's fact-confirmation period) is
recomputed when a bureau corrects its calendar while it is still open (core/calendar.py ``correct``). Its start is
on the row already (the publication, filing or sending date); its length came from a bureau setting that may have
changed since, so the number of working days it was counted with is kept:

- result_notice.challenge_workdays, procurement_challenge.answer_workdays, credit_objection.answer_workdays,
  fact_confirmation.due_workdays: the working days counted;
- credit_rating.objection_from, objection_workdays: a republication may keep the longer window already announced
  while its published_at moves, so the window's own start is kept beside its count.

All nullable and left NULL for existing rows: their count is derived, when a correction needs it, from the stored
start and end on the calendar as it stood before the correction — the calendar they were computed on.

Revision ID: a4c6e8f0b2d4
Revises: f7ed976cf8e2
Create Date: 2026-12-07 14:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a4c6e8f0b2d4'
down_revision = 'f7ed976cf8e2'
branch_labels = None
depends_on = None

_COUNTS = (('result_notice', 'challenge_workdays'), ('procurement_challenge', 'answer_workdays'),
           ('credit_objection', 'answer_workdays'), ('fact_confirmation', 'due_workdays'),
           ('credit_rating', 'objection_workdays'))


def upgrade():
    for table, column in _COUNTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=True))
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.add_column(sa.Column('objection_from', sa.Date(), nullable=True))


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_column('objection_from')
    for table, column in reversed(_COUNTS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)
