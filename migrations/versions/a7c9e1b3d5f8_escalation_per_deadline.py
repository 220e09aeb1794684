"""results: escalations per deadline, the bureau's verification time excused, reopened rows without a decision

Written by hand. Three changes to the rectification loop:

- result_finding_escalation.deadline: the deadline an escalation was about, and each level is recorded once per
  deadline (unique finding, deadline, level) instead of once per finding, so a new deadline set when the bureau
  returns a row is reminded again when it passes. Existing rows take the deadline their note names ("整改期限
  YYYY-MM-DD", the text escalate_overdue has always written), else their finding's present deadline.
- result_finding.late_from: the day a row's delay counts from when it is not its deadline — the deadline moved on
  by the working days the row waited past it on the bureau's verification (not the unit's delay). Existing rows
  have none (their earlier rounds are not recounted): they count from their deadline, as before.
- application_entry rows reopened by a changed result kept the old decision beside "（未确认）"; the measures,
  reduction and reason of every unconfirmed row are cleared (the application.reopened audit event keeps them).

The downgrade drops the two columns and goes back to one level per finding, keeping the earliest row of each
(finding, level); the cleared decisions are not restored.

Revision ID: a7c9e1b3d5f8
Revises: e5f7a9b1c3d6
Create Date: 2026-12-07
"""
import re
from datetime import date

from alembic import op
import sqlalchemy as sa

revision = 'a7c9e1b3d5f8'
down_revision = 'e5f7a9b1c3d6'
branch_labels = None
depends_on = None

_escalation = sa.table('result_finding_escalation', sa.column('id', sa.Integer), sa.column('finding_id', sa.Integer),
                       sa.column('level', sa.String), sa.column('note', sa.String), sa.column('on_date', sa.Date),
                       sa.column('deadline', sa.Date))
_finding = sa.table('result_finding', sa.column('id', sa.Integer), sa.column('deadline', sa.Date))
_entry = sa.table('application_entry', sa.column('confirmed_at', sa.DateTime), sa.column('measures', sa.JSON),
                  sa.column('cut_percent', sa.Numeric), sa.column('cut_amount', sa.Numeric), sa.column('reason', sa.Text))
_NAMED = re.compile(r"整改期限 (\d{4}-\d{2}-\d{2})")


def upgrade():
    with op.batch_alter_table('result_finding', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_from', sa.Date(), nullable=True))
    with op.batch_alter_table('result_finding_escalation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline', sa.Date(), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(sa.select(_escalation.c.id, _escalation.c.note, _escalation.c.on_date, _finding.c.deadline)
                        .join(_finding, _finding.c.id == _escalation.c.finding_id)).all()
    for escalation_id, note, on_date, current in rows:
        named = _NAMED.search(note or "")
        deadline = date.fromisoformat(named.group(1)) if named else (current or on_date)
        bind.execute(sa.update(_escalation).where(_escalation.c.id == escalation_id).values(deadline=deadline))
    bind.execute(sa.update(_entry).where(_entry.c.confirmed_at.is_(None)).values(
        measures=sa.null(), cut_percent=None, cut_amount=None, reason=None))

    with op.batch_alter_table('result_finding_escalation', schema=None) as batch_op:
        batch_op.alter_column('deadline', existing_type=sa.Date(), nullable=False)
        batch_op.drop_constraint('uq_result_finding_escalation_finding_id_level', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_result_finding_escalation_finding_id_deadline_level'),
                                          ['finding_id', 'deadline', 'level'])


def downgrade():
    bind = op.get_bind()
    kept = sa.select(sa.func.min(_escalation.c.id)).group_by(_escalation.c.finding_id, _escalation.c.level)
    bind.execute(sa.delete(_escalation).where(_escalation.c.id.not_in(kept)))
    with op.batch_alter_table('result_finding_escalation', schema=None) as batch_op:
        batch_op.drop_constraint('uq_result_finding_escalation_finding_id_deadline_level', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_result_finding_escalation_finding_id_level'),
                                          ['finding_id', 'level'])
        batch_op.drop_column('deadline')
    with op.batch_alter_table('result_finding', schema=None) as batch_op:
        batch_op.drop_column('late_from')
