"""Supervision (DOMAIN.md §7): public complaints, random campaigns (双随机、一公开), targeted cases,
inspection work, findings and measures. Findings feed the credit rating."""
from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import timedelta
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from flask import current_app

from evalhub.core import audit, concurrency, draws, permissions
from evalhub.core.ratelimit import RateLimited, client_digest, count_hit
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from evalhub.core.inputs import check_text
from evalhub.core.listing import as_int
from evalhub.core.models import Bureau, Draw, User
from evalhub.core.notifications import emit
from evalhub.core.settings import get_setting
from evalhub.core.summaries import KeptCount
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.eligibility import engagement_parties, library_bureau_ids
from evalhub.procurement.models import Bid, Engagement, EngagementState as S, Procurement
from evalhub.registry.models import Expert, Firm, FirmStatus
from evalhub.registry.services import avoidance_reasons_of, expert_is_drawable, parse_enum
from evalhub.supervision.models import (
    CHECKLIST, CampaignStatus, Complaint, ComplaintStatus, Finding, Inspection, InspectionCampaign, InspectionCount,
    InspectionResponse, InspectionStatus, Inspector, Measure, Severity, StaffTie, Trigger,
)

COMPLETED = (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED)

# The dashboard's 监督检查 card: inspections per bureau and status, kept on write (``core.summaries``; issue 18).
INSPECTIONS = KeptCount("supervision.inspection_counts", Inspection, ("bureau_id",), InspectionCount.__table__,
                        by=("status",))


# === complaints ====================================================================================

def file_complaint(*, bureau_id: Any, firm_name: str, text: str, engagement_reference: str | None,
                   complainant_name: str | None, complainant_contact: str | None, address: str,
                   form_token: str | None = None) -> Complaint:
    """The public complaint form: no login; a reference number; at most N per source per hour.

    The limit holds under simultaneous requests (several workers): each source's complaints are counted and
    written under one lock per source. A form sent twice (a double click: the same ``form_token``) is one
    complaint — the second answer is the first's reference — and counts once."""
    digest = client_digest(address)
    concurrency.serialise(f"complaint.source:{digest}")
    token = (form_token or "").strip()
    if 16 <= len(token) <= 64:
        # The same form with the same content (not one brought back with Back and changed).
        sent = db.session.execute(sa.select(Complaint).where(
            Complaint.client_digest == digest, Complaint.form_token == token,
            Complaint.firm_name == (firm_name or "").strip(), Complaint.text == (text or "").strip())
            .order_by(Complaint.id)).scalars().first()
        if sent is not None:
            _issue_lookup_code(sent)  # the sender sees only this answer: a fresh code replaces the first
            return sent
    else:
        token = ""
    limit = 5
    errors: dict[str, str] = {}
    bureau_id = as_int(str(bureau_id or ""))  # a public form: "99999999999" is no bureau, not a database error
    bureau = db.session.get(Bureau, bureau_id) if bureau_id is not None else None
    if bureau is None:
        errors["bureau_id"] = "请选择受理的财政局"
    else:
        limit = get_setting(bureau, "supervision.complaints_per_hour")
    recent = db.session.execute(sa.select(sa.func.count(Complaint.id)).where(
        Complaint.client_digest == digest, Complaint.created_at > utcnow() - timedelta(hours=1))).scalar_one()
    if recent >= limit:
        raise RateLimited("提交过于频繁，请一小时后再试。")
    firm_name = (firm_name or "").strip()
    if not firm_name:
        errors["firm_name"] = "请填写被投诉的第三方机构名称"
    text = check_text(errors, "text", text, short="请具体说明投诉事项（不少于 20 字）", label="投诉事项", minimum=20)
    contact = (complainant_contact or "").strip()
    if len(contact) > 100:
        errors["complainant_contact"] = "联系方式过长"
    ValidationFailed.raise_if(errors)
    # names are not unique (the USCC is): one firm of that name, or one in the bureau's usable libraries; otherwise
    # the bureau names the firm when it opens a case
    named = db.session.execute(sa.select(Firm).where(Firm.name == firm_name).order_by(Firm.id)).scalars().all()
    if len(named) > 1:
        named = [f for f in named if f.bureau_id in set(library_bureau_ids(bureau))]
    firm = named[0] if len(named) == 1 else None
    reference = f"TS{beijing_today():%Y%m%d}{secrets.randbelow(10**6):06d}"
    complaint = Complaint(reference=reference, bureau_id=bureau.id, firm_id=firm.id if firm else None,
                          firm_name=firm_name, engagement_reference=(engagement_reference or "").strip() or None,
                          text=text, complainant_name=(complainant_name or "").strip() or None,
                          complainant_contact=contact or None, client_digest=digest, form_token=token or None)
    _issue_lookup_code(complaint)
    db.session.add(complaint)
    db.session.flush()
    audit.record("complaint.received", complaint, actor=None, bureau_id=bureau.id,
                 summary=f"收到对 {firm_name} 的投诉（{reference}）")
    return complaint


# The 查询码 alphabet: no 0/O, 1/I/L, so that a code read aloud or copied by hand is not mistaken.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def _lookup_digest(reference: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"complaint-lookup|{reference}|{code.strip().upper()}".encode(), hashlib.sha256).hexdigest()


def _issue_lookup_code(complaint: Complaint) -> str:
    """A new 查询码 for the complainant (8 characters, about 40 bits), shown once with the reference; only its
    keyed hash is kept. ``complaint.lookup_code`` holds it for the page that shows it, never stored."""
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    complaint.lookup_digest = _lookup_digest(complaint.reference, code)
    complaint.lookup_code = code
    return code


# Lookups per requester per hour: a complainant checks a few times; guessing a 查询码 takes billions of tries,
# and the references are predictable (date + six digits), so the limit keeps both guesses out of reach.
LOOKUPS_PER_HOUR = 20


def lookup_complaint(reference: str, code: str, *, address: str | None) -> Optional[Complaint]:
    """The complainant's own lookup (no login): the complaint with this reference and 查询码, else None — the
    same answer for a wrong reference and a wrong code, so neither can be probed alone. Every lookup counts
    against the requester's hourly limit (RateLimited, 429); the caller commits even when nothing is found."""
    count_hit("complaint_lookup", address, LOOKUPS_PER_HOUR)
    reference, code = (reference or "").strip().upper(), (code or "").strip().upper()
    if not reference or not code or len(reference) > 30 or len(code) > 16:
        return None
    complaint = db.session.execute(sa.select(Complaint).where(Complaint.reference == reference)).scalar_one_or_none()
    if complaint is None or not complaint.lookup_digest:
        return None
    if not hmac.compare_digest(complaint.lookup_digest, _lookup_digest(reference, code)):
        return None
    return complaint


def complaint_progress(complaint: Complaint) -> str:
    """What the complainant reads of the handling, in one sentence (never the bureau's notes or the firm's answer)."""
    if complaint.status == ComplaintStatus.DECLINED:
        return f"不予立案。理由：{complaint.decision_reason}"
    if complaint.status == ComplaintStatus.CASE_OPENED:
        return "已立案检查，检查办结后可在此查询办理结果。"
    if complaint.status == ComplaintStatus.CLOSED:
        found = {True: "经检查，投诉反映的问题属实，已依规处理。", False: "经检查，投诉反映的问题不属实。"}
        return "已办结。" + found.get(complaint.substantiated, "")
    return "已受理，正在审查是否立案。"


