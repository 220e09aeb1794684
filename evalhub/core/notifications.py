"""Notifications: the one way any module tells a person something (the inbox, and e-mail when configured).

A spine, like the audit log: every module calls ``emit`` with a row of ``MATRIX`` (event → who → text; shown
to admins at /admin/notifications); none keeps its own inbox or writes its own text. The worker e-mails what
has not been sent (``send_pending_email``): the same title and body, with the link.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Iterator, Optional

import sqlalchemy as sa
from flask import current_app

from evalhub.core.batches import BatchMemory, batches
from evalhub.core.enums import BUREAU_SIDE, Role
from evalhub.core.errors import NotFound
from evalhub.core.models import Notification, User
from evalhub.core.timeutil import beijing_date, utcnow
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
          "贵机构为 {name} 的{result}供应商，{result}金额 {amount} 元。结果公告后质疑期满且无未决质疑方可签订合同。"),
    Event("bid_lost", "未中标/未成交", (FIRM,), "{reference} 采购结果通知",
          "{name} 的采购已确定结果，贵机构未{result}。对结果有异议的，可在质疑期内提出质疑。"),
    Event("result_notice_published", "结果公告发布", (BUREAU,), "{reference} 结果公告已发布",
          "{name} 的中标/成交结果公告已于 {published} 发布，质疑期至 {challenge_until}。"),
    Event("contract_ready", "可以签订合同", (BUREAU, FIRM), "{reference} 可以签订合同",
          "{name} 的质疑期已满且无未决质疑，可以签订合同。"),
    Event("contract_blocked", "暂不能签订合同", (BUREAU,), "{reference} 暂不能签订合同",
          "{name} 的质疑期已满，但{reason}合同暂不能签订；其资格恢复后系统将通知可以签订合同，否则请依法另行处理。"),
    Event("contract_overdue", "合同逾期未签订", (BUREAU, FIRM), "{reference} 合同逾期未签订",
          "{name}：{reason}。采购人应尽快与{result}供应商签订合同，逾期签订须说明原因。"),
    Event("contract_overdue_blocked", "合同逾期未签订（暂不能签订）", (BUREAU,), "{reference} 合同逾期未签订，暂不能签订",
          "{name}：{reason}。但{hold}，合同暂不能签订；请依法处理（答复质疑，或待供应商资格恢复后签订并说明逾期原因，否则另行处理）。"),
    Event("contract_signed", "合同已签订", (FIRM,), "{reference} 合同已签订",
          "{name} 的合同已签订，请按约定提交实施方案。"),
    # the contract announcement (政府采购法实施条例 第五十条) is the bureau's: procurement/contract_notices.py
    Event("contract_notice_due", "合同公告今日到期", (BUREAU,), "{reference} 合同公告今日到期",
          "{name} 的合同于 {signed} 签订，合同公告应于今日（{due}）在指定媒体（中国政府采购网或其省级分网）发布并在本系统登记"
          "（合同签订之日起 2 个工作日内，政府采购法实施条例第五十条）。"),
    Event("contract_notice_overdue", "合同公告逾期未发布", (BUREAU,), "{reference} 合同公告逾期未发布",
          "{name} 的合同于 {signed} 签订，合同公告应于 {due} 前在指定媒体发布（合同签订之日起 2 个工作日内，政府采购法实施条例第五十条），"
          "至今未登记指定媒体发布（本系统的公开页面不是指定媒体）。请尽快在指定媒体发布并登记，逾期发布须说明原因。"),
    # the result notice's posting on the designated media (财政部令第87号 第六十九条) is the bureau's: procurement/media.py
    Event("result_posting_due", "结果公告今日须在指定媒体发布", (BUREAU,), "{reference} {result}结果公告今日须在指定媒体发布",
          "{name} 的{result}结果公告已于 {published} 在本系统发布，应于今日（{due}）在指定媒体（中国政府采购网或其省级分网）发布并在"
          "本系统登记（确定{result}供应商之日起 2 个工作日内，财政部令第87号第六十九条；本系统的公开页面不是指定媒体）。"),
    Event("result_posting_overdue", "结果公告逾期未在指定媒体发布", (BUREAU,), "{reference} {result}结果公告逾期未在指定媒体发布",
          "{name} 的{result}结果公告应于 {due} 前在指定媒体发布（确定{result}供应商之日起 2 个工作日内，财政部令第87号第六十九条），"
          "至今未登记指定媒体发布（本系统的公开页面不是指定媒体）。请尽快在指定媒体发布并登记。"),
    # the 采购公告's posting on the designated media recorded later than evalhub's publication leaves the bid period
    # (等标期) short: recorded all the same, the bureau told what follows (procurement/periods.py, media.py)
    Event("procurement_period_short", "采购公告发布较晚，等标期不足", (BUREAU,), "{reference} 等标期不足：{name}",
          "{problem}。"),
    # a changed bid deadline is an amendment (更正公告) to every potential supplier (财政部令第87号 第二十七条): the firms
    # that may respond and those that already bid (services.change_deadline)
    Event("bid_deadline_changed", "投标截止时间变更", (FIRM,), "{reference} 投标截止时间变更：{name}",
          "{name} 的投标（响应文件提交）截止时间由北京时间 {old} 变更为北京时间 {new}。变更原因：{reason}。"
          "在新的截止时间前可提交、修改或撤回投标。"),
    # a clarification or amendment of the documents (澄清/更正公告, 财政部令第87号 第二十七条; 财库〔2014〕214号 第十条),
    # told in writing to every potential supplier (procurement/amendments.py); a firm whose bid is in is told it may
    # still revise or withdraw it before the deadline (as the bid page allows until then: services.submit_bid)
    Event("procurement_amended", "澄清/更正公告", (FIRM,), "{reference} 第 {number} 号澄清/更正公告：{name}",
          "{name} 的采购文件澄清/更正如下（为采购文件的组成部分）：\n{text}\n{deadline}"),
    Event("procurement_amended_bid", "澄清/更正公告（已投标的供应商）", (FIRM,), "{reference} 第 {number} 号澄清/更正公告：{name}",
          "{name} 的采购文件澄清/更正如下（为采购文件的组成部分）：\n{text}\n{deadline}"
          "贵机构的投标在本公告发布前提交，可在截止时间（北京时间 {until}）前补充、修改或撤回。"),
    Event("challenge_filed", "收到质疑", (BUREAU,), "{reference} 收到质疑",
          "{firm} 对 {name} 提出质疑，请在 {answer_due} 前书面答复。"),
    Event("challenge_answered", "质疑已答复", (FIRM,), "{reference} 质疑答复",
          "贵机构对 {name} 的质疑已答复：{outcome}。{answer}\n{complaint}"),
    Event("challenge_upheld", "质疑成立（告知其他供应商）", (FIRM,), "{reference} 质疑处理结果",
          "对 {name} 采购结果提出的质疑经审查成立，{remedy}。{next_step}"),
    Event("award_revoked", "中标/成交结果撤销", (FIRM,), "{reference} {result}结果已撤销",
          "因质疑成立，{name} 的{result}结果已撤销（{remedy}）。"),
    Event("procurement_failed", "采购失败", (BUREAU,), "{reference} 采购失败（流标）", "{reason}"),
    # registry
    Event("firm_admitted", "入库", (FIRM,), "准予入库：{bureau}", "贵机构已列入 {bureau} 第三方机构库。{reason}"),
    Event("firm_refused", "不予入库", (FIRM,), "不予入库：{bureau}", "{reason}"),
    Event("firm_suspended", "暂停/移出机构库", (FIRM,), "机构库资格变更：{bureau}", "{status}。理由：{reason}"),
    Event("firm_restored", "恢复/解除黑名单", (FIRM,), "机构库资格变更：{bureau}", "{status}。理由：{reason}{next_step}"),
    # people (issue 14): a person's points go to their firm; the team a firm names goes to the bureau
    Event("staff_points_recorded", "从业人员记分", (FIRM,), "{name} 记分 {points} 分",
          "{bureau}：{kind}（{reference}），{name} 记 {points} 分；近 {days} 天在本区域累计 {total} 分。{status}"),
    Event("engagement_team_named", "主评人及团队确定/变更", (BUREAU,), "{reference} 主评人及团队{verb}",
          "{firm}：主评人 {lead}；团队成员 {members}。{reason}"),
    # witnessed draws (issue 14)
    Event("draw_witness_named", "担任抽取监督人", (NAMED,), "请担任随机抽取监督人：{purpose}",
          "您被指定为随机抽取 #{draw} 的监督人。请登录后在抽取页面核对候选名单哈希与承诺值，再输入您自己的数字。"),
    Event("draw_awaiting_witnesses", "抽取待指定监督人", (BUREAU,), "随机抽取待揭晓：{purpose}",
          "系统已公告随机抽取 #{draw}（{reason}），请指定监督人，监督人输入数字后揭晓。"),
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
    Event("rectification_submitted", "整改材料待核验", (BUREAU,), "{reference} 整改材料待核验",
          "{unit} 提交了第 {position} 条“{text}”的整改情况及佐证材料（共 {count} 份），请核验：整改到位，或部分整改/未整改退回。"),
    Event("rectification_returned", "整改退回继续整改", (NAMED,), "{reference} 整改事项退回，需继续整改",
          "第 {position} 条“{text}”经财政局核验为“{verdict}”，请继续整改，整改期限 {deadline}，完成后重新提交整改情况及佐证材料。"
          "核验意见：{note}"),
    Event("fact_confirmation_requested", "报告征求意见", (NAMED,), "{reference} 评价报告征求意见",
          "{firm} 就 {name} 的评价报告初稿征求贵单位意见，请在 {due} 前答复（无异议或逐条提出异议）。"),
    Event("fact_confirmation_answered", "被评价单位已答复征求意见", (FIRM,), "{reference} 被评价单位已答复征求意见",
          "{unit}：{answer}"),
    # results: self-evaluation reviews (克州 item 7) and the firm's 资料清单
    Event("self_evaluation_received", "收到部门自评报告", (BUREAU,), "{reference} 收到部门自评报告第 {version} 版",
          "{unit} 提交了《{name}》自评报告，请组织专家评审。"),
    Event("self_evaluation_passed", "部门自评报告评审通过", (NAMED,), "{reference} 部门自评报告评审通过",
          "《{name}》自评报告经专家评审得分 {score}，评审通过。"),
    Event("self_evaluation_returned", "部门自评报告退回整改", (NAMED,), "{reference} 部门自评报告退回整改",
          "《{name}》自评报告经专家评审得分 {score}，低于 {pass_mark} 分，请按意见整改后于 {due} 前重新提交。{letter}"),
    Event("materials_requested", "评价资料清单", (NAMED,), "{reference} 第三方机构请贵单位提供资料",
          "{firm} 为 {name} 的评价列出资料 {count} 项，最早 {due} 前提供，请登录系统上传。"),
    # the working-day calendar corrected (core/calendar.py ``correct``): each stored deadline still open that the
    # correction moves, told to the bureau whose it is and to the party it is granted to or owed to
    Event("deadlines_moved_bureau", "工作日历调整，期限随之调整（财政局）", (BUREAU,), "工作日历调整：{count} 项期限已重新计算",
          "因{cause}，本局以下未届满的期限已按调整后的工作日历重新计算：\n{items}"),
    Event("deadlines_moved_firm", "工作日历调整，期限随之调整（机构）", (FIRM,), "工作日历调整：{count} 项期限已重新计算",
          "因{cause}，与贵机构有关的以下期限已按调整后的工作日历重新计算（已告知的期间不会缩短）：\n{items}"),
    Event("deadlines_moved_named", "工作日历调整，期限随之调整（被评价单位）", (NAMED,), "工作日历调整：{count} 项期限已重新计算",
          "因{cause}，贵单位的以下期限已按调整后的工作日历重新计算（已告知的期间不会缩短）：\n{items}"),
    Event("deadlines_moved_expert", "工作日历调整，期限随之调整（评审专家）", (NAMED,), "工作日历调整：{count} 项期限已重新计算",
          "因{cause}，您的以下评审期限已按调整后的工作日历重新计算（已告知的期间不会缩短）：\n{items}"),
    # credit
    Event("rating_publicised", "信用评价公示", (FIRM,), "{year} 年度信用评价结果公示", "{detail}"),
    Event("objection_answered", "异议已答复", (FIRM,), "{year} 年度信用评价异议答复", "{outcome}。{answer}"),
    Event("rating_republished", "信用评价变更重新公示", (FIRM,), "{year} 年度信用评价结果变更，重新公示",
          "贵机构 {year} 年度信用评价经重新计算由 {before} 变更为 {after}，现重新公示，如有异议请于 {deadline} 前提出。"),
    # supervision
    Event("inspection_response_requested", "检查要求说明", (FIRM,), "{reference} 监督检查：请说明",
          "{question}。请登录系统提交说明及整改情况。"),
    Event("inspection_assigned", "检查人员确定", (NAMED,), "检查任务：{reference}",
          "您被{how}为 {firm} 的检查人员（{kind}）。请登录系统查看；如与被检查机构或评价任务存在利害关系，请立即申报回避。"),
    Event("inspector_recused", "检查人员申报回避", (BUREAU,), "{reference} 检查人员申报回避",
          "{name} 申报与被检查事项存在利害关系：{reason}。请重新指定或抽取检查人员。"),
    Event("expert_rating_exclusion", "专家因评价不佳暂停抽取", (NAMED,), "评审质量评价：暂停参加随机抽取",
          "{reason}。期满或评价改善后自动恢复；如有异议，请与{bureau}联系。"),
]}


def emit(key: str, *, link: str | None = None, bureau_id: int | None = None, firm_id: int | None = None,
         users: Iterable[User] = (), dedupe_key: str | None = None, **fields: Any) -> list[Notification]:
    """Send the matrix's event ``key`` to its audience: ``bureau_id``'s staff, ``firm_id``'s users and/or the
    ``users`` named, as its row says — an argument for an audience the row does not list is ignored."""
    event = MATRIX[key]
    title, body = event.title.format(**fields), event.body.format(**fields)
    recipients: dict[int, User] = {}
    if BUREAU in event.audience and bureau_id is not None:
        recipients.update((u.id, u) for u in _audience(BUREAU, bureau_id))
    if FIRM in event.audience and firm_id is not None:
        recipients.update((u.id, u) for u in _audience(FIRM, firm_id))
    if NAMED in event.audience:
        # A disabled account reads nothing (it cannot sign in); it is not sent what it would find on return.
        recipients.update((u.id, u) for u in users if u is not None and u.is_enabled)
    sent = []
    for user in recipients.values():
        note = notify(user, title, body, link, dedupe_key=dedupe_key)
        if note is not None:
            sent.append(note)
    return sent


# What a run telling many bureaus, firms or people keeps while it runs (``one_reading``): each audience's accounts
# (BUREAU or FIRM, id) → [users], and for each dedupe key read ahead (None, key) → the ids of the users who hold it.
_held: BatchMemory[tuple[Optional[str], Any], Any] = BatchMemory()


def _audience_of(kind: str) -> tuple[sa.ColumnElement, sa.ColumnElement[bool]]:
    """The column naming an audience's bureau or firm, and who of it is told: its enabled staff or users."""
    if kind == BUREAU:
        return User.bureau_id, sa.and_(User.role.in_(BUREAU_SIDE), User.is_enabled.is_(True))
    return User.firm_id, sa.and_(User.role == Role.FIRM_USER, User.is_enabled.is_(True))


