"""review reminders keyed with their deadline's date: the stored reminders' keys given theirs

Written by hand; data only, no change of the schema. The review reminders (review/services.py ``send_reminders``:
评审即将到期, 评审已逾期) were stored once per review — notification.dedupe_key "review-due-<review id>" and
"review-overdue-<review id>" — so a review deadline a bureau's calendar correction moved after its reminder went
out was never reminded again. They are now keyed with the deadline's Beijing date, as every other reminder of a
deadline ("review-due-<review id>-YYYY-MM-DD", core/notifications.py ``reminder_key``).

A reminder stored under the old key would not stop the new one for the same, unmoved deadline: the first run
after the upgrade would remind every expert again. So each stored old key is given the date of the deadline it was
sent for: the one its body names ("评审截止时间：北京时间 YYYY-MM-DD HH:MM", the text send_reminders has always
written), else its panel's present review deadline (Beijing date). A deadline moved since its reminder is then
reminded once more for its new date, as after the upgrade. A key whose review is gone is left as it was.

The downgrade gives the old key back to the latest reminder of each person, kind and review (the old code looks
for that key only); earlier dated ones keep theirs, which the old code never reads.

Revision ID: c4e6a8b0d2f4
Revises: a3d5f7b9c1e2
Create Date: 2026-12-09
"""
import re
from datetime import date, timedelta

from alembic import op
import sqlalchemy as sa

revision = 'c4e6a8b0d2f4'
down_revision = 'a3d5f7b9c1e2'
branch_labels = None
depends_on = None

_notification = sa.table('notification', sa.column('id', sa.Integer), sa.column('user_id', sa.Integer),
                         sa.column('dedupe_key', sa.String), sa.column('body', sa.Text))
_review = sa.table('review', sa.column('id', sa.Integer), sa.column('invitation_id', sa.Integer))
_invitation = sa.table('panel_invitation', sa.column('id', sa.Integer), sa.column('panel_id', sa.Integer))
_panel = sa.table('review_panel', sa.column('id', sa.Integer), sa.column('review_due', sa.DateTime))

_OLD = re.compile(r"^review-(due|overdue)-(\d+)$")
_DATED = re.compile(r"^review-(due|overdue)-(\d+)-\d{4}-\d{2}-\d{2}$")
_NAMED = re.compile(r"北京时间 (\d{4}-\d{2}-\d{2})")
BEIJING = timedelta(hours=8)  # UTC+8 all year (no daylight saving since 1991)


def _reminders(bind):
    return bind.execute(sa.select(_notification.c.id, _notification.c.user_id, _notification.c.dedupe_key,
                                  _notification.c.body)
                        .where(_notification.c.dedupe_key.like('review-%')).order_by(_notification.c.id)).all()


def date_review_keys(bind) -> int:
    """Give every review reminder stored under the old key the date of its deadline; returns how many."""
    old = [(row, _OLD.match(row.dedupe_key)) for row in _reminders(bind)]
    old = [(row, match) for row, match in old if match]
    if not old:
        return 0
    review_ids = sorted({int(match.group(2)) for _row, match in old})
    present = {}
    for start in range(0, len(review_ids), 500):
        present.update(bind.execute(
            sa.select(_review.c.id, _panel.c.review_due)
            .join(_invitation, _invitation.c.id == _review.c.invitation_id)
            .join(_panel, _panel.c.id == _invitation.c.panel_id)
            .where(_review.c.id.in_(review_ids[start:start + 500]))).all())
    dated = 0
    for row, match in old:
        named = _NAMED.search(row.body or "")
        due = present.get(int(match.group(2)))
        if named:
            day = date.fromisoformat(named.group(1))
        elif due is not None:
            day = (due + BEIJING).date()
        else:
            continue  # the review is gone: nothing will be reminded of it
        bind.execute(sa.update(_notification).where(_notification.c.id == row.id).values(
            dedupe_key=f"{row.dedupe_key}-{day.isoformat()}"))
        dated += 1
    return dated


def undate_review_keys(bind) -> int:
    """The old key back on the latest dated reminder of each person, kind and review; returns how many."""
    latest = {}
    for row in _reminders(bind):
        match = _DATED.match(row.dedupe_key)
        if match:
            latest[(row.user_id, match.group(1), match.group(2))] = row.id  # ordered by id: the last wins
    for (_user, kind, review_id), note_id in latest.items():
        bind.execute(sa.update(_notification).where(_notification.c.id == note_id).values(
            dedupe_key=f"review-{kind}-{review_id}"))
    return len(latest)


def upgrade():
    date_review_keys(op.get_bind())


def downgrade():
    undate_review_keys(op.get_bind())