def decline_complaint(complaint: Complaint, actor: User, reason: str) -> Complaint:
    """不予立案 with a reason the complainant reads on the lookup page. Only a complaint still awaiting the
    decision (compare-and-set: two officers deciding at once, the second is told it was decided)."""
    permissions.require(actor, "supervision.manage", complaint.bureau)
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ValidationFailed("请写明不予立案的理由（不少于 10 字，投诉人可查询到）。", {"reason": "不少于 10 字"})
    if len(reason) > 2000:
        raise ValidationFailed("不予立案的理由不能超过 2000 字。", {"reason": "不能超过 2000 字"})
    now = utcnow()
    moved = db.session.execute(sa.update(Complaint).where(
        Complaint.id == complaint.id, Complaint.status == ComplaintStatus.RECEIVED).values(
        status=ComplaintStatus.DECLINED, decision_reason=reason, decided_at=now, decided_by_id=actor.id)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.session.refresh(complaint)
        raise Conflict(f"该投诉当前状态为“{complaint.status.label}”，已作出处理，不能不予立案。")
    db.session.refresh(complaint)
    audit.record("complaint.declined", complaint, actor=actor, bureau_id=complaint.bureau_id,
                 summary=f"投诉 {complaint.reference} 不予立案：{reason[:100]}", payload={"reason": reason})
    return complaint


# === random campaigns ==============================================================================

def campaign_population(bureau: Bureau, year: int) -> list[Engagement]:
    subtree = sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))
    return db.session.execute(sa.select(Engagement).where(
        Engagement.bureau_id.in_(subtree), Engagement.year == year, Engagement.state.in_(COMPLETED))
        .order_by(Engagement.id)).scalars().all()


def start_campaign(bureau: Bureau, year: int, actor: User, *, ratio: Any = None) -> Draw:
    """Announce the draw of ≥ ratio of the year's completed engagements (witnessed, issue 14). At its reveal
    (``_open_campaign``) the campaign opens and one bureau inspector and one expert are drawn for each, with
    avoidance, and nobody twice in the campaign."""
    permissions.require(actor, "supervision.manage", bureau)
    minimum = get_setting(bureau, "supervision.random_ratio")
    try:
        ratio = int(ratio if ratio not in (None, "") else minimum)
    except (TypeError, ValueError):
        raise ValidationFailed("抽查比例必须是整数。", {"ratio": "必须是整数"})
    if not minimum <= ratio <= 100:
        raise ValidationFailed(f"抽查比例应在 {minimum}%–100% 之间。", {"ratio": f"不低于 {minimum}%"})
    concurrency.serialise(f"supervision.campaign:{bureau.id}:{year}")  # two clicks announce one draw
    already = set(db.session.execute(sa.select(Inspection.engagement_id).join(InspectionCampaign).where(
        InspectionCampaign.bureau_id == bureau.id, InspectionCampaign.year == year)).scalars())
    population = campaign_population(bureau, year)
    if not population:
        raise ValidationFailed(f"{year} 年度没有已完成的评价任务可供抽查。", {"year": "没有可抽查的任务"})
    k = max(1, math.ceil(len(population) * ratio / 100))
    exclusions = {e.id: ["本年度已被抽查"] for e in population if e.id in already}
    waiting = [d for d in db.session.execute(draws.pending().where(
        Draw.kind == "inspection_sample", Draw.context_type == "bureau", Draw.context_id == bureau.id)).scalars()
        if (d.params or {}).get("year") == year]
    if waiting:
        raise Conflict(f"{year} 年度不定向抽查的抽取已公告（抽取 #{waiting[0].id}），请监督人输入数字后揭晓。")
    # Issue 14: announced and witnessed; the campaign, its inspections and their inspectors follow the reveal.
    return draws.announce("inspection_sample",
                          f"{bureau.short_name} {year} 年度不定向抽查：从 {len(population)} 项中抽取 {k} 项（{ratio}%）",
                          {e.id: f"{e.reference} {e.name}" for e in population}, k, exclusions, actor=actor,
                          bureau_id=bureau.id, context=("bureau", bureau.id),
                          params={"bureau": bureau.id, "year": year, "ratio": ratio, "population": len(population)})


def _campaign_listed(record: Draw) -> bool:
    """Inspection draws are public once the campaign's list is published."""
    campaign = db.session.execute(sa.select(InspectionCampaign).where(InspectionCampaign.engagement_draw_id == (
        record.derived_from_id or record.id))).scalars().first()
    return campaign is not None and campaign.status != CampaignStatus.DRAWN


def _campaign_results_out(record: Draw) -> bool:
    """A campaign's inspectors are public only with its results: the inspected firm never reads their names
    while the inspection runs (its pages and the API show "财政检查人员" / "专家")."""
    campaign = db.session.execute(sa.select(InspectionCampaign).where(
        InspectionCampaign.engagement_draw_id == record.derived_from_id)).scalars().first()
    return campaign is not None and campaign.status == CampaignStatus.RESULTS_PUBLISHED


draws.on_derived("inspection_staff", released=_campaign_results_out)
draws.on_derived("inspection_expert", released=_campaign_results_out)


@draws.on_drawn("inspection_sample", released=_campaign_listed)
def _open_campaign(record: Draw, actor: User) -> InspectionCampaign:
    bureau = db.session.get(Bureau, record.params["bureau"])
    year, ratio, k = record.params["year"], record.params["ratio"], record.k
    campaign = InspectionCampaign(bureau_id=bureau.id, year=year, ratio=ratio, population_size=record.params["population"],
                                  engagement_draw_id=record.id, created_by_id=record.created_by_id or actor.id)
    db.session.add(campaign)
    db.session.flush()
    used_users: set[int] = set()
    used_experts: set[int] = set()
    for engagement_id in record.result_ids:
        engagement = db.session.get(Engagement, engagement_id)
        inspection = Inspection(bureau_id=bureau.id, campaign_id=campaign.id, engagement_id=engagement.id,
                                firm_id=engagement.firm_id, trigger=Trigger.RANDOM, opened_by_id=campaign.created_by_id,
                                trigger_detail=f"{year} 年度不定向抽查（抽取记录 #{record.id}）")
        campaign.inspections.append(inspection)
        db.session.flush()
        _draw_inspectors(inspection, engagement, actor, used_users, used_experts, parent=record)
    audit.record("campaign.drawn", campaign, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} {year} 年度不定向抽查：抽取 {k} 项，检查人员随机确定")
    return campaign


