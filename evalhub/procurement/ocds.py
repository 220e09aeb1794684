"""OCDS 1.1 export: a release package for one procurement, or for every procurement of a plan.

Sealed bids stay sealed here too: bid details appear only after the bids were opened.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.models import (
    Award,
    Bid,
    BidStatus,
    Contract,
    ContractNotice,
    Engagement,
    EngagementState,
    EvaluationPlan,
    PlanItem,
    Procurement,
    ProcurementAmendment,
    ProcurementMethod,
    ProcurementStatus,
    ResultNotice,
)

OCID_PREFIX = "ocds-evalhub"
METHOD = {
    ProcurementMethod.OPEN_TENDER: "open",
    ProcurementMethod.COMPETITIVE_CONSULTATION: "selective",
    ProcurementMethod.FRAMEWORK_ROTATION: "selective",
    ProcurementMethod.RANDOM_DRAW: "limited",
    ProcurementMethod.SINGLE_SOURCE: "direct",
}
TENDER_STATUS = {
    ProcurementStatus.PENDING_APPROVAL: "planned",
    ProcurementStatus.OPEN: "active",
    ProcurementStatus.EVALUATING: "active",
    ProcurementStatus.AWARDED: "complete",
    ProcurementStatus.FAILED: "unsuccessful",
    ProcurementStatus.CANCELLED: "cancelled",
}


# A higher module adds what OCDS has a place for (integrity: the committee's decisions on collusion flags as
# an evaluation-report document of the tender): ``fn([(procurement, release), ...]) -> None``, called once per
# package with all its releases (so it reads what it adds for all of them at once), bureau packages only.
_RELEASE_EXTENSIONS: list = []


def release_extension(fn):
    _RELEASE_EXTENSIONS.append(fn)
    return fn


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


def _date(value) -> str:
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal) -> dict:
    return {"amount": float(amount), "currency": "CNY"}


def _org_id(uscc_or_code: str, scheme: str) -> str:
    return f"{scheme}-{uscc_or_code}"


def release(procurement: Procurement, *, public: bool = False) -> dict:
    """``public``: the package anyone may download — the bids' prices and the tenderers' names stay out (the
    number of tenderers and the award are published; the bids were read out only to those at the opening)."""
    return releases([procurement], public=public)[0]


def releases(procurements: list[Procurement], *, public: bool = False) -> list[dict]:
    """``release`` of each, with what higher modules add read once for all of them."""
    out = [_release(p, public=public) for p in procurements]
    if not public:
        for fn in _RELEASE_EXTENSIONS:
            fn(list(zip(procurements, out)))
    return out


def _release(procurement: Procurement, *, public: bool) -> dict:
    engagement: Engagement = procurement.engagement
    bureau = engagement.bureau
    parties: dict[str, dict] = {}

    def party(pid: str, name: str, roles: list[str], identifier: dict) -> dict:
        entry = parties.setdefault(pid, {"id": pid, "name": name, "identifier": identifier, "roles": []})
        for role in roles:
            if role not in entry["roles"]:
                entry["roles"].append(role)
        return {"id": pid, "name": name}

    buyer = party(_org_id(bureau.code, "CN-DIVISION"), bureau.name, ["buyer", "procuringEntity"],
                  {"scheme": "CN-DIVISION", "id": bureau.code, "legalName": bureau.name})
    opened = procurement.opened_at is not None or not procurement.is_competitive
    tenderers = []
    bid_details = []
    if opened and not public:
        for bid in procurement.bids:
            if bid.status == BidStatus.WITHDRAWN:
                continue
            ref = party(_org_id(bid.firm.uscc, "CN-USCC"), bid.firm.name, ["tenderer"],
                        {"scheme": "CN-USCC", "id": bid.firm.uscc, "legalName": bid.firm.name})
            tenderers.append(ref)
            bid_details.append({"id": str(bid.id), "date": _iso(bid.submitted_at),
                                "status": "valid" if bid.status == BidStatus.SUBMITTED and bid.justification_decision is None
                                or (bid.justification_decision and bid.justification_decision.value == "accepted") else "disqualified",
                                "tenderers": [ref], "value": _money(bid.price)})
    tender = {
        "id": f"{engagement.reference}-P{procurement.id}",
        "title": procurement.title,
        "description": procurement.description or engagement.name,
        "status": TENDER_STATUS[procurement.status],
        "procuringEntity": buyer,
        "value": _money(procurement.ceiling_price),
        "procurementMethod": METHOD[procurement.method],
        "procurementMethodDetails": procurement.method.label,
        "mainProcurementCategory": "services",
        "awardCriteria": "ratedCriteria" if procurement.is_competitive else "priceOnly",
        "awardCriteriaDetails": (f"综合评分法：价格分权重 {procurement.price_weight.normalize()}%，"
                                 "价格分 = 最低有效报价 ÷ 投标报价 × 100") if procurement.is_competitive else procurement.method.label,
        "items": [{"id": "1", "description": f"{engagement.name}（{engagement.service_kind.label}）",
                   "classification": {"scheme": "CPV", "id": "79419000", "description": "Evaluation consultancy services"}}],
    }
    if procurement.bid_deadline:
        # The documents are issued when the procurement is opened: the period the law's minimum is counted on.
        tender["tenderPeriod"] = {"startDate": _iso(procurement.created_at), "endDate": _iso(procurement.bid_deadline)}
    documents = []
    if procurement.media_posting is not None:  # the 采购公告 as the law counts it: on the designated media
        documents.append(_media_document(procurement.media_posting, f"tender-{procurement.id}", "tenderNotice", "采购公告"))
    if procurement.amendments:
        # 澄清/更正公告 (财政部令第87号 第二十七条): each an OCDS amendment of the tender, its text a clarification document
        tender["amendments"] = [_amendment(a) for a in procurement.amendments]
        for a in procurement.amendments:
            documents.append({"id": f"amendment-{a.id}", "documentType": "clarifications", "title": a.title,
                              "description": a.text, "datePublished": _iso(a.published_at), "language": "zh"})
            if a.media_posting is not None:
                documents.append(_media_document(a.media_posting, f"amendment-{a.id}", "clarifications", a.title))
    if documents:
        tender["documents"] = documents
    if opened and procurement.is_competitive:
        tender["numberOfTenderers"] = (len(tenderers) if not public else
                                       sum(1 for b in procurement.bids if b.status != BidStatus.WITHDRAWN))
        if not public:
            tender["tenderers"] = tenderers
    tags = ["tender"] + (["tenderAmendment"] if procurement.amendments else [])
    awards, contracts = [], []
    award = procurement.award
    # Awards revoked on an upheld challenge: their notices remain, and OCDS says "cancelled".
    for notice in procurement.notices:
        if notice.revoked_at is None:
            continue
        supplier = party(_org_id(notice.firm.uscc, "CN-USCC"), notice.firm.name, ["supplier"],
                         {"scheme": "CN-USCC", "id": notice.firm.uscc, "legalName": notice.firm.name})
        awards.append({"id": f"N{notice.id}", "title": f"{procurement.title} {procurement.method.result_word}结果（已撤销）",
                       "description": notice.revoked_reason, "status": "cancelled", "date": _iso(notice.published_at),
                       "value": _money(notice.amount), "suppliers": [supplier],
                       "documents": _notice_documents(notice)})
    if award is not None:
        supplier = party(_org_id(award.firm.uscc, "CN-USCC"), award.firm.name, ["supplier"],
                         {"scheme": "CN-USCC", "id": award.firm.uscc, "legalName": award.firm.name})
        from evalhub.procurement.services import award_reasons_for  # services does not import ocds

        entry = {"id": str(award.id), "title": f"{procurement.title} {procurement.method.result_word}结果",
                 "description": award.reasons if not public else award_reasons_for(award, None),
                 "status": "active", "date": _iso(award.awarded_at), "value": _money(award.amount),
                 "suppliers": [supplier]}
        notice = procurement.notice
        if notice is not None and notice.award_id == award.id:
            entry["documents"] = _notice_documents(notice)
            # The contract may not be signed before the challenge period ends (政府采购法第五十二条).
            entry["contractPeriod"] = {"startDate": _date(notice.challenge_until + timedelta(days=1))}
        awards.append(entry)
        tags.append("award")
        contract = engagement.contract
        # The public learns of the contract from its announcement (合同公告, 实施条例 第五十条), not before it.
        announced = contract is not None and contract.notice is not None
        if contract is not None and contract.award_id == award.id and (announced or not public):
            contracts.append({"id": str(contract.id), "awardID": str(award.id), "title": f"{engagement.name}绩效评价服务合同",
                              "status": "terminated" if engagement.state == EngagementState.CANCELLED else "active",
                              "value": _money(contract.amount), "dateSigned": _date(contract.signed_on),
                              "period": {"startDate": _date(contract.start_date), "endDate": _date(contract.end_date)},
                              **({"documents": _contract_documents(contract.notice)} if announced else {})})
            tags.append("contract")
    data = {
        "ocid": f"{OCID_PREFIX}-{engagement.reference}",
        "id": f"{engagement.reference}-P{procurement.id}-{procurement.status.value}",
        "date": _iso(award.awarded_at if award else (procurement.opened_at or procurement.created_at)),
        "tag": tags,
        "initiationType": "tender",
        "language": "zh",
        "parties": list(parties.values()),
        "buyer": buyer,
        "tender": tender,
    }
    if bid_details:
        data["bids"] = {"details": bid_details}  # OCDS bids extension
    if awards:
        data["awards"] = awards
    if contracts:
        data["contracts"] = contracts
    return data


def _amendment(a) -> dict:
    """An amendment as OCDS describes one: when, what changed (the bureau's text), and the deadline it moved, if any."""
    moved = (f"投标（响应文件提交）截止时间由 {_iso(a.deadline_before)} 变更为 {_iso(a.deadline_after)}"
             if a.moved_deadline else "投标（响应文件提交）截止时间不变")
    return {"id": str(a.number), "date": _iso(a.published_at),
            "description": f"{a.title}：{a.text}（{moved}" + ("" if a.affects_bids else "；不影响投标（响应）文件编制") + "）"}


def _notice_document(notice) -> dict:
    return {"id": f"notice-{notice.id}", "documentType": "awardNotice", "title": "中标/成交结果公告",
            "description": notice.text, "datePublished": _iso(notice.published_at), "language": "zh"}


def _media_document(posting, prefix: str, kind: str, title: str) -> dict:
    """A notice as posted on the designated media (procurement/media.py): the legal announcement, with its URL there
    and the day it was posted; evalhub's own copy is the document beside it."""
    return {"id": f"{prefix}-media", "documentType": kind, "title": f"{title}（{posting.medium_label}）",
            "url": posting.url, "datePublished": _date(posting.posted_on), "language": "zh"}


def _notice_documents(notice) -> list[dict]:
    posting = notice.media_posting
    return [_notice_document(notice)] + ([_media_document(posting, f"notice-{notice.id}", "awardNotice", "中标/成交结果公告")]
                                         if posting is not None else [])


def _contract_documents(notice) -> list[dict]:
    own = {"id": f"contract-notice-{notice.id}", "documentType": "contractNotice", "title": "合同公告",
           "datePublished": _iso(notice.published_at), "language": "zh"}
    posting = notice.media_posting
    return [own] + ([_media_document(posting, f"contract-notice-{notice.id}", "contractNotice", "合同公告")]
                    if posting is not None else [])


def package(procurements: Iterable[Procurement], *, uri: str, publisher: str, public: bool = False) -> dict:
    return {
        "uri": uri,
        "version": "1.1",
        "publishedDate": _iso(utcnow()),
        "publisher": {"name": publisher},
        "extensions": ["https://raw.githubusercontent.com/open-contracting-extensions/ocds_bid_extension/v1.1.5/extension.json"],
        "releases": releases(list(procurements), public=public),
    }


def with_release_data(stmt: sa.Select) -> sa.Select:
    """``stmt`` (which reads ``Procurement``) with what ``release`` reads of each: a plan's package is then a few
    statements, not twenty per procurement."""
    return stmt.options(
        joinedload(Procurement.engagement).options(
            joinedload(Engagement.bureau),
            joinedload(Engagement.contract).joinedload(Contract.notice).joinedload(ContractNotice.media_posting)),
        joinedload(Procurement.award).joinedload(Award.firm),
        joinedload(Procurement.media_posting),
        selectinload(Procurement.amendments).joinedload(ProcurementAmendment.media_posting),
        selectinload(Procurement.bids).joinedload(Bid.firm),
        selectinload(Procurement.notices).options(joinedload(ResultNotice.firm), joinedload(ResultNotice.media_posting)))


def plan_procurements(plan: EvaluationPlan) -> list[Procurement]:
    """Every procurement of the plan's engagements, in the plan's item order."""
    return list(db.session.execute(with_release_data(
        sa.select(Procurement).join(Engagement, Engagement.id == Procurement.engagement_id)
        .join(PlanItem, PlanItem.id == Engagement.plan_item_id)
        .where(PlanItem.plan_id == plan.id).order_by(PlanItem.position, PlanItem.id, Procurement.id))).unique().scalars())
