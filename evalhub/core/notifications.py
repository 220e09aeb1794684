"""Notifications: the one way any module tells a person something (the inbox, and e-mail when configured).

A spine, like the audit log: every module calls ``notify`` (or the helpers for everyone at a bureau or a
firm); none keeps its own inbox. The worker e-mails what has not been sent (``send_pending_email``).
"""
from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from flask import current_app

from evalhub.core.models import Notification, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db


def notify(user: User, title: str, body: str, link: str | None = None, *, dedupe_key: str | None = None) -> Optional[Notification]:
    """Put a message in ``user``'s inbox; with a ``dedupe_key`` the same message is stored once."""
    if dedupe_key and db.session.execute(sa.select(Notification.id).where(
            Notification.user_id == user.id, Notification.dedupe_key == dedupe_key)).first():
        return None
    note = Notification(user_id=user.id, title=title[:200], body=body, link=link, dedupe_key=dedupe_key)
    db.session.add(note)
    return note


def notify_bureau(bureau_id: int | None, title: str, body: str, link: str) -> None:
    """Every enabled user of the bureau."""
    if bureau_id is None:
        return
    for user in db.session.execute(sa.select(User).where(User.bureau_id == bureau_id, User.is_enabled.is_(True))).scalars():
        notify(user, title, body, link)


def notify_firm(firm_id: int | None, title: str, body: str, link: str) -> None:
    """Every user of the firm."""
    if firm_id is None:
        return
    for user in db.session.execute(sa.select(User).where(User.firm_id == firm_id)).scalars():
        notify(user, title, body, link)


def send_pending_email() -> int:
    """E-mail unsent notifications when EVALHUB_SMTP_HOST is configured; otherwise the inbox is enough."""
    host = current_app.config.get("MAIL_SERVER")
    if not host:
        return 0
    import smtplib
    from email.message import EmailMessage

    pending = db.session.execute(sa.select(Notification).join(User).where(
        Notification.emailed_at.is_(None), User.email.is_not(None))).scalars().all()
    if not pending:
        return 0
    sent = 0
    with smtplib.SMTP(host, int(current_app.config.get("MAIL_PORT", 25)), timeout=10) as smtp:
        for note in pending:
            message = EmailMessage()
            message["Subject"] = note.title
            message["From"] = current_app.config.get("MAIL_FROM", "evalhub@localhost")
            message["To"] = note.user.email
            message.set_content(note.body)
            smtp.send_message(message)
            note.emailed_at = utcnow()
            sent += 1
    return sent


def send_mail(to: str, subject: str, body: str) -> bool:
    """Send one e-mail now, when an SMTP server is configured (EVALHUB_SMTP_HOST); False when it is not, or
    when sending failed (logged). For messages that must not wait in the inbox or be stored, such as a
    one-time link (core/accounts.py): the caller sends after its transaction committed."""
    host = current_app.config.get("MAIL_SERVER")
    if not host or not to:
        return False
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = current_app.config.get("MAIL_FROM", "evalhub@localhost")
    message["To"] = to
    message.set_content(body)
    try:
        with smtplib.SMTP(host, int(current_app.config.get("MAIL_PORT", 25)), timeout=10) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        current_app.logger.warning("e-mail to %s not sent: %s", to, exc)
        return False
    return True
