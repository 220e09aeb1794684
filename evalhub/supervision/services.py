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
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.inputs import check_text
from evalhub.core.listing import as_int
from evalhub.core.models import Bureau, User
from evalhub.core.notifications import emit
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.eligibility import library_bureau_ids
from evalhub.procurement.models import Engagement, EngagementState as S
from evalhub.registry.models import Expert, Firm, FirmStatus
from evalhub.registry.services import expert_avoidance_reasons, expert_is_drawable
from evalhub.supervision.models import (
    CHECKLIST, CampaignStatus, Complaint, ComplaintStatus, Finding, Inspection, InspectionCampaign,
    InspectionStatus, Inspector, Measure, Severity, Trigger,
)

COMPLETED = (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED)


# === complaints ====================================================================================

def client_digest(address: str) -> str:
    """A keyed hash of the sender's address: enough to rate-limit, useless to identify anyone."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, (address or "unknown").encode(), hashlib.sha256).hexdigest()


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
    firm = db.session.execute(sa.select(Firm).where(Firm.name == firm_name)).scalar_one_or_none()
    reference = f"TS{beijing_today():%Y%m%d}{secrets.randbelow(10**6):06d}"
    complaint = Complaint(reference=reference, bureau_id=bureau.id, firm_id=firm.id if firm else None,
                          firm_name=firm_name, engagement_reference=(engagement_reference or "").strip() or None,
                          text=text, complainant_name=(complainant_name or "").strip() or None,
                          complainant_contact=contact or None, client_digest=digest, form_token=token or None)
    db.session.add(complaint)
    db.session.flush()
    audit.record("complaint.received", complaint, actor=None, bureau_id=bureau.id,
                 summary=f"收到对 {firm_name} 的投诉（{reference}）")
    return complaint


class RateLimited(ValidationFailed):
    status = 429
    code = "too_many_requests"


# === random campaigns ==============================================================================

def campaign_population(bureau: Bureau, year: int) -> list[Engagement]:
    subtree = sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))
    return db.session.execute(sa.select(Engagement).where(
        Engagement.bureau_id.in_(subtree), Engagement.year == year, Engagement.state.in_(COMPLETED))
        .order_by(Engagement.id)).scalars().all()


def start_campaign(bureau: Bureau, year: int, actor: User, *, ratio: Any = None) -> InspectionCampaign:
    """Draw ≥ ratio of the year's completed engagements, then one bureau inspector and one expert for
    each, with avoidance, and nobody twice in the campaign."""
    permissions.require(actor, "supervision.manage", bureau)
    minimum = get_setting(bureau, "supervision.random_ratio")
    try:
        ratio = int(ratio if ratio not in (None, "") else minimum)
    except (TypeError, ValueError):
        raise ValidationFailed("抽查比例必须是整数。", {"ratio": "必须是整数"})
    if not minimum <= ratio <= 100:
        raise ValidationFailed(f"抽查比例应在 {minimum}%–100% 之间。", {"ratio": f"不低于 {minimum}%"})
    already = set(db.session.execute(sa.select(Inspection.engagement_id).join(InspectionCampaign).where(
        InspectionCampaign.bureau_id == bureau.id, InspectionCampaign.year == year)).scalars())
    population = campaign_population(bureau, year)
    if not population:
        raise ValidationFailed(f"{year} 年度没有已完成的评价任务可供抽查。", {"year": "没有可抽查的任务"})
    k = max(1, math.ceil(len(population) * ratio / 100))
    exclusions = {e.id: ["本年度已被抽查"] for e in population if e.id in already}
    record = draws.draw(f"{bureau.short_name} {year} 年度不定向抽查：从 {len(population)} 项中抽取 {k} 项（{ratio}%）",
                        [e.id for e in population], k, exclusions, actor=actor, bureau_id=bureau.id,
                        context=("bureau", bureau.id))
    campaign = InspectionCampaign(bureau_id=bureau.id, year=year, ratio=ratio, population_size=len(population),
                                  engagement_draw_id=record.id, created_by_id=actor.id)
    db.session.add(campaign)
    db.session.flush()
    used_users: set[int] = set()
    used_experts: set[int] = set()
    for engagement_id in record.result_ids:
        engagement = db.session.get(Engagement, engagement_id)
        inspection = Inspection(bureau_id=bureau.id, campaign_id=campaign.id, engagement_id=engagement.id,
                                firm_id=engagement.firm_id, trigger=Trigger.RANDOM, opened_by_id=actor.id,
                                trigger_detail=f"{year} 年度不定向抽查（抽取记录 #{record.id}）")
        campaign.inspections.append(inspection)
        db.session.flush()
        _draw_inspectors(inspection, engagement, actor, used_users, used_experts)
    audit.record("campaign.drawn", campaign, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} {year} 年度不定向抽查：抽取 {k} 项，检查人员随机确定")
    return campaign


def _draw_inspectors(inspection: Inspection, engagement: Engagement, actor: User,
                     used_users: set[int], used_experts: set[int]) -> None:
    bureau = db.session.get(Bureau, inspection.bureau_id)
    staff = db.session.execute(sa.select(User).where(User.bureau_id == bureau.id, User.is_enabled.is_(True),
                                                     User.role.in_([Role.BUREAU_ADMIN, Role.BUREAU_STAFF]))
                               .order_by(User.id)).scalars().all()
    staff_exclusions = {u.id: ["本次抽查已分配检查任务"] for u in staff if u.id in used_users}
    if len(staff) - len(staff_exclusions) < 1:
        staff_exclusions = {}  # fewer staff than inspections: the bureau's people serve again
    staff_draw = draws.draw(f"检查 #{inspection.id}：抽取财政检查人员", [u.id for u in staff], 1, staff_exclusions,
                            actor=actor, bureau_id=bureau.id, context=("inspection", inspection.id))
    pool = db.session.execute(sa.select(Expert).where(Expert.bureau_id.in_(library_bureau_ids(bureau)))
                              .order_by(Expert.id)).scalars().all()
    firm = engagement.firm
    exclusions = {}
    for expert in pool:
        reasons = []
        if expert.id in used_experts:
            reasons.append("本次抽查已分配检查任务")
        reasons += expert_is_drawable(expert)
        reasons += expert_avoidance_reasons(expert, firm_ids=[firm.id], budget_unit_ids=[engagement.budget_unit_id],
                                            names=[firm.name, engagement.budget_unit.name])
        if reasons:
            exclusions[expert.id] = reasons
    expert_draw = draws.draw(f"检查 #{inspection.id}：抽取检查专家", [e.id for e in pool], 1, exclusions,
                             actor=actor, bureau_id=bureau.id, context=("inspection", inspection.id))
    used_users.update(staff_draw.result_ids)
    used_experts.update(expert_draw.result_ids)
    inspection.inspectors = [Inspector(user_id=staff_draw.result_ids[0], draw_id=staff_draw.id),
                             Inspector(expert_id=expert_draw.result_ids[0], draw_id=expert_draw.id)]


def publish_campaign_list(campaign: InspectionCampaign, actor: User) -> None:
    permissions.require(actor, "supervision.manage", campaign.bureau)
    if campaign.status != CampaignStatus.DRAWN:
        raise Conflict("抽查名单已经公开。")
    campaign.status = CampaignStatus.LIST_PUBLISHED
    campaign.list_published_at = utcnow()
    audit.record("campaign.list_published", campaign, actor=actor, bureau_id=campaign.bureau_id,
                 summary=f"公开 {campaign.year} 年度不定向抽查名单（{len(campaign.inspections)} 项）")


def publish_campaign_results(campaign: InspectionCampaign, actor: User) -> None:
    permissions.require(actor, "supervision.manage", campaign.bureau)
    if campaign.status != CampaignStatus.LIST_PUBLISHED:
        raise Conflict("须先公开抽查名单，检查完成后再公开结果。")
    open_ = [i for i in campaign.inspections if i.status != InspectionStatus.CLOSED]
    if open_:
        raise Conflict(f"还有 {len(open_)} 项检查未办结。")
    campaign.status = CampaignStatus.RESULTS_PUBLISHED
    campaign.results_published_at = utcnow()
    audit.record("campaign.results_published", campaign, actor=actor, bureau_id=campaign.bureau_id,
                 summary=f"公开 {campaign.year} 年度不定向抽查结果")


# === what a reader sees of a case's lead ===========================================================

# Leads the inspected firm never reads, and what its pages say instead.
WITHHELD_LEADS = {
    Trigger.COMPLAINT: "根据投诉举报线索立案（投诉内容及投诉人信息依规保密）。",
    Trigger.SCREENING_FLAG: "根据报告质量筛查提示立案（筛查结果仅供财政部门内部使用）。",
}


def lead_for(inspection: Inspection, reader: User) -> Optional[str]:
    """The one place that decides what ``reader`` sees of a case's lead (``trigger_detail``), for the web pages,
    the API and anything else that shows a case: bureau users and the system administrator read it in full;
    anyone else (the inspected firm) reads None for a lead it must not read — a complaint's content, a
    screening flag's risk, rank and reasons — and the page says why (WITHHELD_LEADS)."""
    if reader.role in permissions.BUREAU_ROLES or reader.role == Role.SYSTEM_ADMIN:
        return inspection.trigger_detail
    if inspection.trigger in WITHHELD_LEADS:
        return None
    return inspection.trigger_detail


