"""Registry rules: firm applications and library status, staff roster, recusal register, expert pool."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased, joinedload, selectinload

from evalhub.core import accounts, audit, concurrency, files, jobs, passwords, permissions, ratelimit
from evalhub.core.batches import batches
from evalhub.core.enums import Field, Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.inputs import check_name, required_reason
from evalhub.core.notifications import emit
from evalhub.core.models import Bureau, BudgetUnit, StoredFile, User
from evalhub.core.personal import birth_month_day, protect_id_number, reveal_id_number, validate_id_number
from evalhub.core.services import create_user, set_enabled, void_links
from evalhub.core.settings import get_setting
from evalhub.core.steps import Step
from evalhub.core.timeutil import beijing_today, format_beijing, utcnow, years_before
from evalhub.core.validators import validate_uscc
from evalhub.extensions import db
from evalhub.registry import counts  # noqa: F401  (firm and expert counts kept on every write: registered here)
from evalhub.registry.models import (
    CertificateKind,
    CounterpartType,
    Degree,
    Expert,
    ExpertStatus,
    ExpertTie,
    Firm,
    FirmDocument,
    FirmDocumentKind,
    FirmKind,
    FirmRelation,
    FirmStaff,
    FirmStatus,
    FirmStatusChange,
    LegalForm,
    ProfessionalTitle,
    RelationKind,
    StaffCertificate,
    StaffRole,
    TieKind,
    expert_field,
    firm_field,
)


# Two requests registering the same firm or expert at the same moment: the second's unique violation
# answers 409 with these words (core.concurrency), not 500.
concurrency.unique_message("firm", "该统一社会信用代码的机构已经登记（可能是同时提交的另一请求刚刚录入），请刷新后查看，不要重复录入。")
concurrency.unique_message("expert", "该身份证号码的专家已在专家库中（可能是同时提交的另一请求刚刚录入），请刷新后查看，不要重复录入。")


def _require_text(errors: dict[str, str], name: str, value: str | None, label: str, max_len: int, *,
                  identifier: bool = False) -> str:
    """Stripped, present, at most ``max_len``; an ``identifier`` (a firm's or a person's name) also free of
    direction overrides and zero-width characters (``core.inputs``)."""
    value = (value or "").strip()
    if not value:
        errors[name] = f"请填写{label}"
    elif len(value) > max_len:
        errors[name] = f"{label}不能超过 {max_len} 个字符"
    elif identifier:
        check_name(errors, name, value, label)
    return value


def _optional_text(errors: dict[str, str], name: str, value: str | None, label: str, max_len: int) -> str | None:
    """Stripped, None when empty, at most ``max_len`` (its column's length: an import has no form to bound it)."""
    value = (value or "").strip()
    if len(value) > max_len:
        errors[name] = f"{label}不能超过 {max_len} 个字符"
    return value or None


_raise_if = ValidationFailed.raise_if  # refuse once, naming every problem found


def parse_enum(errors: dict[str, str], name: str, enum_cls, value: Any, label: str):
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls.from_label(str(value or ""))
    except ValueError:
        errors[name] = f"{label}无效：{value}" if value not in (None, "") else f"请选择{label}"
        return None


def parse_fields(errors: dict[str, str], values: Iterable[Any], name: str = "fields") -> list[Field]:
    out: list[Field] = []
    for v in values:
        v = v.strip() if isinstance(v, str) else v
        if not v:
            continue
        try:
            out.append(v if isinstance(v, Field) else Field.from_label(v))
        except ValueError:
            errors[name] = f"业务领域无效：{v}"
    if not out and name not in errors:
        errors[name] = "请至少选择一个业务领域"
    return list(dict.fromkeys(out))


@dataclass
class Cleaned:
    """A firm's or an expert's input once every field is valid: the row's column values and its 业务领域."""
    values: dict[str, Any]
    fields: list[Field]


# --- firms -----------------------------------------------------------------------------------------

@dataclass
class FirmInput:
    name: str
    uscc: str
    legal_form: Any
    kind: Any
    address: str
    legal_representative: str
    contact_name: str
    contact_phone: str
    fields: list[Any]
    contact_email: str | None = None
    founded_on: date | None = None
    description: str | None = None
    declares_no_major_violation: bool = False


def clean_firm(data: FirmInput, *, existing: Firm | None = None, require_declaration: bool = False,
               actor: User | None = None) -> Cleaned:
    """Validate every field at once, so the user sees all problems together. A code already registered names
    the firm holding it only to an ``actor`` who may see that firm (an application, a refusal are its bureau's
    business; the public registration form has no actor)."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {
        "name": _require_text(errors, "name", data.name, "机构名称", 120, identifier=True),
        "address": _require_text(errors, "address", data.address, "住所地址", 200),
        "legal_representative": _require_text(errors, "legal_representative", data.legal_representative, "法定代表人（负责人）", 50,
                                              identifier=True),
        "contact_name": _require_text(errors, "contact_name", data.contact_name, "联系人", 50, identifier=True),
        "contact_phone": _require_text(errors, "contact_phone", data.contact_phone, "联系电话", 30),
        "contact_email": _optional_text(errors, "contact_email", data.contact_email, "电子邮箱", 120),
        "founded_on": data.founded_on,
        "description": (data.description or "").strip() or None,
        "declares_no_major_violation": bool(data.declares_no_major_violation),
        "legal_form": parse_enum(errors, "legal_form", LegalForm, data.legal_form, "组织形式"),
        "kind": parse_enum(errors, "kind", FirmKind, data.kind, "机构类型"),
    }
    try:
        values["uscc"] = validate_uscc(data.uscc)
        clash = db.session.execute(sa.select(Firm).where(Firm.uscc == values["uscc"])).scalar_one_or_none()
        if clash is not None and clash is not existing:
            if actor is not None and permissions.can(actor, "firm.view", clash):
                errors["uscc"] = f"该统一社会信用代码已登记（{clash.name}，{clash.bureau.short_name}，{clash.status.label}）"
            else:
                errors["uscc"] = "该统一社会信用代码已登记，如有疑问请联系所在地财政局"
    except ValidationFailed as exc:
        errors["uscc"] = exc.fields["uscc"]
    if values["contact_email"] and "@" not in values["contact_email"] and "contact_email" not in errors:
        errors["contact_email"] = "电子邮箱格式不正确"
    if data.founded_on and data.founded_on > beijing_today():
        errors["founded_on"] = "成立日期不能晚于今天"
    if require_declaration and not values["declares_no_major_violation"]:
        errors["declares_no_major_violation"] = "申请入库须承诺近三年在评价工作中无重大违法违规记录"
    fields = parse_fields(errors, data.fields)
    _raise_if(errors)
    return Cleaned(values, fields)


def _set_fields(table: sa.Table, key: str, owner_id: int, fields: list[Field]) -> None:
    """Replace the fields of a firm or expert in its association table (``key`` is its id column)."""
    db.session.execute(table.delete().where(table.c[key] == owner_id))
    if fields:
        db.session.execute(table.insert(), [{key: owner_id, "field": f} for f in fields])


def _set_firm_fields(firm: Firm, fields: list[Field]) -> None:
    _set_fields(firm_field, "firm_id", firm.id, fields)


def create_firm(data: FirmInput, bureau: Bureau, actor: User | None, *, via: str = "staff",
                clean: Cleaned | None = None) -> Firm:
    """Enter a firm into a bureau's library as a pending application.

    ``via`` is "staff" (entered by bureau staff), "self" (the firm's own application) or "import". The one
    who enters it must be one who may enter firms into that bureau's library ("firm.create": its own staff, the
    system administrator), on every path — the web page, the API, an import job run later; ``actor`` None is the
    system (the firm's own application, ``register_firm_application``, with its own limits; the demo loader).
    """
    if actor is not None:
        permissions.require(actor, "firm.create", bureau)
    clean = clean or clean_firm(data, require_declaration=(via == "self"), actor=actor)
    firm = Firm(**clean.values, bureau_id=bureau.id, status=FirmStatus.PENDING,
                status_since=utcnow(), applied_at=utcnow(), created_by_id=actor.id if actor else None)
    db.session.add(firm)
    db.session.flush()
    _set_firm_fields(firm, clean.fields)
    db.session.add(FirmStatusChange(firm_id=firm.id, from_status=None, to_status=FirmStatus.PENDING,
                                    reason={"self": "机构自行申请入库", "import": "批量导入"}.get(via, "财政局录入"),
                                    effective_from=beijing_today(), actor_id=actor.id if actor else None))
    audit.record("firm.applied", firm, actor=actor,
                 summary=f"{firm.name} 申请进入{bureau.short_name}第三方机构库（{'自行申请' if via == 'self' else '财政局录入' if via == 'staff' else '批量导入'}）",
                 payload={"uscc": firm.uscc, "via": via})
    return firm


def register_firm_application(data: FirmInput, bureau: Bureau, *, username: str, password: str,
                              display_name: str, address: str | None = None) -> tuple[Firm, User]:
    """A firm's self-registration: the application and its first user account, in one transaction. Anyone may
    ask, so applications per source ``address`` are limited like the other public forms (RateLimited, 429):
    each one is a firm, an account and a task in the bureau's admission queue."""
    ratelimit.count_hit("firm_registration", address,
                        max(1, int(current_app.config.get("FIRM_REGISTRATIONS_PER_HOUR", 10))))
    errors: dict[str, str] = {}
    clean = None
    try:
        clean = clean_firm(data, require_declaration=True)
    except ValidationFailed as exc:
        errors.update(exc.fields)
    problem = accounts.username_problem((username or "").strip())  # the same rule as every other account
    if problem:
        errors["username"] = problem
    if len(password or "") < 8:
        errors["password"] = "密码至少需要 8 位"
    _raise_if(errors)
    firm = create_firm(data, bureau, None, via="self", clean=clean)
    user = create_user(username=username, password=password, display_name=display_name or data.contact_name,
                       role=Role.FIRM_USER, actor=None, firm_id=firm.id, email=data.contact_email)
    # The contact is the firm's first administrator. Until the firm is admitted the account serves the
    # application only (registry/permissions.py, APPLICATION_ACTIONS).
    user.is_firm_admin = True
    firm.created_by_id = user.id
    return firm, user


def update_firm(firm: Firm, data: FirmInput, actor: User) -> Firm:
    """Change a firm's details, by one who may edit the firm ("firm.edit": its bureau's staff; its own people while
    it is in the library or applying), on every path — judged on the firm as it stands, not as the form loaded it
    (a removal committed meanwhile ends the firm's own edits)."""
    # the row as it stands (an admission committed while the form was open counts): locked, then read again
    db.session.execute(sa.select(Firm.id).where(Firm.id == firm.id).with_for_update())
    db.session.refresh(firm, ["status", "uscc"])
    permissions.require(actor, "firm.edit", firm)
    clean = clean_firm(data, existing=firm, actor=actor)
    if (actor.role == Role.FIRM_USER and firm.status != FirmStatus.PENDING
            and clean.values["uscc"] != firm.uscc):
        # the code is the legal person the bureau reviewed and admitted: another one applies on its own
        raise ValidationFailed(
            "入库后机构不能自行修改统一社会信用代码：同一法人的更正请联系机构库所在财政局办理；其他法人请另行申请入库。",
            {"uscc": "入库后不能自行修改"})
    changed = {k: v for k, v in clean.values.items() if getattr(firm, k) != v}
    for k, v in clean.values.items():
        setattr(firm, k, v)
    old_fields = set(firm.fields)
    _set_firm_fields(firm, clean.fields)
    if set(clean.fields) != old_fields:
        changed["fields"] = [f.value for f in clean.fields]
    if changed:
        audit.record("firm.updated", firm, actor=actor, summary=f"修改机构信息：{firm.name}",
                     payload={"changed": sorted(changed)})
    return firm


@dataclass(frozen=True)
class StatusAction(Step[FirmStatus]):
    permission: str
    needs_reason: bool = True


FIRM_STATUS_ACTIONS: dict[str, StatusAction] = {
    a.action: a
    for a in [
        StatusAction("admit", "准予入库", (FirmStatus.PENDING,), FirmStatus.ADMITTED, "firm.review"),
        StatusAction("reject", "不予入库", (FirmStatus.PENDING,), FirmStatus.REJECTED, "firm.review"),
        StatusAction("suspend", "暂停", (FirmStatus.ADMITTED,), FirmStatus.SUSPENDED, "firm.status"),
        StatusAction("reinstate", "恢复", (FirmStatus.SUSPENDED,), FirmStatus.ADMITTED, "firm.status"),
        StatusAction("remove", "移出机构库", (FirmStatus.ADMITTED, FirmStatus.SUSPENDED), FirmStatus.REMOVED, "firm.status"),
        StatusAction("blacklist", "列入黑名单",
                     (FirmStatus.ADMITTED, FirmStatus.SUSPENDED, FirmStatus.REMOVED), FirmStatus.BLACKLISTED, "firm.status"),
        # The ban ends, the removal it carried stays: coming back into the library is an application the
        # bureau reviews on the papers as they are then (admission), not a date on a calendar.
        StatusAction("lift_blacklist", "解除黑名单", (FirmStatus.BLACKLISTED,), FirmStatus.REMOVED, "firm.status"),
        # A refusal or a removal is no ban (that is 黑名单; 政府采购法 第五条): the firm completes its papers and
        # applies again, back in the bureau's admission queue.
        StatusAction("reapply", "重新申请入库", (FirmStatus.REJECTED, FirmStatus.REMOVED), FirmStatus.PENDING,
                     "firm.reapply", needs_reason=False),
    ]
}

# A suspension or blacklisting with an end date (截止日期: the last day it holds) is over from the day after,
# by these steps. The hourly job takes them (``lift_lapsed_statuses``); ``status_on`` answers with the status
# the step will reach, so that no decision waits for the job to have run.
LAPSES: dict[FirmStatus, str] = {FirmStatus.SUSPENDED: "reinstate", FirmStatus.BLACKLISTED: "lift_blacklist"}


# What an application must carry before the bureau may admit it: 财预〔2021〕6号 (第三方机构预算绩效评价业务
# 监督管理暂行办法) as summarised in DOMAIN §3 — business licence, credit record, staff qualifications, quality
# control, confidentiality and training rules, and a declaration of no major violation in the last 3 years.
ADMISSION_DOCUMENTS: tuple[FirmDocumentKind, ...] = (
    FirmDocumentKind.LICENCE, FirmDocumentKind.CREDIT_RECORD, FirmDocumentKind.STAFF_QUALIFICATIONS,
    FirmDocumentKind.QUALITY_CONTROL, FirmDocumentKind.CONFIDENTIALITY, FirmDocumentKind.TRAINING,
    FirmDocumentKind.NO_VIOLATION,
)


def missing_admission_documents(firm: Firm) -> list[FirmDocumentKind]:
    """The admission documents this firm has not uploaded yet, in the order of ``ADMISSION_DOCUMENTS``."""
    have = set(db.session.execute(sa.select(FirmDocument.kind).where(FirmDocument.firm_id == firm.id)).scalars())
    return [kind for kind in ADMISSION_DOCUMENTS if kind not in have]


def _admission_errors(firm: Firm, errors: dict[str, str]) -> None:
    missing = missing_admission_documents(firm)
    if missing:
        errors["documents"] = "缺少入库材料：" + "、".join(k.label for k in missing) + "。请机构上传后再准予入库。"


# Rosters that practise: a person is on one of these at a time. An application's roster is checked when the
# bureau admits it (``_roster_errors``), so an application nobody reviewed holds nobody off a library firm's.
LIBRARY_ROSTERS = (FirmStatus.ADMITTED, FirmStatus.SUSPENDED)


def _roster_errors(firm: Firm, errors: dict[str, str]) -> None:
    """Admission brings the application's roster into the library: refused while someone on it is active on
    another library firm's roster (named to the bureau; the other firm is not)."""
    mine = db.session.execute(sa.select(FirmStaff).where(FirmStaff.firm_id == firm.id, FirmStaff.active.is_(True))
                              .order_by(FirmStaff.id)).scalars().all()
    for digest in sorted({s.id_number_digest for s in mine}):  # one order for every taker: no deadlock
        concurrency.serialise(f"staff.person:{digest}")
    if not mine:
        return
    other = aliased(FirmStaff)
    taken = set(db.session.execute(
        sa.select(other.id_number_digest).join(Firm, Firm.id == other.firm_id)
        .where(other.id_number_digest.in_([s.id_number_digest for s in mine]), other.active.is_(True),
               other.firm_id != firm.id, Firm.status.in_(LIBRARY_ROSTERS))).scalars())
    clashes = [f"{s.name}（{s.id_number_masked}）" for s in mine if s.id_number_digest in taken]
    if clashes:
        errors["staff"] = ("名册中以下人员正在机构库中其他机构执业，同一人员不得同时在多家机构执业：" + "、".join(clashes)
                           + "。请机构核实后将其移出名册，或待其原机构办理离岗后再准予入库。")


def _tell_firm(firm: Firm, spec: StatusAction, reason: str) -> None:
    """The firm hears of every library decision about it (notification matrix)."""
    link, bureau = f"/firms/{firm.id}", firm.bureau.short_name
    if spec.target == FirmStatus.ADMITTED and spec.action == "admit":
        emit("firm_admitted", link=link, firm_id=firm.id, bureau=bureau, reason=f"理由：{reason}" if reason else "")
    elif spec.target == FirmStatus.REJECTED:
        emit("firm_refused", link=link, firm_id=firm.id, bureau=bureau, reason=reason)
    elif spec.action in ("reinstate", "lift_blacklist"):
        # out of the blacklist is not back in the library: the firm applies again (重新申请入库)
        again = "。贵机构现为“已移出”，如需重新入库，请补齐材料后提出重新申请入库" if spec.action == "lift_blacklist" else ""
        emit("firm_restored", link=link, firm_id=firm.id, bureau=bureau, status=spec.label, reason=reason.rstrip("。"),
             next_step=again)
    elif spec.target in (FirmStatus.SUSPENDED, FirmStatus.REMOVED, FirmStatus.BLACKLISTED):
        emit("firm_suspended", link=link, firm_id=firm.id, bureau=bureau, status=spec.target.label, reason=reason)


def available_status_actions(firm: Firm, user: User) -> list[StatusAction]:
    return [a for a in FIRM_STATUS_ACTIONS.values()
            if firm.status in a.sources and permissions.can(user, a.permission, firm)]


def change_firm_status(firm: Firm, action: str, actor: User, *, reason: str | None = None,
                       effective_from: date | None = None, effective_until: date | None = None,
                       documents: Iterable[tuple[Any, str, bytes]] = ()) -> FirmStatusChange:
    """Move the firm in the library. ``documents`` — (kind, filename, bytes) — are attached first, in the same
    transaction (a bureau receiving the application on paper, the demo); admission then checks they are all there."""
    spec = FIRM_STATUS_ACTIONS.get(action)
    if spec is None:
        raise ValidationFailed(f"未知的操作：{action}", {"action": "未知的操作"})
    permissions.require(actor, spec.permission, firm)
    concurrency.hold(firm)
    spec.refuse_unless_from(firm.status, "机构")
    for kind, filename, data in documents:
        _attach_document(firm, kind, filename, data, actor, keep_current=True)
    reason = (reason or "").strip()
    errors: dict[str, str] = {}
    if spec.needs_reason and not reason:
        errors["reason"] = f"“{spec.label}”必须填写原因"
    if len(reason) > 500:
        errors["reason"] = "原因不能超过 500 个字符"
    today = beijing_today()
    start = effective_from or today
    # The status changes now: a decision taken earlier on paper may carry its own date, but not a later one,
    # and a suspension cannot be recorded as already over.
    if start > today:
        errors["effective_from"] = "生效日期不能晚于今天（状态即时变更）"
    if effective_until and effective_until < max(start, today):
        errors["effective_until"] = "截止日期不能早于生效日期" if effective_until < start else "截止日期不能早于今天"
    if effective_until and spec.target not in (FirmStatus.SUSPENDED, FirmStatus.BLACKLISTED):
        errors["effective_until"] = "只有暂停和列入黑名单可以设置截止日期"
    if spec.action == "admit":
        _admission_errors(firm, errors)
        _roster_errors(firm, errors)
    _raise_if(errors)
    change = FirmStatusChange(firm_id=firm.id, from_status=firm.status, to_status=spec.target,
                              reason=reason or spec.label, effective_from=start, effective_until=effective_until,
                              actor_id=actor.id)
    db.session.add(change)
    old = firm.status
    firm.status = spec.target
    firm.status_reason = reason or None
    firm.status_since = utcnow()
    firm.status_until = effective_until
    if spec.target == FirmStatus.ADMITTED and firm.admitted_at is None:
        firm.admitted_at = utcnow()
    if spec.action == "reapply":
        firm.applied_at = utcnow()  # back in the admission queue as the application it now is
    if spec.target not in _ACCOUNT_STATUSES:  # rejected, removed, blacklisted: no link into its accounts
        _void_organisation_links(firm_id=firm.id)
    audit.record(f"firm.{action}", firm, actor=actor,
                 summary=f"{firm.name}：{old.label} → {spec.target.label}" + (f"（{reason}）" if reason else ""),
                 payload={"from": old, "to": spec.target, "reason": reason,
                          "from_date": start, "until": effective_until})
    _tell_firm(firm, spec, reason)
    return change


def impose_suspension(firm: Firm, reason: str) -> FirmStatusChange | None:
    """A suspension the rules impose (credit: an intentional violation, whatever the score): a system action
    with no user, in the name of the firm's library bureau (its owner) whichever bureau found the cause;
    audited and told to the firm like any suspension. A firm already suspended (by its bureau, for a term) is
    suspended on without an end date — the earlier term was set for another cause and must not end this one —
    recorded as its own change (suspended → suspended) so the rating can name it and lift it. None when the firm
    is out of the library (removed, blacklisted, an application)."""
    concurrency.hold(firm)
    if firm.status == FirmStatus.SUSPENDED:
        return _system_status_change(firm, "suspend", reason, source=FirmStatus.SUSPENDED, until=None)
    return _system_status_change(firm, "suspend", reason)


def _system_status_change(firm: Firm, action: str, reason: str, *, source: FirmStatus | None = None,
                          target: FirmStatus | None = None, until: date | None = None) -> FirmStatusChange | None:
    """A status step the rules take (no user): recorded, audited and told to the firm like a bureau's; None
    when the firm's status is not one the step leaves from. ``source`` / ``target`` let the rules stay in a
    status with a new term (an imposed suspension over a bureau's, and the bureau's back after it)."""
    spec = FIRM_STATUS_ACTIONS[action]
    concurrency.hold(firm)
    if firm.status not in spec.sources and firm.status != source:
        return None
    to = target or spec.target
    reason = reason.strip()[:500]
    change = FirmStatusChange(firm_id=firm.id, from_status=firm.status, to_status=to, reason=reason,
                              effective_from=beijing_today(), effective_until=until, actor_id=None)
    db.session.add(change)
    old, was_until = firm.status, firm.status_until
    firm.status, firm.status_reason, firm.status_since = to, reason, utcnow()
    firm.status_until = until
    term = f"，截止日期 {until:%Y-%m-%d}" if until else ("，不设截止日期" if was_until else "")
    audit.record(f"firm.{action}", firm, actor=None, bureau_id=firm.bureau_id,
                 summary=f"{firm.name}：{old.label} → {to.label}（系统按规则执行：{reason}{term}）",
                 payload={"from": old, "to": to, "reason": reason, "system": True,
                          "until_before": was_until, "until": until})
    _tell_firm(firm, spec, reason)
    return change


def status_on(firm: Firm, day: date | None = None) -> FirmStatus:
    """The firm's library status on ``day`` (today): a suspension or blacklisting whose end date has passed
    counts as lifted whether or not the job has recorded it yet."""
    day = day or beijing_today()
    action = LAPSES.get(firm.status)
    if action is not None and firm.status_until is not None and firm.status_until < day:
        return FIRM_STATUS_ACTIONS[action].target
    return firm.status


def lift_lapsed_statuses(today: date | None = None) -> int:
    """Record the end of every suspension and blacklisting whose end date has passed, as a system step
    (recorded, audited, told to the firm). Run hourly, so the day after the end date is never missed."""
    today = today or beijing_today()
    due = db.session.execute(sa.select(Firm).where(Firm.status.in_(list(LAPSES)), Firm.status_until < today)
                             .order_by(Firm.id)).scalars().all()
    lifted = 0
    for firm in due:  # every firm's lock first, in one order, before the first audit event takes the chain's
        concurrency.hold(firm)  # and a bureau's step committed meanwhile stands
    for firm in due:
        if firm.status not in LAPSES or status_on(firm, today) == firm.status:
            continue
        until = firm.status_until
        if _system_status_change(firm, LAPSES[firm.status],
                                 f"{firm.status.label}截止日期 {until:%Y-%m-%d} 已届满") is not None:
            lifted += 1
    return lifted


jobs.periodic("registry.status_terms", minute="3")(lift_lapsed_statuses)


def lift_imposed_suspension(firm: Firm, change_id: int, reason: str) -> FirmStatusChange | None:
    """End a suspension ``impose_suspension`` made (``change_id``) once its cause is gone (an upheld objection
    struck the violation out): a system action, audited and told to the firm. None when the firm's status has
    moved on since (reinstated, suspended again by the bureau, removed): what came after stands. A suspension
    imposed over a bureau's earlier one gives that one back — with its end date while that has not passed,
    open-ended if it had none — rather than readmitting a firm its bureau suspended for another cause."""
    # the firm's lock before its history is read: a suspension another rating is imposing meanwhile is the latest
    # change once it commits, and this lift (no longer of the latest change) leaves it standing
    concurrency.hold(firm)
    latest = db.session.execute(sa.select(FirmStatusChange).where(FirmStatusChange.firm_id == firm.id)
                                .order_by(FirmStatusChange.id.desc()).limit(1)).scalar_one_or_none()
    if latest is None or latest.id != change_id:
        return None
    if latest.from_status == FirmStatus.SUSPENDED:
        earlier = db.session.execute(
            sa.select(FirmStatusChange).where(FirmStatusChange.firm_id == firm.id, FirmStatusChange.id < change_id,
                                              FirmStatusChange.to_status == FirmStatus.SUSPENDED)
            .order_by(FirmStatusChange.id.desc()).limit(1)).scalar_one_or_none()
        until = earlier.effective_until if earlier is not None else None
        if earlier is not None and (until is None or until >= beijing_today()):
            return _system_status_change(firm, "suspend", f"{reason}；原暂停（{earlier.reason}）继续执行",
                                         source=FirmStatus.SUSPENDED, until=until)
    return _system_status_change(firm, "reinstate", reason)


def attach_firm_document(firm: Firm, kind: Any, filename: str, data: bytes, actor: User) -> FirmDocument:
    """Add a document to the firm's list (newest first; the latest of a kind is the one the bureau reads), by one
    who may edit the firm (its own people, its bureau's staff). The file that is the latest of its kind already,
    uploaded again — a double click, a resend, two of the firm's people at once — is refused, naming it (409),
    before anything is stored; a different file, or this one again after another of its kind superseded it, is
    added."""
    permissions.require(actor, "firm.edit", firm)
    return _attach_document(firm, kind, filename, data, actor)


def _attach_document(firm: Firm, kind: Any, filename: str, data: bytes, actor: User, *,
                     keep_current: bool = False) -> FirmDocument:
    """``attach_firm_document`` without its permission (a status change checks its own). ``keep_current``: the
    one on record is the result instead of a 409 (papers the bureau received attached with a status change, which
    need not fail for one already uploaded)."""
    errors: dict[str, str] = {}
    kind = parse_enum(errors, "kind", FirmDocumentKind, kind, "材料类型")
    _raise_if(errors)
    # the firm's lock, as its status changes take it: the second of two uploads at once waits here and finds the
    # first's row, and an admission reading the documents reads them whole
    concurrency.hold(firm)
    latest = sa.select(sa.func.max(FirmDocument.id)).where(FirmDocument.firm_id == firm.id,
                                                           FirmDocument.kind == kind).scalar_subquery()
    current = db.session.execute(sa.select(FirmDocument).join(StoredFile, StoredFile.id == FirmDocument.file_id).where(
        FirmDocument.id == latest, StoredFile.sha256 == files.digest(data))).scalar_one_or_none()
    if current is not None:
        if keep_current:
            return current
        raise Conflict(f"{firm.name} 已于 {format_beijing(current.uploaded_at)} 上传相同的{kind.label}"
                       f"（{current.file.original_name}），无需重复上传。")
    allowed = files.LICENCE_KINDS if kind == FirmDocumentKind.LICENCE else files.DOCUMENT_KINDS + ("png", "jpg")
    stored = files.store(filename, data, allowed=allowed, actor=actor)
    document = FirmDocument(firm_id=firm.id, kind=kind, file_id=stored.id)
    db.session.add(document)
    audit.record("firm.document_added", firm, actor=actor, summary=f"{firm.name} 上传{kind.label}：{stored.original_name}",
                 payload={"sha256": stored.sha256, "kind": kind})
    return document


# --- staff roster ----------------------------------------------------------------------------------

@dataclass
class StaffInput:
    name: str
    id_number: str
    role: Any
    years_experience: Any
    title: str | None = None
    phone: str | None = None
    certificates: list[tuple[Any, str | None]] = field(default_factory=list)  # (kind, number)


def add_staff(firm: Firm, data: StaffInput, actor: User) -> FirmStaff:
    permissions.require(actor, "firm.staff.manage", firm)
    errors: dict[str, str] = {}
    name = _require_text(errors, "name", data.name, "姓名", 50, identifier=True)
    role = parse_enum(errors, "role", StaffRole, data.role, "岗位")
    try:
        years = int(data.years_experience)
        if not 0 <= years <= 60:
            errors["years_experience"] = "从业年限应在 0–60 年之间"
    except (TypeError, ValueError):
        errors["years_experience"] = "从业年限必须是整数"
        years = 0
    protected = {}
    try:
        number = validate_id_number(data.id_number)
        protected = protect_id_number(number)
        # one person on one roster: the second of two simultaneous entries waits here and sees the first. The
        # firm first, as admission takes it (firm, then its people): a person added while the application is
        # admitted is either seen by the admission's roster check or sees the firm admitted.
        concurrency.hold(firm)
        concurrency.serialise(f"staff.person:{protected['id_number_digest']}")
        # Only a library firm's roster practises: an application's holds nobody off (its roster is checked
        # at admission), and an application is told of its own roster only — never that a number is on another.
        rosters = FirmStaff.firm_id == firm.id
        if firm.status in LIBRARY_ROSTERS:
            rosters = sa.or_(rosters, Firm.status.in_(LIBRARY_ROSTERS))
        twin = db.session.execute(
            sa.select(FirmStaff).join(Firm, Firm.id == FirmStaff.firm_id)
            .where(FirmStaff.id_number_digest == protected["id_number_digest"], FirmStaff.active.is_(True), rosters)
        ).scalars().first()
        if twin is not None:
            where = "本机构名册" if twin.firm_id == firm.id else "其他机构名册"
            errors["id_number"] = f"该人员已在{where}中登记，同一人员不得同时在多家机构执业"
    except ValidationFailed as exc:
        errors.update(exc.fields)
    certificates = []
    for kind, number in data.certificates:
        if not kind:
            continue
        cert_kind = parse_enum(errors, "certificates", CertificateKind, kind, "证书类型")
        certificates.append(StaffCertificate(kind=cert_kind, number=(number or "").strip() or None))
    _raise_if(errors)
    staff = FirmStaff(firm=firm, name=name, role=role, years_experience=years,  # firm=: joins a loaded roster
                      title=(data.title or "").strip() or None, phone=(data.phone or "").strip() or None,
                      certificates=certificates, **protected)
    db.session.add(staff)
    db.session.flush()
    audit.record("firm.staff_added", firm, actor=actor, summary=f"{firm.name} 名册新增 {name}（{role.label}）",
                 payload={"staff_id": staff.id, "id_masked": staff.id_number_masked})
    return staff


def deactivate_staff(staff: FirmStaff, actor: User, reason: str) -> None:
    permissions.require(actor, "firm.staff.manage", staff.firm)
    if not (reason or "").strip():
        raise ValidationFailed("请填写人员离岗原因。", {"reason": "必填"})
    concurrency.hold(staff)  # a double click: the second reads the departure the first recorded
    if not staff.active:
        raise Conflict("该人员已不在名册中。")
    staff.active, staff.left_on = False, beijing_today()
    audit.record("firm.staff_removed", staff.firm, actor=actor,
                 summary=f"{staff.firm.name} 名册移除 {staff.name}：{reason.strip()}", payload={"staff_id": staff.id})


# --- recusal register ------------------------------------------------------------------------------

def _check_period(errors: dict[str, str], start_date: date | None, end_date: date | None) -> None:
    """A relation's or a tie's period: a start, and an end (if any) not before it."""
    if start_date is None:
        errors["start_date"] = "请填写关系开始日期"
    elif end_date and end_date < start_date:
        errors["end_date"] = "结束日期不能早于开始日期"


def add_relation(firm: Firm, *, kind: Any, bureau_id: int | None, budget_unit_id: int | None,
                 start_date: date | None, end_date: date | None, note: str | None, actor: User) -> FirmRelation:
    permissions.require(actor, "firm.relation.manage", firm)
    errors: dict[str, str] = {}
    kind = parse_enum(errors, "kind", RelationKind, kind, "关系类型")
    if bool(bureau_id) == bool(budget_unit_id):
        errors["counterpart"] = "请选择一个关联方：财政局或预算单位（只能选一个）"
    elif bureau_id and db.session.get(Bureau, bureau_id) is None:
        errors["counterpart"] = "关联的财政局不存在"
    elif budget_unit_id and db.session.get(BudgetUnit, budget_unit_id) is None:
        errors["counterpart"] = "关联的预算单位不存在"
    _check_period(errors, start_date, end_date)
    _raise_if(errors)
    # the same relation entered twice (a double click, a resend) is on record once
    concurrency.refuse_twin(f"firm-relations:{firm.id}", sa.select(FirmRelation).where(
        FirmRelation.firm_id == firm.id, FirmRelation.kind == kind, FirmRelation.start_date == start_date,
        FirmRelation.bureau_id.is_not_distinct_from(bureau_id or None),
        FirmRelation.budget_unit_id.is_not_distinct_from(budget_unit_id or None),
        FirmRelation.end_date.is_not_distinct_from(end_date)),
        lambda r: f"该回避关系已登记（{r.kind.label} — {r.counterpart_name}，自 {r.start_date:%Y-%m-%d} 起），无需重复登记。")
    relation = FirmRelation(firm_id=firm.id, kind=kind, bureau_id=bureau_id or None,
                            budget_unit_id=budget_unit_id or None, start_date=start_date, end_date=end_date,
                            note=(note or "").strip() or None, created_by_id=actor.id)
    db.session.add(relation)
    db.session.flush()
    audit.record("firm.relation_added", firm, actor=actor,
                 summary=f"{firm.name} 登记回避关系：{kind.label} — {relation.counterpart_name}",
                 payload={"relation_id": relation.id, "kind": kind, "bureau_id": bureau_id,
                          "budget_unit_id": budget_unit_id, "start": start_date, "end": end_date})
    return relation


def end_relation(relation: FirmRelation, end_date: date | None, actor: User, reason: str | None = None) -> None:
    """End a relation still open (no end date), from today or a later day, with a reason. A relation the bureau recorded
    is the bureau's to end ("firm.relation.end"); no end date rewrites a relation as never in force (every
    exclusion it made was made on it)."""
    permissions.require(actor, "firm.relation.end", relation)
    concurrency.hold(relation)
    today = beijing_today()
    if relation.end_date is not None:  # its end is on record: the record is not rewritten
        raise Conflict(f"该回避关系已登记结束日期 {relation.end_date:%Y-%m-%d}，不能再次结束。")
    errors: dict[str, str] = {}
    if end_date is None:
        errors["end_date"] = "请填写结束日期"
    elif end_date < today:
        errors["end_date"] = "结束日期不能早于今天（已存续的关系不能倒签结束）"
    elif end_date < relation.start_date:
        errors["end_date"] = "结束日期不能早于开始日期"
    try:
        reason = required_reason(reason, missing="请填写结束原因。", missing_field="请填写结束原因", label="结束原因",
                                 maximum=300)
    except ValidationFailed as exc:
        errors.update(exc.fields)
    _raise_if(errors)
    relation.end_date = end_date
    audit.record("firm.relation_ended", relation.firm, actor=actor,
                 summary=f"{relation.firm.name} 回避关系结束：{relation.kind.label} — {relation.counterpart_name}"
                         f"（{end_date:%Y-%m-%d}，{reason}）",
                 payload={"relation_id": relation.id, "end": end_date, "reason": reason})


# --- conflicts of interest up and down the tree -------------------------------------------------------
# One description of "who a piece of work must be independent of", used for firms (recusal relations) and
# experts (declared ties, employers) alike. Each party carries the words saying why it is one, so that an
# exclusion names the tie and the party ("巴州统计局普查中心（被评价单位巴州统计局的所属单位）").

@dataclass
class Parties:
    """Who a piece of work must be independent of, each with the words saying what it is to the work."""

    bureaus: dict[int, str] = field(default_factory=dict)  # bureau id → what it is to the work ("委托方" …)
    units: dict[int, str] = field(default_factory=dict)    # budget unit id → what it is
    names: dict[str, str] = field(default_factory=dict)    # organisation name → what it is (free-text employers)

    def add_bureau(self, bureau: Bureau, role: str) -> None:
        self.bureaus.setdefault(bureau.id, role)
        self.names.setdefault(bureau.name, role)

    def add_unit(self, unit_id: int, name: str, role: str) -> None:
        self.units.setdefault(unit_id, role)
        self.names.setdefault(name, role)


def unit_rows(bureau_ids: Iterable[int]) -> dict[int, dict[int, tuple[int | None, str]]]:
    """The budget units of these bureaus, {bureau id: {unit id: (parent id, name)}}, in one statement: what
    ``conflict_parties`` walks, read once for several engagements."""
    ids = sorted(set(bureau_ids))
    out: dict[int, dict[int, tuple[int | None, str]]] = {i: {} for i in ids}
    for part in batches(ids):
        for bureau_id, uid, parent_id, name in db.session.execute(
                sa.select(BudgetUnit.bureau_id, BudgetUnit.id, BudgetUnit.parent_id, BudgetUnit.name)
                .where(BudgetUnit.bureau_id.in_(part))):
            out[bureau_id][uid] = (parent_id, name)
    return out


def _unit_tree(unit: BudgetUnit, known_units: dict[int, dict] | None = None) -> tuple[dict[int, str], dict[int, str]]:
    """The units below ``unit`` and the units above it, id → name, read from the columns (one query for the
    bureau's units, unless ``known_units`` (``unit_rows``) has them; a relationship loaded earlier may be stale
    after a parent was changed)."""
    if known_units is not None and unit.bureau_id in known_units:
        rows = dict(known_units[unit.bureau_id])  # a copy: a 主管部门 under another bureau is added below
    else:
        rows = unit_rows([unit.bureau_id])[unit.bureau_id]
    children: dict[int, list[int]] = {}
    for uid, (parent_id, _name) in rows.items():
        children.setdefault(parent_id, []).append(uid)
    below: dict[int, str] = {}
    stack = list(children.get(unit.id, []))
    while stack:
        node = stack.pop()
        if node in below or node == unit.id:
            continue
        below[node] = rows[node][1]
        stack.extend(children.get(node, []))
    above: dict[int, str] = {}
    node = rows.get(unit.id, (unit.parent_id, unit.name))[0]
    while node is not None and node not in above and node != unit.id:
        if node not in rows:  # a 主管部门 kept under another bureau
            found = db.session.execute(sa.select(BudgetUnit.parent_id, BudgetUnit.name).where(BudgetUnit.id == node)).first()
            if found is None:
                break
            rows[node] = (found[0], found[1])
        above[node] = rows[node][1]
        node = rows[node][0]
    return below, above


def conflict_parties(*, evaluated_units: Iterable[BudgetUnit] = (), commissioner_units: Iterable[BudgetUnit] = (),
                     commissioner_bureaus: Iterable[Bureau] = (), evaluated_governments: Iterable[Bureau] = (),
                     known_units: dict[int, dict] | None = None) -> Parties:
    """The parties of an evaluation with the budget-unit tree walked both ways: a 所属单位 of the evaluated
    主管部门 and the 主管部门 above an evaluated unit are parties too (the same for the commissioning unit).
    An evaluated lower government (下级政府财政运行评价) brings its finance bureau and every budget unit of it.
    ``known_units``: ``unit_rows`` already read (several evaluations at once)."""
    parties = Parties()
    for label, units in (("被评价单位", evaluated_units), ("委托方", commissioner_units)):
        for unit in units:
            if unit is None:
                continue
            parties.add_unit(unit.id, unit.name, label)
            below, above = _unit_tree(unit, known_units)
            for uid, name in sorted(below.items()):
                parties.add_unit(uid, name, f"{label}{unit.name}的所属单位")
            for uid, name in above.items():
                parties.add_unit(uid, name, f"{label}{unit.name}的主管部门")
    for bureau in commissioner_bureaus:
        if bureau is not None:
            parties.add_bureau(bureau, "委托方")
    for government in evaluated_governments:
        if government is None:
            continue
        parties.add_bureau(government, f"被评价的下级政府（{government.short_name}）财政部门")
        for uid, name in db.session.execute(sa.select(BudgetUnit.id, BudgetUnit.name)
                                            .where(BudgetUnit.bureau_id == government.id).order_by(BudgetUnit.id)).all():
            parties.add_unit(uid, name, f"被评价的下级政府（{government.short_name}）所属预算单位")
    return parties


def _merge_parties(parties: Parties | None, bureau_ids: Iterable[int], unit_ids: Iterable[int],
                   names: Iterable[str] = ()) -> Parties:
    """Bare ids and names (callers that name parties without saying what they are) merged into ``parties``."""
    out = Parties(dict(parties.bureaus), dict(parties.units), dict(parties.names)) if parties else Parties()
    for i in bureau_ids:
        if i:
            out.bureaus.setdefault(i, "")
    for i in unit_ids:
        if i:
            out.units.setdefault(i, "")
    for n in names:
        if n and n.strip():
            out.names.setdefault(n.strip(), "")
    return out


def _party(name: str, role: str) -> str:
    """"巴州统计局普查中心（被评价单位巴州统计局的所属单位）"; the bare name when the role is the name itself."""
    if not role:
        return name
    if role in ("被评价单位", "委托方"):
        return f"{role}{name}"
    return f"{name}（{role}）"


def firm_recusal_reasons(firm: Firm, *, bureau_ids: Iterable[int] = (), budget_unit_ids: Iterable[int] = (),
                         on: date | None = None, parties: Parties | None = None) -> list[str]:
    """Why this firm must recuse itself from work involving these parties (empty: none): a recusal relation
    (代理记账, 税务代理 …) in force with any of them. ``parties`` (``conflict_parties``) carries the tree."""
    on = on or beijing_today()
    parties = _merge_parties(parties, bureau_ids, budget_unit_ids)
    reasons = []
    for rel in firm.relations:
        if not rel.active_on(on):
            continue
        role = (parties.bureaus.get(rel.bureau_id) if rel.bureau_id else parties.units.get(rel.budget_unit_id)
                if rel.budget_unit_id else None)
        if role is not None:
            reasons.append(f"与{_party(rel.counterpart_name, role)}存在{rel.kind.label}关系（自 {rel.start_date:%Y-%m-%d}）")
    return reasons


# --- experts ---------------------------------------------------------------------------------------

@dataclass
class ExpertInput:
    name: str
    id_number: str
    employer: str
    title: Any
    degree: Any
    years_in_field: Any
    birth_year: Any
    fields: list[Any]
    phone: str | None = None
    email: str | None = None


def clean_expert(data: ExpertInput, *, existing: Expert | None = None) -> Cleaned:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {
        "name": _require_text(errors, "name", data.name, "姓名", 50, identifier=True),
        "employer": _require_text(errors, "employer", data.employer, "工作单位", 120, identifier=True),
        "title": parse_enum(errors, "title", ProfessionalTitle, data.title, "职称"),
        "degree": parse_enum(errors, "degree", Degree, data.degree, "学历"),
        "phone": _optional_text(errors, "phone", data.phone, "联系电话", 30),
        "email": _optional_text(errors, "email", data.email, "电子邮箱", 120),
    }
    this_year = beijing_today().year
    try:
        values["years_in_field"] = int(data.years_in_field)
        if not 0 <= values["years_in_field"] <= 60:
            errors["years_in_field"] = "从业年限应在 0–60 年之间"
    except (TypeError, ValueError):
        errors["years_in_field"] = "从业年限必须是整数"
    try:
        values["birth_year"] = int(data.birth_year)
        if not this_year - 100 <= values["birth_year"] <= this_year - 18:
            errors["birth_year"] = "出生年份不合理"
    except (TypeError, ValueError):
        errors["birth_year"] = "出生年份必须是四位整数"
    if existing is None or (data.id_number and data.id_number != existing.id_number_masked):
        try:
            number = validate_id_number(data.id_number)
            protected = protect_id_number(number)
            clash = db.session.execute(
                sa.select(Expert).where(Expert.id_number_digest == protected["id_number_digest"])
            ).scalar_one_or_none()
            if clash is not None and clash is not existing:
                errors["id_number"] = f"该身份证号码已在专家库中登记（{clash.name}）"
            values.update(protected)
            if "birth_year" in values and int(number[6:10]) != values["birth_year"]:
                errors["birth_year"] = "出生年份与身份证号码不一致"
        except ValidationFailed as exc:
            errors.update(exc.fields)
    elif "birth_year" in values:
        # the edit form sends the number back masked: the birth year is checked against the number on record, so
        # an edit cannot make an expert younger than the identity number says (and pass the age rule)
        if int(reveal_id_number(existing.id_number_encrypted)[6:10]) != values["birth_year"]:
            errors["birth_year"] = "出生年份与身份证号码不一致"
    fields = parse_fields(errors, data.fields)
    _raise_if(errors)
    return Cleaned(values, fields)


def _set_expert_fields(expert: Expert, fields: list[Field]) -> None:
    _set_fields(expert_field, "expert_id", expert.id, fields)


def create_expert(data: ExpertInput, bureau: Bureau, actor: User | None, *, clean: Cleaned | None = None) -> Expert:
    """Enter an expert into a bureau's pool, by one who may ("expert.create": its own staff, the system
    administrator) on every path — the web page, the API, an import job run later; ``actor`` None is the system
    (the demo loader, test fixtures)."""
    if actor is not None:
        permissions.require(actor, "expert.create", bureau)
    clean = clean or clean_expert(data)
    expert = Expert(**clean.values, bureau_id=bureau.id, status=ExpertStatus.ACTIVE)
    db.session.add(expert)
    db.session.flush()
    _set_expert_fields(expert, clean.fields)
    # The current employer is itself a tie that avoidance must see.
    db.session.add(ExpertTie(expert_id=expert.id, counterpart_type=CounterpartType.OTHER,
                             counterpart_name=expert.employer, kind=TieKind.EMPLOYMENT,
                             start_date=beijing_today(), note="入库时登记的工作单位"))
    audit.record("expert.created", expert, actor=actor, summary=f"{bureau.short_name}专家库新增专家 {expert.name}（{expert.employer}）",
                 payload={"id_masked": expert.id_number_masked})
    return expert


def update_expert(expert: Expert, data: ExpertInput, actor: User) -> Expert:
    permissions.require(actor, "expert.edit", expert)
    concurrency.hold(expert)  # the employer as the edit before left it: the same change saved twice opens one employment
    clean = clean_expert(data, existing=expert)
    changed = sorted(k for k, v in clean.values.items() if getattr(expert, k) != v)
    old_employer = expert.employer
    for k, v in clean.values.items():
        setattr(expert, k, v)
    _set_expert_fields(expert, clean.fields)
    if expert.employer != old_employer:
        today = beijing_today()
        for tie in expert.ties:  # the old employer's only: another declared employment (a firm's) goes on
            if tie.kind == TieKind.EMPLOYMENT and tie.end_date is None and tie.counterpart_name == old_employer:
                tie.end_date = today  # kept: a former employer still counts for 3 years
        expert.ties.append(ExpertTie(counterpart_type=CounterpartType.OTHER, counterpart_name=expert.employer,
                                     kind=TieKind.EMPLOYMENT, start_date=today, note="工作单位变更"))
    audit.record("expert.updated", expert, actor=actor, summary=f"修改专家信息：{expert.name}", payload={"changed": changed})
    return expert


def expert_eligibility(expert: Expert, bureau: Bureau | None = None, *, on: date | None = None) -> list[str]:
    """Why this expert does not meet the pool's admission thresholds (empty: eligible). Thresholds are settings."""
    bureau = bureau or expert.bureau
    on = on or beijing_today()
    reasons = []
    min_years = get_setting(bureau, "expert.min_years")
    if expert.years_in_field < min_years:
        reasons.append(f"从业年限 {expert.years_in_field} 年，低于 {min_years} 年")
    min_degree = Degree(get_setting(bureau, "expert.min_degree"))
    if expert.degree.rank < min_degree.rank:
        reasons.append(f"学历为{expert.degree.label}，低于{min_degree.label}")
    min_title = ProfessionalTitle(get_setting(bureau, "expert.min_title"))
    if expert.title.rank < min_title.rank:
        reasons.append(f"职称为{expert.title.label}，低于{min_title.label}")
    max_age = get_setting(bureau, "expert.max_age")
    age = on.year - expert.birth_year
    if age > max_age:
        age = full_years(expert, on)  # only then does the birthday decide it
        if age > max_age:
            reasons.append(f"年龄 {age} 周岁，超过 {max_age} 周岁")
    return reasons


def full_years(expert: Expert, on: date) -> int:
    """The expert's age in 周岁 on ``on`` (财库〔2016〕198号 第六条 "年龄在70周岁以下"), from the birth date in the
    identity number; the calendar year's count when the number cannot be read."""
    age = on.year - expert.birth_year
    born = birth_month_day(expert.id_number_encrypted)
    return age - 1 if born is not None and (on.month, on.day) < born else age


# Reasons from a higher module that take an expert out of every draw (review: persistent poor ratings),
# registered there: ``fn(expert, on) -> reasons``. Registry never imports them.
_drawable_checks: list[Callable[[Expert, date], list[str]]] = []


def drawable_check(fn: Callable[[Expert, date], list[str]]) -> Callable[[Expert, date], list[str]]:
    """Decorator: ``fn(expert, on)`` adds its reasons to ``expert_is_drawable`` (panels, committees, inspectors)."""
    if fn not in _drawable_checks:
        _drawable_checks.append(fn)
    return fn


def expert_is_drawable(expert: Expert, on: date | None = None) -> list[str]:
    """Reasons this expert cannot be drawn today (status, availability, eligibility, registered checks)."""
    on = on or beijing_today()
    reasons = []
    if expert.status != ExpertStatus.ACTIVE:
        reasons.append(f"专家状态为“{expert.status.label}”")
    if not expert.available and (expert.unavailable_until is None or expert.unavailable_until >= on):
        until = f"至 {expert.unavailable_until:%Y-%m-%d}" if expert.unavailable_until else ""
        reasons.append(f"专家声明暂不可用{until}")
    reasons.extend(expert_eligibility(expert, on=on))
    for check in _drawable_checks:
        reasons.extend(check(expert, on))
    return reasons


# --- experts becoming unavailable ---------------------------------------------------------------------
# Higher levels (review: release the expert's pending invitations) register here; registry never imports
# them. Handlers run inside the caller's transaction, so a refusal anywhere rolls everything back.
_expert_unavailable_hooks: list[Callable[[Expert, User | None, str], None]] = []


def on_expert_unavailable(fn: Callable[[Expert, User | None, str], None]) -> Callable[[Expert, User | None, str], None]:
    """Decorator: call ``fn(expert, actor, reason)`` whenever an expert is suspended, removed from the pool or
    their login is disabled (``actor`` is None for the last: core disables accounts without naming the expert)."""
    if fn not in _expert_unavailable_hooks:
        _expert_unavailable_hooks.append(fn)
    return fn


def _expert_became_unavailable(expert: Expert, actor: User | None, reason: str) -> None:
    for hook in list(_expert_unavailable_hooks):
        hook(expert, actor, reason)


@sa.event.listens_for(User.is_enabled, "set", active_history=True)  # the old value even when expired
def _expert_login_disabled(user: User, value: Any, oldvalue: Any, initiator: Any) -> None:
    """An expert's login switched off (core.services.set_enabled, any path) makes the expert unavailable."""
    if value is False and oldvalue is True and user.expert_id:
        with db.session.no_autoflush:  # mid-attribute-set: nothing may flush yet
            expert = db.session.get(Expert, user.expert_id)
            if expert is not None:
                _expert_became_unavailable(expert, None, "专家账号已停用")


EXPERT_STATUS_ACTIONS: dict[str, Step[ExpertStatus]] = {
    a.action: a
    for a in [
        Step("suspend", "暂停", (ExpertStatus.ACTIVE,), ExpertStatus.SUSPENDED),
        Step("reinstate", "恢复", (ExpertStatus.SUSPENDED,), ExpertStatus.ACTIVE),
        Step("remove", "移出专家库", (ExpertStatus.ACTIVE, ExpertStatus.SUSPENDED), ExpertStatus.REMOVED),
    ]
}


def available_expert_actions(expert: Expert, user: User) -> list[Step[ExpertStatus]]:
    if not permissions.can(user, "expert.status", expert):
        return []
    return [a for a in EXPERT_STATUS_ACTIONS.values() if expert.status in a.sources]


def change_expert_status(expert: Expert, action: str, reason: str, actor: User) -> None:
    permissions.require(actor, "expert.status", expert)
    step = EXPERT_STATUS_ACTIONS.get(action)
    if step is None:
        raise ValidationFailed(f"未知的操作：{action}", {"action": "未知的操作"})
    concurrency.hold(expert)
    step.refuse_unless_from(expert.status, "专家")
    label, target = step.label, step.target
    if not (reason or "").strip():
        raise ValidationFailed(f"“{label}”必须填写原因。", {"reason": "必填"})
    old = expert.status
    expert.status = target
    expert.status_reason = reason.strip()
    if target in (ExpertStatus.SUSPENDED, ExpertStatus.REMOVED):
        _expert_became_unavailable(expert, actor, reason.strip())
    if target == ExpertStatus.REMOVED:  # as for a firm out of the library: no link into the account
        _void_organisation_links(expert_id=expert.id)
    audit.record(f"expert.{action}", expert, actor=actor, summary=f"专家 {expert.name}：{old.label} → {target.label}（{reason.strip()}）",
                 payload={"from": old, "to": target, "reason": reason.strip()})


def set_expert_availability(expert: Expert, *, available: bool, until: date | None, note: str | None, actor: User) -> None:
    permissions.require(actor, "expert.self", expert)
    if not available and until and until < beijing_today():
        raise ValidationFailed("不可用截止日期不能早于今天。", {"unavailable_until": "日期已过"})
    expert.available = available
    expert.unavailable_until = None if available else until
    expert.availability_note = (note or "").strip() or None
    audit.record("expert.availability", expert, actor=actor,
                 summary=f"专家 {expert.name} 可用状态：{'可参加评审' if available else '暂不可用'}"
                         + (f"（至 {until:%Y-%m-%d}）" if until and not available else ""),
                 payload={"available": available, "until": until})


def add_expert_tie(expert: Expert, *, kind: Any, counterpart_type: Any, counterpart_name: str | None,
                   firm_id: int | None, bureau_id: int | None, budget_unit_id: int | None,
                   start_date: date | None, end_date: date | None, note: str | None, actor: User) -> ExpertTie:
    permissions.require(actor, "expert.self", expert)
    errors: dict[str, str] = {}
    kind = parse_enum(errors, "kind", TieKind, kind, "关系类型")
    ctype = parse_enum(errors, "counterpart_type", CounterpartType, counterpart_type, "关联方类型")
    name = (counterpart_name or "").strip()
    target = None
    if ctype == CounterpartType.FIRM:
        target = db.session.get(Firm, firm_id) if firm_id else None
        if (target is not None and target.status in (FirmStatus.PENDING, FirmStatus.REJECTED)
                and not permissions.visible(actor, target)):
            target = None  # another bureau's application is that bureau's business, not the declarer's to name
    elif ctype == CounterpartType.BUREAU:
        target = db.session.get(Bureau, bureau_id) if bureau_id else None
    elif ctype == CounterpartType.BUDGET_UNIT:
        target = db.session.get(BudgetUnit, budget_unit_id) if budget_unit_id else None
    if ctype and ctype != CounterpartType.OTHER and target is None:
        errors["counterpart"] = f"请选择关联的{ctype.label}"
    if ctype == CounterpartType.OTHER and not name:
        errors["counterpart_name"] = "请填写关联单位名称"
    _check_period(errors, start_date, end_date)
    _raise_if(errors)
    tie = ExpertTie(expert_id=expert.id, counterpart_type=ctype, kind=kind,
                    firm_id=target.id if ctype == CounterpartType.FIRM else None,
                    bureau_id=target.id if ctype == CounterpartType.BUREAU else None,
                    budget_unit_id=target.id if ctype == CounterpartType.BUDGET_UNIT else None,
                    counterpart_name=target.name if target is not None else name,
                    start_date=start_date, end_date=end_date, note=(note or "").strip() or None)
    # the same tie declared twice (a double click, a resend) is on record once
    concurrency.refuse_twin(f"expert-ties:{expert.id}", sa.select(ExpertTie).where(
        ExpertTie.expert_id == expert.id, ExpertTie.kind == kind, ExpertTie.counterpart_type == ctype,
        ExpertTie.counterpart_name == tie.counterpart_name, ExpertTie.start_date == start_date,
        ExpertTie.firm_id.is_not_distinct_from(tie.firm_id), ExpertTie.bureau_id.is_not_distinct_from(tie.bureau_id),
        ExpertTie.budget_unit_id.is_not_distinct_from(tie.budget_unit_id),
        ExpertTie.end_date.is_not_distinct_from(end_date)),
        lambda t: f"该关系已申报（{t.kind.label} — {t.counterpart_name}，自 {t.start_date:%Y-%m-%d} 起），无需重复申报。")
    db.session.add(tie)
    db.session.flush()
    audit.record("expert.tie_added", expert, actor=actor,
                 summary=f"专家 {expert.name} 申报关系：{kind.label} — {tie.counterpart_name}",
                 payload={"tie_id": tie.id, "kind": kind, "type": ctype})
    return tie


def expert_avoidance_reasons(expert: Expert, *, firm_ids: Iterable[int] = (), bureau_ids: Iterable[int] = (),
                             budget_unit_ids: Iterable[int] = (), names: Iterable[str] = (),
                             on: date | None = None, parties: Parties | None = None) -> list[str]:
    """Why this expert must avoid work involving these parties (``avoidance_reasons_of`` for one expert)."""
    return avoidance_reasons_of([expert], firm_ids=firm_ids, bureau_ids=bureau_ids, budget_unit_ids=budget_unit_ids,
                                names=names, on=on, parties=parties)[expert.id]


def avoidance_reasons_of(experts: Iterable[Expert], *, firm_ids: Iterable[int] = (), bureau_ids: Iterable[int] = (),
                         budget_unit_ids: Iterable[int] = (), names: Iterable[str] = (),
                         on: date | None = None, parties: Parties | None = None) -> dict[int, list[str]]:
    """Why each of these experts must avoid work involving these parties (every expert's id is a key; an empty
    list when none): a tie still current or ended within the look-back window (default 3 years, a setting of the
    expert's bureau). Names match free-text employers. ``parties`` (``conflict_parties``) carries the budget-unit
    tree and an evaluated lower government, with the words saying what each party is. A draw reads its whole
    pool here: the ties and the firms' rosters in a statement each, not two an expert."""
    experts = list(experts)
    on = on or beijing_today()
    firm_ids = set(firm_ids)
    parties = _merge_parties(parties, bureau_ids, budget_unit_ids, names)
    years_of: dict[int, int] = {}
    for expert in experts:
        if expert.bureau_id not in years_of:
            years_of[expert.bureau_id] = get_setting(expert.bureau, "expert.tie_years")
    horizons = {e.id: years_before(on, years_of[e.bureau_id]) for e in experts}
    out: dict[int, list[str]] = {e.id: [] for e in experts}
    # The ties as each expert's collection holds them (a tie added and not yet flushed counts), read for those not
    # read yet in a statement per batch.
    unread = sorted(e.id for e in experts if "ties" in sa.inspect(e).unloaded)
    for part in batches(unread):
        db.session.execute(sa.select(Expert).where(Expert.id.in_(part)).options(selectinload(Expert.ties))).scalars().all()
    for expert in experts:
        for tie in expert.ties:
            if tie.end_date is not None and tie.end_date < horizons[expert.id]:
                continue
            role = None
            if tie.firm_id and tie.firm_id in firm_ids:
                role = ""
            elif tie.bureau_id and tie.bureau_id in parties.bureaus:
                role = parties.bureaus[tie.bureau_id]
            elif tie.budget_unit_id and tie.budget_unit_id in parties.units:
                role = parties.units[tie.budget_unit_id]
            elif tie.counterpart_name in parties.names:
                role = parties.names[tie.counterpart_name]
            if role is not None:
                when = "至今" if tie.end_date is None else f"至 {tie.end_date:%Y-%m-%d}"
                out[expert.id].append(
                    f"与{_party(tie.counterpart_name, role)}存在{tie.kind.label}关系（{tie.start_date:%Y-%m-%d} {when}）")
    if firm_ids:
        # What the expert did not declare, the firms' rosters say: the same person (by the keyed hash of the
        # identity number) on the roster of a party firm works for it, or did within the window (劳动关系,
        # 87号令 第六十二条: "参加采购活动前三年内").
        by_digest: dict[str, list[Expert]] = {}
        for expert in experts:
            if expert.id_number_digest:
                by_digest.setdefault(expert.id_number_digest, []).append(expert)
        earliest = min(horizons.values(), default=on)
        for part in batches(sorted(by_digest)):
            for digest, name, active, left_on in db.session.execute(
                    sa.select(FirmStaff.id_number_digest, Firm.name, FirmStaff.active, FirmStaff.left_on)
                    .join(FirmStaff, FirmStaff.firm_id == Firm.id)
                    .where(FirmStaff.firm_id.in_(sorted(firm_ids)), FirmStaff.id_number_digest.in_(part),
                           sa.or_(FirmStaff.active.is_(True), FirmStaff.left_on.is_(None), FirmStaff.left_on >= earliest))
                    .order_by(Firm.name, FirmStaff.id)):
                for expert in by_digest[digest]:
                    if active:
                        out[expert.id].append(f"为{name}在册从业人员")
                    elif left_on is None or left_on >= horizons[expert.id]:
                        when = f"{left_on:%Y-%m-%d} 离岗" if left_on else "离岗日期不详"
                        out[expert.id].append(f"曾为{name}从业人员（{when}，未满 {years_of[expert.bureau_id]} 年）")
    return out


# --- accounts: experts' logins, a firm's own users ----------------------------------------------------
# Accounts are created without a password and with a one-time activation link (core/accounts.py): the link
# is shown once to whoever created the account and e-mailed when SMTP is set; the person sets a password
# through it. Who may: "expert.account" / "expert.account_reset" and "firm.users.manage" (permissions.py).

def expert_account(expert: Expert) -> User | None:
    """The expert's login, if one was opened."""
    return db.session.execute(sa.select(User).where(User.expert_id == expert.id).order_by(User.id)).scalars().first()


def read_firm_details(firm: Firm) -> None:
    """Read what a firm's page shows of it — its roster with certificates, its documents with their files, its
    recusal relations with their bureau and unit — into ``firm``'s collections: a statement per kind, not one per
    person or document."""
    db.session.execute(sa.select(Firm).where(Firm.id == firm.id).options(
        selectinload(Firm.staff).selectinload(FirmStaff.certificates),
        selectinload(Firm.documents).joinedload(FirmDocument.file),
        selectinload(Firm.relations).options(joinedload(FirmRelation.bureau), joinedload(FirmRelation.budget_unit),
                                             joinedload(FirmRelation.created_by)))
    ).scalar_one()


def expert_ids_with_login(expert_ids: Iterable[int]) -> set[int]:
    """Of these experts, those who can sign in: an enabled account whose password has been set (activated).
    No account, an account awaiting activation or a disabled one cannot review online."""
    ids = sorted({int(i) for i in expert_ids})
    out: set[int] = set()
    for part in batches(ids):
        out.update(db.session.execute(sa.select(User.expert_id).where(
            User.expert_id.in_(part), User.role == Role.EXPERT, User.is_enabled.is_(True),
            User.password_hash != passwords.UNUSABLE)).scalars())
    return out


def _expert_username(expert: Expert) -> str:
    """zj<id> (zj0020), with a suffix in the rare case that name is taken."""
    return _free_username(f"zj{expert.id:04d}")


def _free_username(base: str) -> str:
    """``base``, or ``base-2``, ``base-3``… when it is taken."""
    name, n = base, 1
    while db.session.execute(sa.select(User.id).where(sa.func.lower(User.username) == name.lower())).first():
        n += 1
        name = f"{base}-{n}"
    return name


def open_expert_account(expert: Expert, actor: User) -> tuple[User, str]:
    """开通账号: the expert's login (role expert, username zj<id>) without a password, and the raw token of its
    activation link — show ``accounts.link_url(token, "activation")`` once; e-mail it after commit. Until the
    expert sets a password through the link, they cannot sign in and are not drawn for online review."""
    permissions.require(actor, "expert.account", expert)
    concurrency.serialise(f"expert-account:{expert.id}")
    if expert.status == ExpertStatus.REMOVED:
        raise Conflict("该专家已移出专家库，不能开通账号。")
    existing = expert_account(expert)
    if existing is not None:
        raise Conflict(f"该专家已有账号（用户名 {existing.username}），不能重复开通。如需重新激活，请重新签发链接。")
    username = _expert_username(expert)
    user, token = accounts.create_account_with_activation(
        username=username, display_name=expert.name, role=Role.EXPERT, actor=actor, expert_id=expert.id,
        email=expert.email, summary=f"{actor.username} 为专家 {expert.name} 开通账号 {username}（待激活）")
    audit.record("expert.account_opened", expert, actor=actor,
                 summary=f"为专家 {expert.name} 开通账号 {username}，签发激活链接（{accounts.lifetime_text(accounts.LinkPurpose.ACTIVATION)}内有效）",
                 payload={"user_id": user.id, "username": username})
    return user, token


def reissue_expert_link(expert: Expert, actor: User) -> tuple[User, str, Any]:
    """A new link for the expert's account, replacing any unused one: an activation link while the account
    awaits activation ("expert.account"); a password-reset link once it is active ("expert.account_reset",
    administrators only). Returns (user, raw token, purpose)."""
    # the account's lock, as opening it takes: of two links issued at once the second voids the first
    concurrency.serialise(f"expert-account:{expert.id}")
    user = expert_account(expert)
    if user is None:
        permissions.require(actor, "expert.account", expert)
        raise Conflict("该专家尚未开通账号。")
    if user.awaiting_activation:
        permissions.require(actor, "expert.account", expert)
        purpose = accounts.LinkPurpose.ACTIVATION
    else:
        permissions.require(actor, "expert.account_reset", expert)
        purpose = accounts.LinkPurpose.RESET
    token = accounts.issue_link(user, purpose, actor)  # Conflict when the account is disabled
    audit.record("expert.account_link", expert, actor=actor,
                 summary=f"为专家 {expert.name} 的账号 {user.username} 重新签发{purpose.label}链接",
                 payload={"user_id": user.id, "purpose": purpose.value})
    return user, token, purpose


def firm_users(firm: Firm) -> list[User]:
    return list(db.session.execute(sa.select(User).where(User.firm_id == firm.id, User.role == Role.FIRM_USER)
                                   .order_by(User.is_enabled.desc(), User.id)).scalars())


def add_firm_user(firm: Firm, actor: User, *, username: str, display_name: str, email: str | None = None,
                  phone: str | None = None, firm_admin: bool = False) -> tuple[User, str]:
    """The firm's administrator adds an account of the firm, without a password: (user, raw activation token)."""
    permissions.require(actor, "firm.users.manage", firm)
    if firm.status not in (FirmStatus.ADMITTED, FirmStatus.SUSPENDED):
        raise Conflict(f"机构当前状态为“{firm.status.label}”，不能添加账户。")
    user, token = accounts.create_account_with_activation(
        username=username, display_name=display_name, role=Role.FIRM_USER, actor=actor, firm_id=firm.id,
        email=email, phone=phone,
        summary=f"{actor.username} 为 {firm.name} 添加账户 {(username or '').strip()[:64]}（待激活）")
    user.is_firm_admin = bool(firm_admin)
    audit.record("firm.user_added", firm, actor=actor,
                 summary=f"{firm.name} 添加账户 {user.username}（{user.display_name}）" + ("，机构管理员" if firm_admin else ""),
                 payload={"user_id": user.id, "username": user.username, "firm_admin": bool(firm_admin)})
    return user, token


def firm_has_account(firm: Firm) -> bool:
    return db.session.execute(sa.select(User.id).where(User.firm_id == firm.id, User.role == Role.FIRM_USER)).first() is not None


def firm_first_account(firm: Firm) -> User | None:
    """The account bureau staff opened for the firm (its first), while it still awaits activation."""
    users = firm_users(firm)
    return users[0] if len(users) == 1 and users[0].is_firm_admin and users[0].awaiting_activation else None


_ACCOUNT_STATUSES = (FirmStatus.PENDING, FirmStatus.ADMITTED, FirmStatus.SUSPENDED)  # a firm that may have a login


@accounts.link_refusal
def _organisation_out(user: User) -> str | None:
    """No link (activation, reset) into the account of an expert removed from the pool or of a firm out of the
    library, whichever path asks, neither issued nor used (core/accounts.py asks at both): as for opening an
    account. Leaving also voids the links already out (``_void_organisation_links``)."""
    if user.expert_id is not None:
        expert = db.session.get(Expert, user.expert_id)
        if expert is not None and expert.status == ExpertStatus.REMOVED:
            return "该专家已移出专家库，不能签发或使用账号链接。"
    if user.firm_id is not None:
        firm = db.session.get(Firm, user.firm_id)
        if firm is not None and firm.status not in _ACCOUNT_STATUSES:
            return f"机构当前状态为“{firm.status.label}”，不能签发或使用账号链接。"
    return None


def _void_organisation_links(*, firm_id: int | None = None, expert_id: int | None = None) -> None:
    """The unused links of a leaving firm's or expert's accounts stop working at once (not merely refused
    while the status lasts)."""
    column, value = (User.firm_id, firm_id) if firm_id is not None else (User.expert_id, expert_id)
    for user in db.session.execute(sa.select(User).where(column == value)).scalars():
        void_links(user)


def open_firm_account(firm: Firm, actor: User) -> tuple[User, str]:
    """开通账号 for a firm the bureau entered or imported (no login yet): its administrator login (jg<id>,
    the firm's contact person) without a password, and the raw activation token — the same one-time link
    as experts' (core/accounts.py). From then on the firm's administrator manages its own accounts."""
    permissions.require(actor, "firm.account", firm)
    concurrency.serialise(f"firm-account:{firm.id}")
    if firm.status not in _ACCOUNT_STATUSES:
        raise Conflict(f"机构当前状态为“{firm.status.label}”，不能开通账号。")
    if firm_has_account(firm):
        raise Conflict("该机构已有账号，不能由财政局再次开通；新增账户请由机构管理员在“机构账号管理”中添加。")
    username = _free_username(f"jg{firm.id:04d}")
    user, token = accounts.create_account_with_activation(
        username=username, display_name=firm.contact_name, role=Role.FIRM_USER, actor=actor, firm_id=firm.id,
        email=firm.contact_email, phone=firm.contact_phone,
        summary=f"{actor.username} 为机构 {firm.name} 开通管理员账号 {username}（待激活）")
    user.is_firm_admin = True
    audit.record("firm.account_opened", firm, actor=actor,
                 summary=f"为机构 {firm.name} 开通管理员账号 {username}，签发激活链接（{accounts.lifetime_text(accounts.LinkPurpose.ACTIVATION)}内有效）",
                 payload={"user_id": user.id, "username": username})
    return user, token


def reissue_firm_link(firm: Firm, actor: User) -> tuple[User, str, Any]:
    """A new activation link for the firm's first account while it still awaits activation (the old one is
    void). Once active, the firm resets its own passwords."""
    permissions.require(actor, "firm.account", firm)
    concurrency.serialise(f"firm-account:{firm.id}")  # as opening it: of two links issued at once the second voids the first
    user = firm_first_account(firm)
    if user is None:
        raise Conflict("该机构没有待激活的管理员账号。")
    token = accounts.issue_link(user, accounts.LinkPurpose.ACTIVATION, actor)
    audit.record("firm.account_link", firm, actor=actor,
                 summary=f"为机构 {firm.name} 的账号 {user.username} 重新签发激活链接",
                 payload={"user_id": user.id, "purpose": accounts.LinkPurpose.ACTIVATION.value})
    return user, token, accounts.LinkPurpose.ACTIVATION


def remove_firm_user(firm: Firm, target: User, actor: User, reason: str) -> None:
    """The firm's administrator removes one of its accounts: the account is disabled (kept for the record),
    every session of it ends and every API token and link stops working."""
    permissions.require(actor, "firm.users.manage", firm)
    if target.role != Role.FIRM_USER or target.firm_id != firm.id:
        raise PermissionDenied()
    if target.id == actor.id:
        raise Conflict("不能移除自己的账户。")
    concurrency.hold(target)  # a double click: the second reads the account the first disabled
    if not target.is_enabled:
        raise Conflict("该账户已经移除。")
    reason = required_reason(reason, missing="请填写移除原因。", missing_field="请填写移除原因", label="移除原因",
                             maximum=500)
    set_enabled(target, False, actor, reason)
    target.is_firm_admin = False
    audit.record("firm.user_removed", firm, actor=actor, summary=f"{firm.name} 移除账户 {target.username}：{reason}",
                 payload={"user_id": target.id, "username": target.username, "reason": reason})