def _read_audiences(kind: str, ids: Iterable[int]) -> dict[int, list[User]]:
    """The accounts told for each of several bureaus' or firms' ids ({id: users}, each id a key), a statement a
    few hundred ids."""
    column, told = _audience_of(kind)
    out: dict[int, list[User]] = {i: [] for i in ids}
    for part in batches(sorted(out)):
        for user in db.session.execute(sa.select(User).where(column.in_(part), told).order_by(User.id)).scalars():
            out[getattr(user, column.key)].append(user)
    return out


def _audience(kind: str, ident: int) -> list[User]:
    """The accounts an event for the bureau or firm ``ident`` goes to: read once within ``one_reading``."""
    memory = _held.memory
    if memory is not None and (kind, ident) in memory:
        return memory[kind, ident]
    users = _read_audiences(kind, [ident])[ident]
    if memory is not None:
        memory[kind, ident] = users
    return users


@contextmanager
def one_reading(*, bureau_ids: Iterable[int] = (), firm_ids: Iterable[int] = (),
                dedupe_keys: Iterable[str] = ()) -> Iterator[None]:
    """A run that tells many bureaus, firms or people (a job, a calendar correction): inside the block ``emit``
    reads each bureau's staff and each firm's users once — those named here ahead, in a statement a kind, any
    other at its first event — and ``notify`` answers the ``dedupe_keys`` named here from one read of who already
    holds them, not a read a recipient. Who is told and what is unchanged; the accounts are those at the start."""
    with _held.kept():
        memory = _held.memory
        for kind, ids in ((BUREAU, bureau_ids), (FIRM, firm_ids)):
            wanted = {i for i in ids if i is not None and (kind, i) not in memory}
            memory.update(((kind, i), users) for i, users in _read_audiences(kind, wanted).items())
        keys = sorted({k for k in dedupe_keys if k and (None, k) not in memory})
        memory.update(((None, k), set()) for k in keys)
        for part in batches(keys):
            for user_id, dedupe_key in db.session.execute(sa.select(Notification.user_id, Notification.dedupe_key)
                                                          .where(Notification.dedupe_key.in_(part))):
                memory[None, dedupe_key].add(user_id)
        yield