# === targeted cases ================================================================================

def open_case(bureau: Bureau, actor: User | None, *, trigger: Any, detail: str, firm: Firm | None = None,
              engagement: Engagement | None = None, complaint: Complaint | None = None) -> Inspection:
    """A targeted inspection (定向检查) with its trigger recorded. The screening model calls this with
    trigger=screening_flag and actor=None (a system flag)."""
    if actor is not None:
        permissions.require(actor, "supervision.manage", bureau)
    try:
        trigger = trigger if isinstance(trigger, Trigger) else Trigger.from_label(str(trigger or ""))
    except ValueError:
        raise ValidationFailed("请选择线索来源。", {"trigger": "必选"})
    if trigger == Trigger.RANDOM:
        raise ValidationFailed("不定向抽查通过抽查批次产生，不能手工立案。", {"trigger": "不能选择不定向抽查"})
    firm = firm or (engagement.firm if engagement else None) or (complaint.firm if complaint else None)
    errors: dict[str, str] = {}
    if firm is None:
        errors["firm_id"] = "请选择被检查的机构"
    if not (detail or "").strip():
        errors["detail"] = "请写明线索内容"
    if trigger == Trigger.COMPLAINT and complaint is None:
        errors["complaint_id"] = "投诉线索须关联投诉编号"
    ValidationFailed.raise_if(errors)
    inspection = Inspection(bureau_id=bureau.id, engagement_id=engagement.id if engagement else None, firm_id=firm.id,
                            trigger=trigger, trigger_detail=detail.strip(), complaint_id=complaint.id if complaint else None,
                            opened_by_id=actor.id if actor else None)
    db.session.add(inspection)
    if complaint is not None:
        complaint.status = ComplaintStatus.CASE_OPENED
    db.session.flush()
    audit.record("inspection.opened", inspection, actor=actor, bureau_id=bureau.id,
                 summary=f"定向检查立案：{firm.name}（{trigger.label}）", payload={"trigger": trigger, "detail": detail.strip()})
    return inspection