def _draw_inspectors(inspection: Inspection, engagement: Engagement, actor: User,
                     used_users: set[int], used_experts: set[int], *, parent: Draw) -> None:
    """Inspectors are drawn inside the sample's reveal, their seeds derived from its witnessed seed."""
    bureau = db.session.get(Bureau, inspection.bureau_id)
    # Independent of the engagement (not who ran its procurement or panels); see inspector_staff_candidates.
    staff, staff_exclusions = inspector_staff_candidates(bureau, engagement, used_users)
    staff_draw = draws.derive(parent, "inspection_staff", f"检查 #{inspection.id}：抽取财政检查人员",
                              {u.id: u.display_name or u.username for u in staff}, 1, staff_exclusions,
                              actor=actor, context=("inspection", inspection.id))
    # Not its reviewers or committee, no tie with the firm or the engagement's parties (inspector_expert_candidates).
    pool, exclusions = inspector_expert_candidates(bureau, engagement, engagement.firm, used_experts)
    expert_draw = draws.derive(parent, "inspection_expert", f"检查 #{inspection.id}：抽取检查专家",
                               {e.id: e.name for e in pool}, 1, exclusions, actor=actor, context=("inspection", inspection.id))
    used_users.update(staff_draw.result_ids)
    used_experts.update(expert_draw.result_ids)
    inspection.inspectors = [Inspector(user_id=staff_draw.result_ids[0], draw_id=staff_draw.id),
                             Inspector(expert_id=expert_draw.result_ids[0], draw_id=expert_draw.id)]
    db.session.flush()
    for inspector in inspection.inspectors:  # each inspector hears of the task (issue 14)
        _assigned(inspection, inspector, actor, "随机抽取")


# === inspectors independent of what they inspect (issue 14) =========================================
# Candidates and exclusions are computed here, apart from the draws themselves, so that the draw (announce,
# derive) and the rules of who may inspect change independently. The same rules hold for drawn and named
# inspectors, for campaigns and targeted cases.

def _bureau_staff(bureau_ids: Iterable[int]) -> list[User]:
    return db.session.execute(sa.select(User).where(
        User.bureau_id.in_(list(bureau_ids)), User.is_enabled.is_(True), User.role.in_(permissions.BUREAU_ROLES))
        .order_by(User.id)).scalars().all()


_RAN = {"engagement": "经办过该评价任务", "contract": "经办过该评价任务的合同", "procurement": "经办过该评价任务的采购",
        "review_panel": "经办过该评价任务的专家评审"}


def staff_independence(engagement: Optional[Engagement], users: Iterable[User],
                       firm: Optional[Firm] = None) -> dict[int, list[str]]:
    """Bureau staff who may not inspect this engagement's work: those who ran its procurement, its contract or
    its expert panels (any recorded action of theirs on them, from the audit log, or a panel they formed), and
    those who declared a tie with the firm (申报回避, ``StaffTie``)."""
    users = list(users)
    firm = firm or (engagement.firm if engagement is not None else None)
    if not users:
        return {}
    out: dict[int, list[str]] = {}
    if firm is not None:
        for user_id, reason, declared_at in db.session.execute(
                sa.select(StaffTie.user_id, StaffTie.reason, StaffTie.declared_at).where(
                    StaffTie.firm_id == firm.id, StaffTie.user_id.in_([u.id for u in users])).order_by(StaffTie.id)).all():
            out.setdefault(user_id, []).append(f"申报与{firm.name}存在利害关系（{declared_at:%Y-%m-%d}）：{reason[:100]}")
    if engagement is None:
        return out
    from evalhub.core.models import AuditEvent
    from evalhub.procurement.models import Contract, Procurement
    from evalhub.review.models import ReviewPanel

    objects = {"engagement": [engagement.id],
               "procurement": list(db.session.execute(sa.select(Procurement.id).where(
                   Procurement.engagement_id == engagement.id)).scalars()),
               "contract": list(db.session.execute(sa.select(Contract.id).where(
                   Contract.engagement_id == engagement.id)).scalars()),
               "review_panel": list(db.session.execute(sa.select(ReviewPanel.id).where(
                   ReviewPanel.engagement_id == engagement.id)).scalars())}
    clauses = [sa.and_(AuditEvent.object_type == kind, AuditEvent.object_id.in_(ids)) for kind, ids in objects.items() if ids]
    # Approving the plan that created the engagement is not running it: that event does not count.
    ran = db.session.execute(sa.select(AuditEvent.actor_id, AuditEvent.object_type).where(
        AuditEvent.actor_id.in_([u.id for u in users]), sa.or_(*clauses), AuditEvent.action != "engagement.created")
        .distinct()).all()
    formed = db.session.execute(sa.select(ReviewPanel.created_by_id).where(
        ReviewPanel.engagement_id == engagement.id)).scalars().all()
    for actor_id, kind in sorted(ran, key=lambda r: (r[0], list(_RAN).index(r[1]) if r[1] in _RAN else 9)):
        reason = f"{_RAN.get(kind, '经办过该评价任务')}（{engagement.reference}）"
        if reason not in out.setdefault(actor_id, []):
            out[actor_id].append(reason)
    for actor_id in formed:
        reason = f"{_RAN['review_panel']}（{engagement.reference}）"
        if actor_id is not None and reason not in out.setdefault(actor_id, []):
            out[actor_id].append(reason)
    return {k: v for k, v in out.items() if v}


def expert_independence(engagement: Optional[Engagement], firm: Firm, experts: Iterable[Expert]) -> dict[int, list[str]]:
    """Experts who may not inspect: those who scored this engagement's work plan or report (an accepted seat on
    any of its panels), sat on its bid evaluation committee, or have a tie with the firm or any party of the
    engagement (the unit tree, a lower government: ``engagement_parties``)."""
    from evalhub.procurement.models import CommitteeMember, Procurement
    from evalhub.review.models import InvitationStatus, PanelInvitation, ReviewPanel

    experts = list(experts)
    scored: dict[int, list[str]] = {}
    committee: set[int] = set()
    parties = None
    if engagement is not None:
        for expert_id, kind, round_ in db.session.execute(
                sa.select(PanelInvitation.expert_id, ReviewPanel.kind, ReviewPanel.round)
                .join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
                .where(ReviewPanel.engagement_id == engagement.id, PanelInvitation.status == InvitationStatus.ACCEPTED)
                .order_by(ReviewPanel.id)).all():
            scored.setdefault(expert_id, []).append(f"评审过该评价任务的{kind.label}（第 {round_} 轮）")
        committee = set(db.session.execute(sa.select(CommitteeMember.expert_id).join(
            Procurement, Procurement.id == CommitteeMember.procurement_id).where(
            Procurement.engagement_id == engagement.id, CommitteeMember.expert_id.is_not(None))).scalars())
        parties = engagement_parties(engagement)
    avoid = avoidance_reasons_of(experts, firm_ids=[firm.id], names=[firm.name], parties=parties)
    out: dict[int, list[str]] = {}
    for expert in experts:
        reasons = list(scored.get(expert.id, []))
        if expert.id in committee:
            reasons.append("担任过该评价任务的采购评审委员会成员")
        reasons += avoid[expert.id]
        if reasons:
            out[expert.id] = reasons
    return out