def reminder_key(*about: Any, due: date | datetime) -> str:
    """The ``dedupe_key`` of a reminder about a deadline: what it is about and the deadline's date (a stored instant
    read as its Beijing date), e.g. ``reminder_key("review-due", 7, due=panel.review_due)`` → "review-due-7-2025-11-13".
    Every reminder of a deadline is keyed through here, so it is sent once per date: once while the deadline stays,
    and once more for the new date when a calendar correction (``core.calendar``) or a decision moves it. The keys
    the other reminders stored before this helper carried the date the same way; the review's were stored without
    it: migration c4e6a8b0d2f4 gave them theirs."""
    day = beijing_date(due) if isinstance(due, datetime) else due
    return "-".join(str(part) for part in about) + f"-{day.isoformat()}"


# A deadline job reads only what fell due in the last fortnight: each item is reminded on the first run after its
# day (the window covers a worker down over a long holiday), and one long overdue stays on the dashboard and its
# list — the job does not read every item ever left undone, each hour, for ever.
REMIND_WITHIN_DAYS = 14


def owed(query: sa.Select, due: Any, today: date) -> Iterator[tuple[Any, date, str]]:
    """The rows of ``query`` whose date column ``due`` fell within the last ``REMIND_WITHIN_DAYS`` days, in deadline
    order, each as (row, its date, "due" on that day or "overdue" after): what an hourly reminder job tells of."""
    entity = due.class_
    rows = db.session.execute(query.where(due <= today, due >= today - timedelta(days=REMIND_WITHIN_DAYS))
                              .order_by(due, *sa.inspect(entity).primary_key)).scalars().all()
    for row in rows:
        day = getattr(row, due.key)
        yield row, day, "due" if day == today else "overdue"