def flag_for_inspection(engagement: Engagement, reason: str, actor: User | None = None) -> Inspection:
    """The entry point of report screening: a flag card (opened by a bureau user, or a system flag when
    actor is None) becomes a targeted case with the flag recorded as its trigger."""
    return open_case(engagement.bureau, actor, trigger=Trigger.SCREENING_FLAG, detail=reason, engagement=engagement)


@workflow.requirement("no_open_inspection")
def open_inspection_of_report(engagement: Engagement) -> Optional[str]:
    """publish: no inspection of this engagement's work (random or targeted) may still be open — the public
    would read a report whose check is unfinished. The state machine lets an admin waive it with a reason."""
    open_ids = db.session.execute(sa.select(Inspection.id).where(
        Inspection.engagement_id == engagement.id, Inspection.status != InspectionStatus.CLOSED)
        .order_by(Inspection.id)).scalars().all()
    if open_ids:
        return f"该报告有未办结的检查（{'、'.join(f'#{i}' for i in open_ids)}），办结前不能公开"
    return None


# === inspection work ===============================================================================

def record_checklist(inspection: Inspection, actor: User, answers: dict[str, tuple[bool, str]]) -> None:
    permissions.require(actor, "supervision.manage", db.session.get(Bureau, inspection.bureau_id))
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
    permissions.require(actor, "supervision.manage", bureau)
    if inspection.status == InspectionStatus.CLOSED:
        raise Conflict("检查已办结，不能再添加问题。")
    errors: dict[str, str] = {}
    try:
        severity = severity if isinstance(severity, Severity) else Severity.from_label(str(severity or ""))
    except ValueError:
        errors["severity"] = "请选择问题严重程度"
    if not (description or "").strip():
        errors["description"] = "请描述发现的问题"
    chosen = []
    for m in measures:
        try:
            chosen.append(m if isinstance(m, Measure) else Measure.from_label(str(m)))
        except ValueError:
            errors["measures"] = f"未知的处理措施：{m}"
    ValidationFailed.raise_if(errors)
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
    if chosen or severity != Severity.MINOR:
        inspection.status = InspectionStatus.AWAITING_RESPONSE
        # The firm is asked to explain and rectify: it hears the finding (never the case's lead) on its page.
        emit("inspection_response_requested", link=f"/inspections/{inspection.id}", firm_id=inspection.firm_id,
             reference=inspection.engagement.reference if inspection.engagement else f"检查 #{inspection.id}",
             question=f"检查发现{severity.label}问题：{description.strip()[:300]}")
    return finding