def inspector_staff_candidates(bureau: Bureau, engagement: Optional[Engagement], used: Iterable[int] = (),
                               taken: Iterable[int] = (), firm: Optional[Firm] = None) -> tuple[list[User], dict[int, list[str]]]:
    """The staff a bureau inspector is drawn from, with exclusions: the bureau's own enabled staff; when none of
    them is independent of the engagement (or free: ``taken`` are this case's inspectors already), the upper
    bureau's staff join (上级财政部门). Staff already given an inspection in the same campaign (``used``) sit
    out while others are free."""
    taken = set(taken)

    def hard(staff: list[User]) -> dict[int, list[str]]:
        out = staff_independence(engagement, staff, firm)
        for u in staff:
            if u.id in taken:
                out.setdefault(u.id, []).append("已是本检查的检查人员")
        return out

    staff = _bureau_staff([bureau.id])
    exclusions = hard(staff)
    if bureau.parent_id and len(staff) == len(exclusions):
        staff = staff + _bureau_staff([bureau.parent_id])
        exclusions = hard(staff)
    used = set(used)
    busy = {u.id: ["本次抽查已分配检查任务"] for u in staff if u.id in used and u.id not in exclusions}
    if len(staff) - len(exclusions) - len(busy) >= 1:  # fewer staff than inspections: the free serve again
        exclusions = {**exclusions, **busy}
    return staff, exclusions


def inspector_expert_candidates(bureau: Bureau, engagement: Optional[Engagement], firm: Firm,
                                used: Iterable[int] = (), taken: Iterable[int] = ()) -> tuple[list[Expert], dict[int, list[str]]]:
    """The experts an inspector is drawn from (the bureau's and upper bureaus' pools), with exclusions: not
    drawable, already inspecting in this campaign or this case, or not independent (``expert_independence``)."""
    pool = db.session.execute(sa.select(Expert).where(Expert.bureau_id.in_(library_bureau_ids(bureau)))
                              .order_by(Expert.id)).scalars().all()
    used, taken = set(used), set(taken)
    independence = expert_independence(engagement, firm, pool)
    exclusions: dict[int, list[str]] = {}
    for expert in pool:
        reasons = ["本次抽查已分配检查任务"] if expert.id in used else []
        if expert.id in taken:
            reasons.append("已是本检查的检查人员")
        reasons += expert_is_drawable(expert)
        reasons += independence.get(expert.id, [])
        if reasons:
            exclusions[expert.id] = reasons
    return pool, exclusions


def other_cases(inspection: Inspection, reader: User | None) -> list[Inspection]:
    """The other inspections (random or targeted) of the same engagement that ``reader`` may read: a second case
    warns and links them. An upper bureau's case on a county's engagement stays its own (None: the system)."""
    if inspection.engagement_id is None:
        return []
    stmt = sa.select(Inspection).where(
        Inspection.engagement_id == inspection.engagement_id, Inspection.id != inspection.id).order_by(Inspection.id)
    return db.session.execute(permissions.scope(reader, stmt, Inspection) if reader is not None else stmt).scalars().all()


def _assigned(inspection: Inspection, inspector: Inspector, actor: Optional[User], how: str) -> None:
    person = inspector.user or (db.session.execute(sa.select(User).where(
        User.expert_id == inspector.expert_id, User.role == Role.EXPERT)).scalars().first())
    reference = inspection.engagement.reference if inspection.engagement else f"检查 #{inspection.id}"
    emit("inspection_assigned", link=f"/inspections/{inspection.id}", users=[person], reference=reference,
         firm=inspection.firm.name, how=how, kind="不定向抽查" if inspection.campaign_id else "定向检查")


def _inspector_rules(bureau: Bureau) -> tuple[tuple, tuple]:
    """Who may be named inspector for ``bureau``: enabled staff of it or a bureau above it, and the experts of those
    bureaus' pools (as conditions on ``User`` and ``Expert``)."""
    ids = sorted(library_bureau_ids(bureau))
    return ((User.bureau_id.in_(ids), User.is_enabled.is_(True), User.role.in_(permissions.BUREAU_ROLES)),
            (Expert.bureau_id.in_(ids),))


def inspector_candidates(bureau: Bureau) -> tuple[list[User], list[Expert]]:
    """Whom ``bureau`` may name as inspectors (the page's choices; ``name_inspector`` holds the same rule on every
    path). Independence of what is inspected is checked when one is named, with the reasons."""
    staff_rule, expert_rule = _inspector_rules(bureau)
    return (list(db.session.execute(sa.select(User).where(*staff_rule).order_by(User.id)).scalars()),
            list(db.session.execute(sa.select(Expert).where(*expert_rule).order_by(Expert.id)).scalars()))


def name_inspector(inspection: Inspection, actor: User, *, user_id: Any = None, expert_id: Any = None,
                   reason: str | None = None) -> Inspector:
    """指定检查人员: a bureau staff member (of the inspecting bureau or an upper one) or an expert of the usable
    pools, refused with every reason when not independent of what is inspected (the same rules as a draw)."""
    bureau = db.session.get(Bureau, inspection.bureau_id)
    permissions.require(actor, "supervision.manage", bureau)
    _hold(inspection)  # the same person named twice at once is named once
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结，不能再指定检查人员。")
    user_id, expert_id = as_int(str(user_id or "")), as_int(str(expert_id or ""))
    if (user_id is None) == (expert_id is None):
        raise ValidationFailed("请选择一名财政检查人员或一名专家（只能选一个）。", {"person": "请选择一名检查人员"})
    engagement = inspection.engagement
    current = {(i.user_id, i.expert_id) for i in inspection.inspectors}
    staff_rule, expert_rule = _inspector_rules(bureau)
    if user_id is not None:
        person = db.session.scalar(sa.select(User).where(User.id == user_id, *staff_rule))
        if person is None:
            raise ValidationFailed("所选人员不是本局或上级财政局在用的工作人员。", {"user_id": "人员无效"})
        if (person.id, None) in current:
            raise Conflict(f"{person.display_name} 已是本检查的检查人员。")
        reasons = staff_independence(engagement, [person], inspection.firm).get(person.id, [])
        name = person.display_name
    else:
        person = db.session.scalar(sa.select(Expert).where(Expert.id == expert_id, *expert_rule))
        if person is None:
            raise ValidationFailed("所选专家不在本局或上级财政局的专家库中。", {"expert_id": "专家无效"})
        if (None, person.id) in current:
            raise Conflict(f"{person.name} 已是本检查的检查人员。")
        reasons = expert_is_drawable(person) + expert_independence(engagement, inspection.firm, [person]).get(person.id, [])
        name = person.name
    if reasons:
        field_name = "user_id" if user_id is not None else "expert_id"
        raise ValidationFailed(f"不能指定{name}为检查人员：" + "；".join(reasons) + "。", {field_name: "；".join(reasons)})
    inspector = Inspector(user_id=user_id, expert_id=expert_id)
    inspection.inspectors.append(inspector)
    db.session.flush()
    note = (reason or "").strip()
    audit.record("inspection.inspector_named", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"检查 #{inspection.id} 指定检查人员：{name}" + (f"（{note[:100]}）" if note else ""),
                 payload={"user_id": user_id, "expert_id": expert_id, "reason": note})
    _assigned(inspection, inspector, actor, "指定")
    return inspector


