"""A reminder of a deadline is stored once per deadline date (core/notifications.py ``reminder_key``), and the keys
stored before the upgrade keep their reminders from being sent again.

Every reminder of a deadline keys its inbox row through ``reminder_key``. The results' and procurement's reminders
carried the date already, written by hand: the helper writes the very same strings, so what they stored still
matches and nothing is sent twice. The review's reminders carried none (a review deadline moved after its reminder
was never reminded again: tests/test_review_deadlines_calendar.py); migration c4e6a8b0d2f4 gives the stored ones
the date of the deadline they were sent for, so an unmoved deadline is not reminded again after the upgrade and a
moved one is, once.
"""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from evalhub.core.models import Notification
from evalhub.core.notifications import reminder_key
from evalhub.core.timeutil import simulated_clock
from evalhub.extensions import db
from evalhub.review import services as R
from tests.migration_files import load
from tests.test_review_deadlines_calendar import accepted_panel

MIGRATION = "c4e6a8b0d2f4_review_reminder_keys_dated.py"


def test_reminder_keys_are_the_strings_the_reminders_stored_before():
    due = date(2025, 6, 30)
    assert reminder_key("rect-due", 12, due=due) == f"rect-due-12-{due.isoformat()}"
    assert reminder_key("rect-interview", 12, due=due) == "rect-interview-12-2025-06-30"
    assert reminder_key("contract-notice", "overdue", 5, due=due) == f"contract-notice-overdue-5-{due}"
    assert reminder_key("result-posting", "due", 5, due=due) == f"result-posting-due-5-{due}"
    assert reminder_key("contract-overdue", 9, due=due) == f"contract-overdue-9-{due}"
    assert reminder_key("contract-overdue-blocked", 9, due=due) == f"contract-overdue-blocked-9-{due}"
    assert reminder_key("overdue", 9, "plan_returned", due=due) == f"overdue-9-plan_returned-{due}"
    # a stored instant is read as its Beijing date: 23:59:59 Beijing on the 13th is 15:59:59 UTC
    assert reminder_key("review-due", 7, due=datetime(2025, 11, 13, 15, 59, 59)) == "review-due-7-2025-11-13"
    assert reminder_key("review-due", 7, due=datetime(2025, 11, 13, 16, 0)) == "review-due-7-2025-11-14"


def _keys(user) -> list[str]:
    return list(db.session.execute(sa.select(Notification.dedupe_key).where(
        Notification.user_id == user.id, Notification.dedupe_key.is_not(None)).order_by(Notification.id)).scalars())


def _stored_before_the_upgrade(member, review, body: str) -> Notification:
    """A 评审即将到期 reminder as send_reminders stored it before: keyed by the review alone."""
    note = Notification(user_id=member.id, title="评审即将到期：某项目", body=body, link=f"/reviews/{review.id}",
                        dedupe_key=f"review-due-{review.id}")
    db.session.add(note)
    return note


def test_stored_review_reminders_get_their_deadlines_date_and_are_not_sent_again(world):
    from tests.test_review_deadlines_calendar import _at

    panel, members = accepted_panel(world)
    first, second, third = (i.review for i in panel.invitations)
    _stored_before_the_upgrade(members[0], first, "评审截止时间：北京时间 2025-11-13 23:59。")
    # the deadline moved since this one went out (it names the 12th): reminded once more for the 13th
    _stored_before_the_upgrade(members[1], second, "评审截止时间：北京时间 2025-11-12 23:59。")
    _stored_before_the_upgrade(members[2], third, "评审即将到期")  # no date in its text: the panel's present one
    db.session.add(Notification(user_id=members[2].id, title="别的提醒", body="……", dedupe_key="review-due-99999"))
    db.session.commit()

    assert load(MIGRATION).date_review_keys(db.session.connection()) == 3  # the review gone: left as it was
    db.session.commit()
    assert _keys(members[0]) == [f"review-due-{first.id}-2025-11-13"]
    assert _keys(members[1]) == [f"review-due-{second.id}-2025-11-12"]
    assert _keys(members[2]) == [f"review-due-{third.id}-2025-11-13", "review-due-99999"]
    assert load(MIGRATION).date_review_keys(db.session.connection()) == 0  # once

    with simulated_clock(_at(date(2025, 11, 12))):
        assert R.send_reminders()["reminders"] == 1  # only the one sent for another day
        db.session.commit()
    assert _keys(members[1]) == [f"review-due-{second.id}-2025-11-12", f"review-due-{second.id}-2025-11-13"]

    assert load(MIGRATION).undate_review_keys(db.session.connection()) == 3  # the downgrade: the latest of each
    assert _keys(members[0]) == [f"review-due-{first.id}"]
    assert _keys(members[1]) == [f"review-due-{second.id}-2025-11-12", f"review-due-{second.id}"]
    db.session.rollback()


def test_without_the_migration_the_old_keys_would_remind_every_expert_again(world):
    """What the data migration is for: the stored old keys do not match the new ones."""
    from tests.test_review_deadlines_calendar import _at

    panel, members = accepted_panel(world)
    for member, invitation in zip(members, panel.invitations):
        _stored_before_the_upgrade(member, invitation.review, "评审截止时间：北京时间 2025-11-13 23:59。")
    db.session.commit()
    with simulated_clock(_at(date(2025, 11, 12))):
        assert R.send_reminders()["reminders"] == 3
    db.session.rollback()
