"""Notifications: the one way any module tells a person something (the inbox, and e-mail when configured).

A spine, like the audit log: every module calls ``emit`` with a row of ``MATRIX`` (event → who → text; shown
to admins at /admin/notifications); none keeps its own inbox or writes its own text. The worker e-mails what
has not been sent (``send_pending_email``): the same title and body, with the link.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from flask import current_app

from evalhub.core.enums import BUREAU_SIDE, Role
from evalhub.core.models import Notification, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db


# Who an event goes to: the bureau's enabled staff, the firm's enabled users, or the people the caller names
# (an expert, one officer). Nobody else: an event never widens its audience by itself.
BUREAU, FIRM, NAMED = "bureau", "firm", "named"
AUDIENCE_LABELS = {BUREAU: "财政局（本局全部在用账号）", FIRM: "第三方机构（本机构全部在用账号）", NAMED: "指定人员（如被抽中的专家）"}


@dataclass(frozen=True)
class Event:
    """One row of the notification matrix: an event, who hears it, and the inbox and e-mail text.

    ``title`` and ``body`` are ``str.format`` templates over the fields the caller passes; the e-mail is the
    same title and body with the link appended, so the two never say different things."""

    key: str
    label: str
    audience: tuple[str, ...]
    title: str
    body: str


# THE notification matrix (event → who → text). Every message evalhub sends is one of these rows; a module
# tells people something only through ``emit`` with a key from here (tests/test_notification_matrix.py
# checks each row reaches exactly its audience). Texts never carry an expert's name to a firm.
MATRIX: dict[str, Event] = {e.key: e for e in [
    # procurement
    Event("procurement_opened", "采购公告发布", (FIRM,), "{reference} 采购公告：{name}",
          "{method}，响应截止时间：北京时间 {deadline}。"),
    Event("bid_won", "中标/成交", (FIRM,), "{reference} 中标/成交通知",
          "贵机构为 {name} 的中标/成交供应商，成交金额 {amount} 元。结果公告后质疑期满且无未决质疑方可签订合同。"),
    Event("bid_lost", "未中标/未成交", (FIRM,), "{reference} 采购结果通知",
          "{name} 的采购已确定结果，贵机构未中标/未成交。对结果有异议的，可在质疑期内提出质疑。"),
    Event("result_notice_published", "结果公告发布", (BUREAU,), "{reference} 结果公告已发布",
          "{name} 的中标/成交结果公告已于 {published} 发布，质疑期至 {challenge_until}。"),
    Event("contract_ready", "可以签订合同", (BUREAU, FIRM), "{reference} 可以签订合同",
          "{name} 的质疑期已满且无未决质疑，可以签订合同。"),
    Event("contract_signed", "合同已签订", (FIRM,), "{reference} 合同已签订",
          "{name} 的合同已签订，请按约定提交实施方案。"),
    Event("challenge_filed", "收到质疑", (BUREAU,), "{reference} 收到质疑",
          "{firm} 对 {name} 提出质疑，请在 {answer_due} 前书面答复。"),
    Event("challenge_answered", "质疑已答复", (FIRM,), "{reference} 质疑答复",
          "贵机构对 {name} 的质疑已答复：{outcome}。{answer}"),
    Event("award_revoked", "成交结果撤销", (FIRM,), "{reference} 成交结果已撤销",
          "因质疑成立，{name} 的成交结果已撤销（{remedy}）。"),
    Event("procurement_failed", "采购失败", (BUREAU,), "{reference} 采购失败（流标）", "{reason}"),
    # registry
    Event("firm_admitted", "入库", (FIRM,), "准予入库：{bureau}", "贵机构已列入 {bureau} 第三方机构库。{reason}"),
    Event("firm_refused", "不予入库", (FIRM,), "不予入库：{bureau}", "{reason}"),
    Event("firm_suspended", "暂停/移出机构库", (FIRM,), "机构库资格变更：{bureau}", "{status}。理由：{reason}"),
    # review
    Event("submission_received", "收到提交", (BUREAU,), "{reference} 收到{kind}第 {version} 版",
          "{firm} 提交了{kind}，请组织评审。"),
    Event("panel_invitation", "评审邀请", (NAMED,), "评审邀请：{name}{kind}",
          "您被随机抽取为 {name} {kind}的评审专家，请在 {respond_due} 前回复是否参加。"),
    Event("invitation_withdrawn", "评审邀请撤回", (NAMED,), "评审邀请已撤回：{name}{kind}", "{reason}"),
    Event("review_reminder", "评审提醒", (NAMED,), "{title}：{name}", "评审截止时间：北京时间 {due}。"),
    Event("review_passed", "评审通过", (FIRM,), "{reference} {kind}评审通过", "{detail}"),
    Event("review_failed", "评审未通过", (BUREAU,), "{reference} {kind}评审未通过", "{detail}"),
    Event("returned_for_rectification", "退回整改", (FIRM,), "{reference} {kind}退回整改", "{letter}"),
    Event("engagement_overdue", "逾期", (NAMED,), "{reference} 已逾期", "{reason}"),
    # results (整改): the unit's accounts are named by the caller (results.services.unit_users)
    Event("findings_confirmed", "评价问题已确认", (NAMED,), "{reference} 评价发现的问题已确认",
          "{name}：涉及贵单位的问题和建议共 {count} 条，最早整改期限 {deadline}，请提交整改计划并落实整改。"),
    Event("rectification_due", "整改逾期催办", (NAMED,), "{reference} 整改事项已逾期",
          "“{text}”的整改期限为 {deadline}，尚未整改到位，请尽快整改并提交佐证材料。"),
    Event("rectification_escalated", "整改逾期约谈/通报", (BUREAU, NAMED), "{reference} 整改逾期：{level}",
          "{unit} 的整改事项“{text}”已逾期 {days} 个工作日，已记录{level}。"),
    Event("fact_confirmation_requested", "报告征求意见", (NAMED,), "{reference} 评价报告征求意见",
          "{firm} 就 {name} 的评价报告初稿征求贵单位意见，请在 {due} 前答复（无异议或逐条提出异议）。"),
    Event("fact_confirmation_answered", "被评价单位已答复征求意见", (FIRM,), "{reference} 被评价单位已答复征求意见",
          "{unit}：{answer}"),
    # credit
    Event("rating_publicised", "信用评价公示", (FIRM,), "{year} 年度信用评价结果公示", "{detail}"),
    Event("objection_answered", "异议已答复", (FIRM,), "{year} 年度信用评价异议答复", "{outcome}。{answer}"),
    # supervision
    Event("inspection_response_requested", "检查要求说明", (FIRM,), "{reference} 监督检查：请说明",
          "{question}。请登录系统提交说明及整改情况。"),
]}


def emit(key: str, *, link: str | None = None, bureau_id: int | None = None, firm_id: int | None = None,
         users: Iterable[User] = (), dedupe_key: str | None = None, **fields: Any) -> list[Notification]:
    """Send the matrix's event ``key`` to its audience: ``bureau_id``'s staff, ``firm_id``'s users and/or the
    ``users`` named, as its row says — an argument for an audience the row does not list is ignored."""
    event = MATRIX[key]
    title, body = event.title.format(**fields), event.body.format(**fields)
    recipients: dict[int, User] = {}
    if BUREAU in event.audience and bureau_id is not None:
        recipients.update((u.id, u) for u in db.session.execute(sa.select(User).where(
            User.bureau_id == bureau_id, User.role.in_(BUREAU_SIDE), User.is_enabled.is_(True))).scalars())
    if FIRM in event.audience and firm_id is not None:
        recipients.update((u.id, u) for u in db.session.execute(sa.select(User).where(
            User.firm_id == firm_id, User.role == Role.FIRM_USER, User.is_enabled.is_(True))).scalars())
    if NAMED in event.audience:
        # A disabled account reads nothing (it cannot sign in); it is not sent what it would find on return.
        recipients.update((u.id, u) for u in users if u is not None and u.is_enabled)
    sent = []
    for user in recipients.values():
        note = notify(user, title, body, link, dedupe_key=dedupe_key)
        if note is not None:
            sent.append(note)
    return sent


def notify(user: User, title: str, body: str, link: str | None = None, *, dedupe_key: str | None = None) -> Optional[Notification]:
    """Put a message in ``user``'s inbox; with a ``dedupe_key`` the same message is stored once."""
    if dedupe_key and db.session.execute(sa.select(Notification.id).where(
            Notification.user_id == user.id, Notification.dedupe_key == dedupe_key)).first():
        return None
    note = Notification(user_id=user.id, title=title[:200], body=body, link=link, dedupe_key=dedupe_key)
    db.session.add(note)
    return note