SEATS = ("staff", "expert")  # an inspection's inspectors: one bureau officer and one expert


def seats_to_draw(inspection: Inspection) -> list[str]:
    """The seats a draw may still fill: an officer's and an expert's, less those filled (drawn or named). A
    recusal empties its seat again, so a campaign's or a case's inspector who declared a tie is replaced by a
    draw (双随机), not only by naming someone."""
    if inspection.status == InspectionStatus.CLOSED:
        return []
    filled = {"staff" if i.user_id else "expert" for i in inspection.inspectors}
    return [seat for seat in SEATS if seat not in filled]


def _campaign_used(inspection: Inspection) -> tuple[set[int], set[int]]:
    """Who inspects the campaign's other inspections (they sit out while others are free, as in the campaign)."""
    if inspection.campaign_id is None:
        return set(), set()
    rows = db.session.execute(sa.select(Inspector.user_id, Inspector.expert_id).join(Inspection).where(
        Inspection.campaign_id == inspection.campaign_id, Inspection.id != inspection.id)).all()
    return {u for u, _ in rows if u}, {x for _, x in rows if x}


def _seat_candidates(inspection: Inspection, seat: str) -> tuple[dict[int, str], dict[int, list[str]]]:
    """The candidates for one seat, named, with their exclusions under the rules as they stand now."""
    bureau = db.session.get(Bureau, inspection.bureau_id)
    used_users, used_experts = _campaign_used(inspection)
    if seat == "staff":
        staff, exclusions = inspector_staff_candidates(
            bureau, inspection.engagement, used_users, taken=[i.user_id for i in inspection.inspectors if i.user_id],
            firm=inspection.firm)
        return {u.id: u.display_name or u.username for u in staff}, exclusions
    pool, exclusions = inspector_expert_candidates(bureau, inspection.engagement, inspection.firm, used_experts,
                                                   taken=[i.expert_id for i in inspection.inspectors if i.expert_id])
    return {e.id: e.name for e in pool}, exclusions


_SEAT_LABEL = {"staff": "财政检查人员", "expert": "检查专家"}


def draw_case_inspectors(inspection: Inspection, actor: User) -> Draw:
    """Announce the draw of an inspection's empty seats — a targeted case's two, or the seat an inspector left by
    declaring a tie — with the same independence rules as a campaign, witnessed like every draw. The first empty
    seat is the witnessed draw; the second (an expert, when both are empty) is derived from it at the reveal."""
    bureau = db.session.get(Bureau, inspection.bureau_id)
    permissions.require(actor, "supervision.manage", bureau)
    _hold(inspection)  # one lock per inspection: two clicks announce one draw, and a recusal meanwhile is seen
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结。")
    seats = seats_to_draw(inspection)
    if not seats:
        raise Conflict("本检查的财政检查人员和检查专家均已确定。")
    waiting = db.session.execute(draws.pending().where(
        Draw.kind == "case_inspectors", Draw.context_type == "inspection", Draw.context_id == inspection.id)).scalars().first()
    if waiting is not None:
        raise Conflict(f"检查人员的抽取已公告（抽取 #{waiting.id}），请监督人输入数字后揭晓。")
    candidates, exclusions = _seat_candidates(inspection, seats[0])
    what = "定向检查" if inspection.campaign_id is None else "不定向抽查，补抽"
    return draws.announce("case_inspectors", f"检查 #{inspection.id}（{what} {inspection.firm.name}）：抽取{_SEAT_LABEL[seats[0]]}",
                          candidates, 1, exclusions, actor=actor, bureau_id=bureau.id,
                          context=("inspection", inspection.id), params={"inspection": inspection.id, "seats": seats})


@draws.on_drawn("case_inspectors")
def _case_inspectors_drawn(record: Draw, actor: Optional[User]) -> Inspection:
    inspection = db.session.get(Inspection, record.params["inspection"])
    # the seats under the inspection's lock, as naming and recusal take it: an officer named (or a recusal made)
    # while the draw waited for its reveal is seen, and a seat filled meanwhile is not drawn again
    _hold(inspection)
    seats = [s for s in record.params.get("seats", SEATS) if s in seats_to_draw(inspection)]  # older draws: both
    if not seats:
        raise Conflict("本检查的检查人员已经确定，该抽取不能再安排检查人员。")
    first, chosen = record.params.get("seats", SEATS)[0], record.result_ids[0]
    drawn: list[Inspector] = []
    used = [record.id]
    for seat in seats:
        candidates, exclusions = _seat_candidates(inspection, seat)
        if seat == first and chosen in candidates and chosen not in exclusions:
            person, draw_id = chosen, record.id
        else:
            # The second seat, or the first when the drawn person no longer qualifies at the reveal (disabled,
            # suspended, tied with the firm since the announcement): a draw derived from the witnessed seed,
            # among those who qualify now.
            if seat == first and chosen in exclusions:
                exclusions[chosen] = ["揭晓时已不符合条件：" + "；".join(exclusions[chosen])]
            derived = draws.derive(record, f"case_inspector_{seat}", f"检查 #{inspection.id}：抽取{_SEAT_LABEL[seat]}"
                                   + ("（被抽中的人员揭晓时已不符合条件，补抽）" if seat == first else ""),
                                   candidates, 1, exclusions, actor=actor, context=("inspection", inspection.id))
            person, draw_id = derived.result_ids[0], derived.id
            used.append(derived.id)
        seat_row = Inspector(user_id=person, draw_id=draw_id) if seat == "staff" else Inspector(expert_id=person, draw_id=draw_id)
        inspection.inspectors.append(seat_row)
        drawn.append(seat_row)
        db.session.flush()
    audit.record("inspection.inspectors_drawn", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"检查 #{inspection.id} 随机抽取检查人员（抽取 " + "、".join(f"#{i}" for i in used) + "）",
                 payload={"draws": used})
    for inspector in drawn:
        _assigned(inspection, inspector, actor, "随机抽取")
    return inspection


def inspector_of(inspection: Inspection, user: User) -> Optional[Inspector]:
    """The user's seat among the inspection's inspectors (an officer, or an expert through their account)."""
    for p in inspection.inspectors:
        if (p.user_id and p.user_id == user.id) or (p.expert_id and user.role == Role.EXPERT and p.expert_id == user.expert_id):
            return p
    return None