def notify(user: User, title: str, body: str, link: str | None = None, *, dedupe_key: str | None = None) -> Optional[Notification]:
    """Put a message in ``user``'s inbox; with a ``dedupe_key`` the same message is stored once."""
    held = _held.memory.get((None, dedupe_key)) if dedupe_key and _held.memory is not None else None
    if held is not None:  # read ahead (``one_reading``), with what this run stored since
        if user.id in held:
            return None
        held.add(user.id)
    elif dedupe_key and db.session.execute(sa.select(Notification.id).where(
            Notification.user_id == user.id, Notification.dedupe_key == dedupe_key)).first():
        return None
    note = Notification(user_id=user.id, title=title[:200], body=body, link=link, dedupe_key=dedupe_key)
    db.session.add(note)
    return note


def mark_read(note: Notification, user: User) -> Notification:
    """``user`` has read one of their notifications (a second click changes nothing). Only its recipient marks it:
    another account's is answered as missing (404), on every path — nobody learns what others were told."""
    if note.user_id != user.id:
        raise NotFound("未找到该消息。")
    if note.read_at is None:
        note.read_at = utcnow()
    return note


def mark_all_read(user: User) -> int:
    """全部标为已读: every unread notification of ``user``'s own (nobody else's); returns how many."""
    return db.session.execute(sa.update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)).values(read_at=utcnow())).rowcount


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


