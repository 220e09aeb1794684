"""What every signed-in page pays (issue 18): the unread badge read with the account, the navigation rendered
once per combination of permissions, read-only transactions ended with COMMIT on PostgreSQL."""
from __future__ import annotations

import contextlib
import re

import pytest
import sqlalchemy as sa

from evalhub import NAV_ACTIONS
from evalhub.config import PROJECT_ROOT
from evalhub.core import permissions
from evalhub.core.models import Notification, User
from evalhub.extensions import db
from tests.test_query_counts import counting


def _note(user: User, title: str = "测试消息") -> Notification:
    note = Notification(user_id=user.id, title=title, body="正文")
    db.session.add(note)
    return note


def test_a_page_reads_the_unread_count_with_the_account(world, client, login):
    for _ in range(2):
        _note(world.bz_staff)
    db.session.commit()
    login(world.bz_staff)
    with client.application.app_context(), counting() as seen:
        html = client.get("/account").get_data(as_text=True)
    assert 'data-testid="unread-count">2<' in html
    assert not any("FROM notification" in s and "user_account" not in s for s in seen), seen


def test_the_held_count_gives_way_to_changes_in_the_same_transaction(app, world):
    user_id = world.bz_staff.id
    _note(world.bz_staff)
    db.session.commit()
    with app.app_context():
        user = permissions.load_user(user_id)
        assert permissions.unread_notifications(user) == 1
        _note(user)  # added, not flushed: counted by reading (the query flushes it)
        assert permissions.unread_notifications(user) == 2
        _note(user)
        db.session.flush()
        assert permissions.unread_notifications(user) == 3
        db.session.execute(sa.update(Notification).where(Notification.user_id == user_id)
                           .values(read_at=sa.func.now()))
        assert permissions.unread_notifications(user) == 0
        db.session.rollback()


def test_the_cached_navigation_asks_only_the_actions_in_its_key(app, world):
    # nav_links caches the links by the answers to NAV_ACTIONS: an action asked but not in the key would be
    # cached with the first user's answer.
    text = (PROJECT_ROOT / "templates" / "macros" / "nav_links.html").read_text()
    asked = set(re.findall(r"can\('([^']+)'\)", text))
    assert asked and asked <= set(NAV_ACTIONS), asked - set(NAV_ACTIONS)
    assert "current_user" not in text
    from flask_login import login_user

    with app.test_request_context("/"):
        login_user(world.firm_user)
        firm = str(app.jinja_env.globals["nav_links"]())
    with app.test_request_context("/"):
        login_user(world.bz_admin)
        bureau = str(app.jinja_env.globals["nav_links"]())
    assert 'data-testid="nav-market"' in firm and 'data-testid="nav-screening"' not in firm
    assert 'data-testid="nav-screening"' in bureau and 'data-testid="nav-market"' not in bureau


@contextlib.contextmanager
def endings():
    """How each transaction on the engine ends ("commit" / "rollback") while the block runs."""
    seen: list[str] = []
    listeners = {name: (lambda conn, name=name: seen.append(name)) for name in ("commit", "rollback")}
    for name, fn in listeners.items():
        sa.event.listen(db.engine, name, fn)
    try:
        yield seen
    finally:
        for name, fn in listeners.items():
            sa.event.remove(db.engine, name, fn)


def test_a_transaction_that_wrote_is_still_rolled_back(app, world):
    user_id, name = world.bz_staff.id, world.bz_staff.display_name
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == user_id).values(display_name="改过的名字"))
    with app.app_context():
        assert db.session.get(User, user_id).display_name == name
        db.session.get(User, user_id).display_name = "也改过"  # unflushed: not written either
    with app.app_context():
        assert db.session.get(User, user_id).display_name == name


def test_a_read_only_page_ends_with_commit_on_postgresql(app, world, client, login):
    # psycopg forgets its prepared statements at a ROLLBACK; a COMMIT of a transaction that only read keeps them.
    login(world.bz_staff)
    with endings() as read_only, app.app_context():
        assert client.get("/inbox").status_code == 200
    with endings() as wrote, app.app_context():
        db.session.execute(sa.update(User).where(User.id == world.bz_staff.id).values(phone="13800000000"))
    expected = "commit" if db.engine.dialect.name == "postgresql" else "rollback"
    assert read_only == [expected], read_only
    assert wrote == ["rollback"], wrote