def declare_conflict(inspection: Inspection, actor: User, reason: str) -> None:
    """申报回避: an inspector declares a tie with the inspected firm or the engagement and leaves the case. The
    declaration is kept (an officer's as a StaffTie, an expert's as an ExpertTie with the firm), so neither is
    drawn or named for that firm again; the seat is empty again, and the bureau is told to draw
    (``draw_case_inspectors``) or name a replacement."""
    _hold(inspection)  # a double click declares once
    seat = inspector_of(inspection, actor)
    if seat is None:
        raise PermissionDenied("只有本检查的检查人员可以申报回避。")
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结。")
    reason = (reason or "").strip()
    if not 5 <= len(reason) <= 500:
        raise ValidationFailed("请说明利害关系（5–500 字）。", {"reason": "5–500 字"})
    firm = inspection.firm
    name = seat.name
    if seat.user_id:
        db.session.add(StaffTie(user_id=seat.user_id, firm_id=firm.id, reason=reason, inspection_id=inspection.id))
    else:
        from evalhub.registry.models import CounterpartType, ExpertTie, TieKind

        # Through the collection, so an expert already loaded sees the new tie at once.
        db.session.get(Expert, seat.expert_id).ties.append(ExpertTie(
            counterpart_type=CounterpartType.FIRM, firm_id=firm.id, counterpart_name=firm.name, kind=TieKind.INTEREST,
            start_date=beijing_today(), note=f"检查 #{inspection.id} 申报回避：{reason[:250]}"))
    inspection.inspectors.remove(seat)
    db.session.flush()
    audit.record("inspection.inspector_recused", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"检查 #{inspection.id}：{name} 申报回避（{reason[:100]}）",
                 payload={"user_id": seat.user_id, "expert_id": seat.expert_id, "reason": reason})
    reference = inspection.engagement.reference if inspection.engagement else f"检查 #{inspection.id}"
    emit("inspector_recused", link=f"/inspections/{inspection.id}", bureau_id=inspection.bureau_id,
         reference=reference, name=name, reason=reason)


def publish_campaign_list(campaign: InspectionCampaign, actor: User) -> None:
    permissions.require(actor, "supervision.manage", campaign.bureau)
    concurrency.hold(campaign)  # a double click publishes once: the second reads the list published
    if campaign.status != CampaignStatus.DRAWN:
        raise Conflict("抽查名单已经公开。")
    campaign.status = CampaignStatus.LIST_PUBLISHED
    campaign.list_published_at = utcnow()
    audit.record("campaign.list_published", campaign, actor=actor, bureau_id=campaign.bureau_id,
                 summary=f"公开 {campaign.year} 年度不定向抽查名单（{len(campaign.inspections)} 项）")


def publish_campaign_results(campaign: InspectionCampaign, actor: User) -> None:
    permissions.require(actor, "supervision.manage", campaign.bureau)
    concurrency.hold(campaign)  # a double click publishes once: the second reads the results published
    if campaign.status == CampaignStatus.RESULTS_PUBLISHED:
        raise Conflict("抽查结果已经公开。")
    if campaign.status != CampaignStatus.LIST_PUBLISHED:
        raise Conflict("须先公开抽查名单，检查完成后再公开结果。")
    open_ = [i for i in campaign.inspections if i.status != InspectionStatus.CLOSED]
    if open_:
        raise Conflict(f"还有 {len(open_)} 项检查未办结。")
    campaign.status = CampaignStatus.RESULTS_PUBLISHED
    campaign.results_published_at = utcnow()
    audit.record("campaign.results_published", campaign, actor=actor, bureau_id=campaign.bureau_id,
                 summary=f"公开 {campaign.year} 年度不定向抽查结果")


def published_criticisms() -> sa.Select:
    """The findings the public reads as 通报批评 (DOMAIN §7: public criticism is a measure; a 通报 is by definition a
    public notice of it): a targeted case's once the case is closed, a random campaign's once its results are
    published (双随机、一公开) — never before, so the firm answers first. Newest first."""
    results_out = sa.select(InspectionCampaign.id).where(InspectionCampaign.status == CampaignStatus.RESULTS_PUBLISHED)
    # measures is a JSON list of values (stored as text on SQLite; json on PostgreSQL): matched as its text
    criticised = sa.cast(Finding.measures, sa.Text).like(f'%"{Measure.PUBLIC_CRITICISM.value}"%')
    return (sa.select(Finding).join(Inspection, Inspection.id == Finding.inspection_id)
            .where(Inspection.status == InspectionStatus.CLOSED, criticised,
                   sa.or_(Inspection.campaign_id.is_(None), Inspection.campaign_id.in_(results_out)))
            .order_by(Inspection.closed_at.desc(), Finding.id.desc()))


# === what a reader sees of a case's lead ===========================================================

# Leads the inspected firm never reads, and what its pages say instead.
WITHHELD_LEADS = {
    Trigger.COMPLAINT: "根据投诉举报线索立案（投诉内容及投诉人信息依规保密）。",
    Trigger.SCREENING_FLAG: "根据报告质量筛查提示立案（筛查结果仅供财政部门内部使用）。",
    Trigger.RED_FLAG: "根据采购诚信核查提示立案（核查线索仅供财政部门内部使用）。",
}


def lead_for(inspection: Inspection, reader: User) -> Optional[str]:
    """The one place that decides what ``reader`` sees of a case's lead (``trigger_detail``), for the web pages,
    the API and anything else that shows a case: bureau users and the system administrator read it in full;
    anyone else (the inspected firm) reads None for a lead it must not read — a complaint's content, a
    screening flag's risk, rank and reasons — and the page says why (WITHHELD_LEADS)."""
    if reader.role in permissions.BUREAU_ROLES or reader.role == Role.SYSTEM_ADMIN:
        return inspection.trigger_detail
    if inspection.trigger in WITHHELD_LEADS or inspection.complaint_id is not None:
        return None
    return inspection.trigger_detail


# === targeted cases ================================================================================