# A message older than this is not e-mailed (it stays in the inbox): an SMTP server configured for the first time,
# or a worker back after days away, does not send the whole history; a message that could not be sent is tried
# again only until then.
EMAIL_MAX_AGE = timedelta(days=3)


def send_pending_email() -> int:
    """E-mail each unsent, unread notification of an enabled account once, when EVALHUB_SMTP_HOST is configured
    (otherwise the inbox is enough); returns how many were sent.

    Commits — first the caller's work (a periodic task calls this last), then each message's claim before it is
    sent: of two workers at once one sends it, and a refused mailbox neither undoes what was done before nor
    has the messages already sent sent again."""
    if not current_app.config.get("MAIL_SERVER"):
        return 0
    import smtplib

    # A range of the partial index ix_notification_unsent (core/models.py): the last days' waiting messages only.
    pending = db.session.execute(sa.select(Notification.id).join(User, User.id == Notification.user_id).where(
        Notification.emailed_at.is_(None), Notification.read_at.is_(None),
        Notification.created_at >= utcnow() - EMAIL_MAX_AGE,
        # A disabled account reads nothing (emit): nor is it sent what waited in its inbox.
        User.is_enabled.is_(True), User.email.is_not(None), User.email != "").order_by(Notification.id)).scalars().all()
    db.session.commit()
    sent = 0
    with ExitStack() as stack:
        smtp = None
        for note_id in pending:
            claimed_at = utcnow()
            claimed = db.session.execute(
                sa.update(Notification).where(Notification.id == note_id, Notification.emailed_at.is_(None))
                .values(emailed_at=claimed_at).execution_options(synchronize_session=False)).rowcount
            db.session.commit()
            if not claimed:  # another worker has it
                continue
            note = db.session.get(Notification, note_id)
            try:
                smtp = smtp or stack.enter_context(_smtp())
                smtp.send_message(_message(note.user.email, note.title, email_text(note)))
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
                if not _permanent(exc):
                    # 4xx (greylisting, "too many messages, try again later"): the server asks to wait, not this
                    # message's fault — give the claim back and stop; the next run tries again.
                    _unclaim(note_id, claimed_at)
                    current_app.logger.warning("e-mail deferred at notification %s: %s", note_id, exc)
                    break
                # 5xx: this message's fault (an address that does not exist, content refused): it stays claimed,
                # so it is not tried every hour; the inbox still holds it.
                current_app.logger.warning("notification %s not e-mailed to %s: %s", note_id, note.user.email, exc)
                continue
            except (OSError, smtplib.SMTPException) as exc:
                # The server's fault (unreachable, gone away): give the claim back for the next run and stop.
                _unclaim(note_id, claimed_at)
                current_app.logger.warning("e-mail stopped at notification %s: %s", note_id, exc)
                break
            sent += 1
    return sent


def _permanent(exc: Exception) -> bool:
    """A refusal that is the message's own (an SMTP 5xx reply), not a request to try later (4xx)."""
    recipients = getattr(exc, "recipients", None)
    if recipients:  # SMTPRecipientsRefused: every recipient's (code, reply)
        return all(int(code) >= 500 for code, _reply in recipients.values())
    return int(getattr(exc, "smtp_code", 0) or 0) >= 500


def _unclaim(note_id: int, claimed_at) -> None:
    db.session.execute(sa.update(Notification).where(
        Notification.id == note_id, Notification.emailed_at == claimed_at).values(emailed_at=None)
        .execution_options(synchronize_session=False))
    db.session.commit()


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