def respond(inspection: Inspection, actor: User, text: str) -> None:
    """The firm's response and rectification report."""
    if actor.role != Role.FIRM_USER or actor.firm_id != inspection.firm_id:
        raise PermissionDenied("只有被检查机构可以回复。")
    if inspection.status != InspectionStatus.AWAITING_RESPONSE:
        raise Conflict("该检查当前不需要机构回复。")
    if len((text or "").strip()) < 10:
        raise ValidationFailed("请写明整改情况（不少于 10 字）。", {"text": "内容过短"})
    inspection.firm_response = text.strip()
    inspection.responded_at = utcnow()
    inspection.status = InspectionStatus.OPEN
    audit.record("inspection.response", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"{inspection.firm.name} 提交整改回复")


def close(inspection: Inspection, actor: User, conclusion: str, *, substantiated: Optional[bool] = None) -> None:
    permissions.require(actor, "supervision.manage", db.session.get(Bureau, inspection.bureau_id))
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
        finding.rectified = inspection.firm_response is not None
    if inspection.complaint is not None:
        inspection.complaint.status = ComplaintStatus.CLOSED
        inspection.complaint.substantiated = bool(inspection.findings) if substantiated is None else substantiated
    audit.record("inspection.closed", inspection, actor=actor, bureau_id=inspection.bureau_id,
                 summary=f"检查办结：{inspection.firm.name}，发现问题 {len(inspection.findings)} 个")