def open_case(bureau: Bureau, actor: User | None, *, trigger: Any, detail: str, firm: Firm | None = None,
              engagement: Engagement | None = None, complaint: Complaint | None = None) -> Inspection:
    """A targeted inspection (定向检查) with its trigger recorded. The screening model calls this with
    trigger=screening_flag and actor=None (a system flag)."""
    if actor is not None:
        permissions.require(actor, "supervision.manage", bureau)
    if complaint is not None and complaint.bureau_id != bureau.id:
        # A complaint is decided by the bureau it was filed with (立案 or 不予立案): an upper bureau that reads it
        # supervises, it does not take it over under a case the receiving bureau cannot read.
        raise PermissionDenied(f"投诉 {complaint.reference} 由{complaint.bureau.name}受理，只能由该局立案或不予立案。")
    try:
        trigger = trigger if isinstance(trigger, Trigger) else Trigger.from_label(str(trigger or ""))
    except ValueError:
        raise ValidationFailed("请选择线索来源。", {"trigger": "必选"})
    if trigger == Trigger.RANDOM:
        raise ValidationFailed("不定向抽查通过抽查批次产生，不能手工立案。", {"trigger": "不能选择不定向抽查"})
    # what the page offers, held here for every path: an engagement of the bureau or one below it, a firm its
    # officer can see, and the engagement's own firm
    if engagement is not None and engagement.bureau_id not in permissions.subtree_ids(bureau):
        raise NotFound(f"未找到评价任务 {engagement.reference}（或不在本局可见范围内）。")
    if firm is not None and actor is not None and not permissions.can(actor, "firm.view", firm):
        raise NotFound("未找到该第三方机构。")
    firm = firm or (engagement.firm if engagement else None) or (complaint.firm if complaint else None)
    errors: dict[str, str] = {}
    if firm is None:
        errors["firm_id"] = "请选择被检查的机构"
    elif engagement is not None and engagement.firm_id not in (None, firm.id) and firm.id not in _bidders(engagement):
        # the firm that did the work, or one that bid for it (a red flag's collusion names a losing bidder)
        errors["firm_id"] = f"所选机构既不是评价任务 {engagement.reference} 的承担机构，也不是其采购的投标人"
    if not (detail or "").strip():
        errors["detail"] = "请写明线索内容"
    if trigger == Trigger.COMPLAINT and complaint is None:
        errors["complaint_id"] = "投诉线索须关联投诉编号"
    if complaint is not None and trigger != Trigger.COMPLAINT:  # the trigger decides what the firm reads of the lead
        errors["trigger"] = "关联投诉的检查，线索来源应为“投诉举报”"
    if complaint is not None and firm is not None and complaint.firm_id is not None and complaint.firm_id != firm.id:
        # a complaint substantiated on closing counts against the firm it names (credit): the case is about it
        errors["firm_id"] = f"该投诉针对 {complaint.firm.name}，检查对象应为同一机构"
    ValidationFailed.raise_if(errors)
    # The same lead entered twice (a double click, the form resent, two officers at once) opens one case; a second case
    # on the same engagement from another lead stays allowed (``other_cases`` warns of it). A complaint's case is
    # claimed below, from the complaint's status.
    if complaint is None:
        concurrency.refuse_twin(f"supervision.case:{bureau.id}:{firm.id}", sa.select(Inspection).where(
            Inspection.bureau_id == bureau.id, Inspection.firm_id == firm.id, Inspection.trigger == trigger,
            Inspection.trigger_detail == detail.strip(), Inspection.status != InspectionStatus.CLOSED,
            Inspection.engagement_id.is_(None) if engagement is None else Inspection.engagement_id == engagement.id),
            lambda twin: f"已就同一线索立案（检查 #{twin.id}），请勿重复提交。")
    if complaint is not None:
        # Compare-and-set from 已受理: a decline made meanwhile by another officer is never overwritten by
        # "已立案", and a double click (or two officers at once) opens one case, not two.
        moved = db.session.execute(sa.update(Complaint).where(
            Complaint.id == complaint.id, Complaint.status == ComplaintStatus.RECEIVED).values(
            status=ComplaintStatus.CASE_OPENED).execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            db.session.refresh(complaint)
            raise Conflict(f"投诉 {complaint.reference} 已{complaint.status.label}，不能再据此立案。")
    inspection = Inspection(bureau_id=bureau.id, engagement_id=engagement.id if engagement else None, firm_id=firm.id,
                            trigger=trigger, trigger_detail=detail.strip(), complaint_id=complaint.id if complaint else None,
                            opened_by_id=actor.id if actor else None)
    db.session.add(inspection)
    if complaint is not None:
        complaint.status = ComplaintStatus.CASE_OPENED
        if complaint.firm_id is None:  # a name the public form could not tie to one firm: the case says which
            complaint.firm_id = firm.id
    db.session.flush()
    # A second case on the same engagement is allowed, with a warning linking the others (other_cases).
    others = [i.id for i in other_cases(inspection, actor)]
    audit.record("inspection.opened", inspection, actor=actor, bureau_id=bureau.id,
                 summary=f"定向检查立案：{firm.name}（{trigger.label}）"
                         + (f"；同一评价任务已有检查 {'、'.join(f'#{i}' for i in others)}" if others else ""),
                 payload={"trigger": trigger, "detail": detail.strip(), "other_cases": others})
    return inspection


def _bidders(engagement: Engagement) -> set[int]:
    return set(db.session.execute(sa.select(Bid.firm_id).join(Procurement, Procurement.id == Bid.procurement_id)
                                  .where(Procurement.engagement_id == engagement.id)).scalars())


def same_engagement_warning(inspection: Inspection, reader: User) -> Optional[str]:
    """The warning shown when a case is opened (and on its page): the other inspections of the same engagement
    that ``reader`` may read."""
    others = other_cases(inspection, reader)
    if not others:
        return None
    listed = "、".join(f"#{i.id}（{'不定向抽查' if i.campaign_id else '定向检查'}，{i.status.label}）" for i in others)
    return f"注意：评价任务 {inspection.engagement.reference} 已有其他检查 {listed}，请核对是否重复立案。"


def flag_for_inspection(engagement: Engagement, reason: str, actor: User | None = None) -> Inspection:
    """The entry point of report screening: a flag card (opened by a bureau user, or a system flag when
    actor is None) becomes a targeted case with the flag recorded as its trigger."""
    return open_case(engagement.bureau, actor, trigger=Trigger.SCREENING_FLAG, detail=reason, engagement=engagement)


@workflow.requirement("no_open_inspection", reader=True)
def open_inspection_of_report(engagement: Engagement, reader: User | None = None) -> Optional[workflow.Problem]:
    """publish: no inspection of this engagement's work (random or targeted) may still be open — the public
    would read a report whose check is unfinished. The state machine lets an admin waive it with a reason.

    Told as ``reader`` may read it (``other_cases``' rule): an upper bureau's case on a county's engagement stays
    its own, so the county reads a neutral sentence, no number; and it is that bureau's to close — the county's
    admin cannot waive it (the system administrator can). None (the system): as the engagement's bureau reads it."""
    rows = db.session.execute(sa.select(Inspection.id, Inspection.bureau_id).where(
        Inspection.engagement_id == engagement.id, Inspection.status != InspectionStatus.CLOSED)
        .order_by(Inspection.id)).all()
    if not rows:
        return None
    if reader is not None:
        readable = set(db.session.execute(permissions.scope(reader, sa.select(Inspection.id).where(
            Inspection.id.in_([i for i, _ in rows])), Inspection)).scalars())
    else:
        readable = {i for i, bureau_id in rows if bureau_id == engagement.bureau_id}
    named = [i for i, _ in rows if i in readable]
    said = []
    if named:
        said.append(f"该报告有未办结的检查（{'、'.join(f'#{i}' for i in named)}），办结前不能公开")
    if len(named) < len(rows):
        said.append("上级财政局暂缓公开")
    upper = any(bureau_id != engagement.bureau_id for _, bureau_id in rows)
    system_admin = reader is not None and reader.role == Role.SYSTEM_ADMIN
    return workflow.Problem("；".join(said), waivable=system_admin or not upper)


# === inspection work ===============================================================================

def _hold(inspection: Inspection) -> None:
    """One change to an inspection at a time (two recorders, a double click): its status, seats and record are
    read again under the lock, as the request before left them."""
    concurrency.serialise(f"inspection:{inspection.id}")
    db.session.refresh(inspection)


def recording_refusal(inspection: Inspection, actor: User) -> Optional[str]:
    """Why ``actor`` may not write the inspection's record (checklist, findings, conclusion), or None. Its officer
    inspectors may: they were drawn or named as independent, of this bureau or an upper one. Otherwise a manager
    of the inspecting bureau who is independent of what is inspected: the officer who ran the engagement's
    procurement or panels does not tick its checklist or close its inspection as clean."""
    seat = inspector_of(inspection, actor)
    officer = seat is not None and seat.user_id == actor.id
    if not officer and not permissions.can(actor, "supervision.manage", db.session.get(Bureau, inspection.bureau_id)):
        return "只有本检查的检查人员或本局工作人员可以填写检查记录。"
    # an officer inspector too: one who has since declared a tie with the firm (on this case or another) is not
    reasons = staff_independence(inspection.engagement, [actor], inspection.firm).get(actor.id)
    if reasons:
        return ("检查记录须由独立于被检查事项的人员填写：您" + "；".join(reasons)
                + "。请由本检查的检查人员或本局其他工作人员填写。")
    return None


def _require_recorder(inspection: Inspection, actor: User) -> None:
    refusal = recording_refusal(inspection, actor)
    if refusal is not None:
        raise PermissionDenied(refusal)


def record_checklist(inspection: Inspection, actor: User, answers: dict[str, tuple[bool, str]]) -> None:
    _require_recorder(inspection, actor)
    _hold(inspection)
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结。")
    known = {key for key, _ in CHECKLIST}
    unknown = set(answers) - known
    if unknown:
        raise ValidationFailed("未知的检查项。", {"checklist": "未知的检查项"})
    inspection.checklist = {**(inspection.checklist or {}),
                            **{k: {"ok": bool(ok), "note": (note or "").strip()} for k, (ok, note) in answers.items()}}
    audit.record("inspection.checklist", inspection, actor=actor, bureau_id=inspection.bureau_id, summary="记录检查清单")


def add_finding(inspection: Inspection, actor: User, *, severity: Any, description: str,
                measures: Iterable[Any] = ()) -> Finding:
    bureau = db.session.get(Bureau, inspection.bureau_id)
    _require_recorder(inspection, actor)
    _hold(inspection)
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结，不能再添加问题。")
    errors: dict[str, str] = {}
    severity = parse_enum(errors, "severity", Severity, severity, "问题严重程度")
    if not (description or "").strip():
        errors["description"] = "请描述发现的问题"
    chosen = []
    for m in measures:
        try:
            chosen.append(m if isinstance(m, Measure) else Measure.from_label(str(m)))
        except ValueError:
            errors["measures"] = f"未知的处理措施：{m}"
    ValidationFailed.raise_if(errors)
    twin = next((f for f in inspection.findings if f.severity == severity and f.description == description.strip()), None)
    if twin is not None:  # a double click or a resend: the points and the rating count a finding once
        raise Conflict(f"该问题已记录（{severity.label}：{twin.description[:40]}），请勿重复提交。")
    finding = Finding(firm_id=inspection.firm_id, severity=severity, description=description.strip(),
                      measures=[m.value for m in chosen], created_by_id=actor.id)
    inspection.findings.append(finding)
    db.session.flush()
    firm = inspection.firm
    applied = []
    from evalhub.registry.services import change_firm_status

    for measure, action in ((Measure.SUSPENSION, "suspend"), (Measure.REMOVAL, "remove")):
        if measure in chosen and permissions.can(actor, "firm.status", firm) and firm.status in (FirmStatus.ADMITTED, FirmStatus.SUSPENDED):
            if not (action == "suspend" and firm.status == FirmStatus.SUSPENDED):
                change_firm_status(firm, action, actor, reason=f"检查 #{inspection.id} 发现问题：{description.strip()[:200]}")
                applied.append(measure.label)
    audit.record("inspection.finding", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"检查发现{severity.label}问题：{description.strip()[:80]}；措施：{'、'.join(m.label for m in chosen) or '无'}",
                 payload={"finding": finding.id, "applied": applied})
    if inspection.engagement is not None:  # points to the people responsible, by the bureau's table (issue 14)
        from evalhub.procurement import team
        from evalhub.registry.models import PointKind

        team.charge(inspection.engagement, PointKind("finding_" + severity.value), bureau=bureau,
                    source_type="finding", source_id=finding.id, actor=actor, link=f"/inspections/{inspection.id}",
                    at=inspection.opened_at,  # the team when the case opened, not one swapped in since
                    note=f"检查 #{inspection.id} 发现{severity.label}问题：{description.strip()[:200]}")
    if finding.asks_answer:
        inspection.status = InspectionStatus.AWAITING_RESPONSE
        # The firm is asked to explain and rectify: it hears the finding (never the case's lead) on its page.
        emit("inspection_response_requested", link=f"/inspections/{inspection.id}", firm_id=inspection.firm_id,
             reference=inspection.engagement.reference if inspection.engagement else f"检查 #{inspection.id}",
             question=f"检查发现{severity.label}问题：{description.strip()[:300]}")
    return finding


def respond(inspection: Inspection, actor: User, text: str) -> InspectionResponse:
    """The firm's response and rectification report: one more answer, the earlier ones kept (each later finding
    asks again)."""
    if actor.role != Role.FIRM_USER or actor.firm_id != inspection.firm_id:
        raise PermissionDenied("只有被检查机构可以回复。")
    _hold(inspection)  # a double click answers once: the second finds the inspection no longer awaiting
    if inspection.status != InspectionStatus.AWAITING_RESPONSE:
        raise Conflict("该检查当前不需要机构回复。")
    if len((text or "").strip()) < 10:
        raise ValidationFailed("请写明整改情况（不少于 10 字）。", {"text": "内容过短"})
    response = InspectionResponse(text=text.strip(), actor_id=actor.id, created_at=utcnow())
    inspection.responses.append(response)
    inspection.status = InspectionStatus.OPEN
    db.session.flush()
    audit.record("inspection.response", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"{inspection.firm.name} 提交整改回复（第 {len(inspection.responses)} 次）",
                 payload={"response": response.id, "text": response.text})
    return response


def close(inspection: Inspection, actor: User, conclusion: str, *, substantiated: Optional[bool] = None) -> None:
    _require_recorder(inspection, actor)
    _hold(inspection)  # a finding added meanwhile (awaiting the firm's response) is seen here
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结。")
    if inspection.status == InspectionStatus.AWAITING_RESPONSE:
        raise Conflict("须待机构提交整改回复后再办结。")
    missing = [label for key, label in CHECKLIST if key not in (inspection.checklist or {})]
    if missing:
        raise ValidationFailed("检查清单尚未完成：" + "、".join(missing) + "。", {"checklist": "未完成"})
    if len((conclusion or "").strip()) < 10:
        raise ValidationFailed("请写明检查结论（不少于 10 字）。", {"conclusion": "内容过短"})
    inspection.conclusion = conclusion.strip()
    inspection.status = InspectionStatus.CLOSED
    inspection.closed_at = utcnow()
    for finding in inspection.findings:
        # answered if the firm responded after the finding was recorded (an answer to an earlier one does not count);
        # a finding that asked no answer is not a rectification failure: shown 无需整改 (``Finding.rectification``)
        finding.rectified = finding.asks_answer and any(r.created_at >= finding.created_at for r in inspection.responses)
    if inspection.complaint is not None:
        inspection.complaint.status = ComplaintStatus.CLOSED
        inspection.complaint.substantiated = bool(inspection.findings) if substantiated is None else substantiated
    audit.record("inspection.closed", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"检查办结：{inspection.firm.name}，发现问题 {len(inspection.findings)} 个")