def absolute_link(link: str | None) -> str | None:
    """The link as an e-mail reader can follow it: EVALHUB_PUBLIC_URL (the address one-time links use too),
    else SERVER_NAME, before the path; the bare path when neither is configured (the reader still knows
    where to go after logging in)."""
    if not link or "://" in link:
        return link
    base = current_app.config.get("PUBLIC_URL")
    if not base and current_app.config.get("SERVER_NAME"):
        base = f"{current_app.config.get('PREFERRED_URL_SCHEME', 'http')}://{current_app.config['SERVER_NAME']}"
    return f"{base.rstrip('/')}/{link.lstrip('/')}" if base else link


def email_text(note: Notification) -> str:
    """The e-mail says what the inbox says, with the link appended."""
    link = absolute_link(note.link)
    return f"{note.body}\n\n{link}" if link else note.body


def _message(to: str, subject: str, body: str):
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = current_app.config.get("MAIL_FROM", "evalhub@localhost")
    message["To"] = to
    message.set_content(body)
    return message


def _smtp():
    import smtplib

    return smtplib.SMTP(current_app.config["MAIL_SERVER"], int(current_app.config.get("MAIL_PORT", 25)), timeout=10)


def send_pending_email() -> int:
    """E-mail unsent notifications when EVALHUB_SMTP_HOST is configured; otherwise the inbox is enough."""
    if not current_app.config.get("MAIL_SERVER"):
        return 0
    pending = db.session.execute(sa.select(Notification).join(User).where(
        Notification.emailed_at.is_(None), User.email.is_not(None)).order_by(Notification.id)).scalars().all()
    if not pending:
        return 0
    sent = 0
    with _smtp() as smtp:
        for note in pending:
            smtp.send_message(_message(note.user.email, note.title, email_text(note)))
            note.emailed_at = utcnow()
            sent += 1
    return sent


def send_mail(to: str, subject: str, body: str) -> bool:
    """Send one e-mail now, when an SMTP server is configured (EVALHUB_SMTP_HOST); False when it is not, or
    when sending failed (logged). For messages that must not wait in the inbox or be stored, such as a
    one-time link (core/accounts.py): the caller sends after its transaction committed."""
    if not current_app.config.get("MAIL_SERVER") or not to:
        return False
    import smtplib

    try:
        with _smtp() as smtp:
            smtp.send_message(_message(to, subject, body))
    except (OSError, smtplib.SMTPException) as exc:
        current_app.logger.warning("e-mail to %s not sent: %s", to, exc)
        return False
    return True
