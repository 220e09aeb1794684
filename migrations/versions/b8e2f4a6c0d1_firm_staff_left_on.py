"""firm_staff.left_on: the date a member left the roster, so avoidance counts a 劳动关系 ended within 3 years

Written by hand. One nullable column, then the dates of the members already off their rosters:
- the Beijing date of the audit event that took each off (action "firm.staff_removed", payload staff_id);
- a member off the roster with no such event gets the date of this upgrade: the latest the leaving can have
  been, so the look-back window (expert.tie_years) errs towards avoidance, never away from it.

Revision ID: b8e2f4a6c0d1
Revises: a4d6e8f0b2c1
Create Date: 2026-12-07
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa

revision = 'b8e2f4a6c0d1'
down_revision = 'a4d6e8f0b2c1'
branch_labels = None
depends_on = None

_BEIJING = timedelta(hours=8)  # audit times are naive UTC (core.timeutil.utcnow)


def upgrade():
    with op.batch_alter_table('firm_staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('left_on', sa.Date(), nullable=True))

    backfill(op.get_bind())


def backfill(bind, today=None) -> None:
    """The leaving dates of the members already off their rosters (tests/test_rule_boundaries.py runs it)."""
    staff = sa.table('firm_staff', sa.column('id', sa.Integer), sa.column('active', sa.Boolean),
                     sa.column('left_on', sa.Date))
    events = sa.table('audit_event', sa.column('id', sa.Integer), sa.column('occurred_at', sa.DateTime),
                      sa.column('action', sa.String), sa.column('payload', sa.JSON))
    gone = set(bind.execute(sa.select(staff.c.id).where(staff.c.active.is_(False), staff.c.left_on.is_(None))).scalars())
    if not gone:
        return
    left = {}
    for occurred_at, payload in bind.execute(sa.select(events.c.occurred_at, events.c.payload).where(
            events.c.action == 'firm.staff_removed').order_by(events.c.id)):
        staff_id = (payload or {}).get('staff_id')
        if staff_id in gone:
            left[staff_id] = (occurred_at + _BEIJING).date()  # the last removal, if the member left twice
    today = today or (datetime.now(timezone.utc) + _BEIJING).date()
    for staff_id in sorted(gone):
        bind.execute(sa.update(staff).where(staff.c.id == staff_id).values(left_on=left.get(staff_id, today)))


def downgrade():
    with op.batch_alter_table('firm_staff', schema=None) as batch_op:
        batch_op.drop_column('left_on')
