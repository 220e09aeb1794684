"""Each engagement's lead evaluator (主评人) and team, named by the firm from its own roster (issue 14).

The Ministry of Finance's credit platform for third-party firms records each firm's 主评人 and staff; here
the firm that won an engagement names them after the award (web and API), the bureau sees them, and the
budget unit sees the lead evaluator. A person whose points (registry/people.py) reached the limit in the
region cannot be named on an engagement, nor swapped in later; people already on the team stay. A change
closes the old rows (kept, with who and why) so that points go to whoever was responsible at the time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import aliased, contains_eager

from evalhub.core import audit, concurrency, permissions
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.listing import as_int
from evalhub.core.models import Bureau, User
from evalhub.core.notifications import emit
from evalhub.core.permissions import rules, visible
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import page, workflow
from evalhub.procurement.models import Engagement, EngagementMember, EngagementState as S
from evalhub.registry import people
from evalhub.registry.models import FirmStaff, PointKind, StaffPoint
from evalhub.registry.permissions import firm_member

# From the award to the end of the review the firm keeps its team current; afterwards it is the record.
OPEN_STATES = (S.PROCURING, S.CONTRACTED, S.PLAN_SUBMITTED, S.PLAN_IN_REVIEW, S.PLAN_RETURNED, S.FIELDWORK,
               S.REPORT_SUBMITTED, S.REPORT_IN_REVIEW, S.REPORT_RETURNED)
MAX_MEMBERS = 30
UNDER_REVIEW = (S.REPORT_SUBMITTED, S.REPORT_IN_REVIEW)  # frozen until the outcome: see change_block


def _names(user: User, engagement: Any) -> bool:
    return (engagement is not None and engagement.firm_id is not None and user.role == Role.FIRM_USER
            and user.firm_id == engagement.firm_id and firm_member(user, engagement.firm))


def _sees_team(user: User, engagement: Any) -> bool:
    """The firm and the bureaus that see the engagement; a budget unit sees the lead (``lead_visible``)."""
    return engagement is not None and visible(user, engagement)


rules({
    "engagement.team.name": _names,
    "engagement.team.view": _sees_team,
})


# --- reading ---------------------------------------------------------------------------------------

# built once: the engagement page asks on every request, and building it cost more than running it
_MEMBERS = (sa.select(EngagementMember).join(FirmStaff, FirmStaff.id == EngagementMember.staff_id)
            .options(contains_eager(EngagementMember.staff))
            .where(EngagementMember.engagement_id == sa.bindparam("engagement_id"),
                   EngagementMember.removed_at.is_(None), FirmStaff.firm_id == sa.bindparam("firm_id"))
            .order_by(EngagementMember.is_lead.desc(), EngagementMember.id))


# The engagement page's 主评人 row: the team now as ``members`` gives it, lead first, each member's name; read with
# the engagement by the page (``page.part``).
_ON_PAGE = aliased(Engagement)
PAGE_ROWS = page.part("team", sa.select(EngagementMember.id, EngagementMember.is_lead, FirmStaff.name)
                      .join(FirmStaff, FirmStaff.id == EngagementMember.staff_id)
                      .join(_ON_PAGE, _ON_PAGE.id == EngagementMember.engagement_id)
                      .where(_ON_PAGE.id == page.ENGAGEMENT_ID, EngagementMember.removed_at.is_(None),
                             FirmStaff.firm_id == _ON_PAGE.firm_id)
                      .order_by(EngagementMember.is_lead.desc(), EngagementMember.id))


def members(engagement: Engagement) -> list[EngagementMember]:
    """The team now: the lead first, then in the order named. Only the people of the engagement's firm: after
    an award revoked (a challenge upheld) the former winner's team is history, not the team; before an award,
    nobody. Each with its person (from the join already there: the pages name them)."""
    if engagement.firm_id is None:
        return []
    return list(db.session.execute(_MEMBERS, {"engagement_id": engagement.id, "firm_id": engagement.firm_id})
                .scalars().all())


def history(engagement: Engagement) -> list[EngagementMember]:
    """Every row ever named, the closed ones included, oldest first."""
    return list(db.session.execute(sa.select(EngagementMember).where(
        EngagementMember.engagement_id == engagement.id).order_by(EngagementMember.id)).scalars())


def lead(engagement: Engagement) -> Optional[FirmStaff]:
    return next((m.staff for m in members(engagement) if m.is_lead), None)


@workflow.requirement("lead_named")
def _lead_named(engagement: Engagement) -> Optional[str]:
    """A report is handed in under a named 主评人: returned reports and inspection findings charge the people
    responsible, so a firm that never named one would answer for nothing (reviewer R1)."""
    named = lead(engagement)
    if named is None:
        return "尚未指定主评人：请先在“项目团队”中从本机构名册指定主评人，再提交评价报告"
    if not named.active:
        # A lead taken off the roster (离岗, or gone to another firm) answers for nothing the firm hands in now.
        return (f"主评人{named.name}已不在本机构名册中（已离岗）：请先在“项目团队”中改由本机构在岗人员担任主评人，"
                "再提交评价报告")
    return None


def proposed(engagement: Engagement) -> tuple[Optional[int], list[int]]:
    """What the form offers before anything is named: the team the winning bid proposed, if any."""
    procurement = engagement.current_procurement
    award = procurement.award if procurement is not None else None
    bid = award.bid if award is not None else None
    if bid is None:
        return None, []
    active = {s.id for s in engagement.firm.staff if s.active} if engagement.firm else set()
    ids = [m.staff_id for m in bid.team if m.staff_id in active]
    return next((m.staff_id for m in bid.team if m.is_lead and m.staff_id in active), None), ids


def _no_round_left(engagement: Engagement) -> Optional[str]:
    """Why a returned report cannot be handed in again (the round limit, review's ``rounds_left``), or None."""
    return workflow.REQUIREMENTS["rounds_left"](engagement)


def change_block(engagement: Engagement) -> Optional[str]:
    """Why a named team may not be changed now, though the engagement is open (None: it may) — reviewer R1:
    - under review, the team that handed the report in answers for it: a lead swapped in would take the returned
      report's points in place of the person who wrote it;
    - returned with no round left, nothing more is handed in: the report the bureau accepts (or not) is the
      current team's, and a lead swapped in would take a later finding's points for work they never did."""
    if engagement.state in UNDER_REVIEW:
        return f"评价报告评审中（{engagement.state.label}），评审结束前不能变更主评人和团队。"
    if engagement.state == S.REPORT_RETURNED and (last := _no_round_left(engagement)):
        return f"{last}；整改轮次已用完，不再提交整改后报告，不能变更主评人和团队。"
    return None


# --- naming ----------------------------------------------------------------------------------------

@dataclass
class TeamInput:
    lead_staff_id: Any
    member_staff_ids: Iterable[Any] = ()
    reason: str | None = None


def _as_id(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return as_int(str(value or ""))  # the project's one id parser: ASCII digits in range ("²" is no id)


def name_team(engagement: Engagement, data: TeamInput, actor: User) -> list[EngagementMember]:
    """The firm names (or changes) the lead evaluator and team from its own roster's active people."""
    if not permissions.can(actor, "engagement.team.name", engagement):
        raise PermissionDenied("只有承担该任务的第三方机构可以指定主评人和项目团队。")
    if engagement.state not in OPEN_STATES:
        raise Conflict(f"任务当前状态为“{engagement.state.label}”，不能再指定或变更主评人和团队。")
    # Two submissions at once must not both see "no team yet" and both write one.
    concurrency.serialise(f"engagement_team:{engagement.id}")
    firm = engagement.firm
    roster = {s.id: s for s in firm.staff if s.active}
    errors: dict[str, str] = {}
    lead_id = _as_id(data.lead_staff_id)
    raw_members = list(data.member_staff_ids or [])
    member_ids = [_as_id(v) for v in raw_members]
    if lead_id is None:
        errors["lead_staff_id"] = "请从本机构名册中选择主评人"
    elif lead_id not in roster:
        errors["lead_staff_id"] = "主评人必须是本机构名册中的在岗人员"
    if any(i is None for i in member_ids) or len(raw_members) > MAX_MEMBERS:
        errors["member_staff_ids"] = f"团队成员应为本机构名册中的人员（至多 {MAX_MEMBERS} 人）"
    elif any(i not in roster for i in member_ids):
        errors["member_staff_ids"] = "团队成员必须是本机构名册中的在岗人员"
    ValidationFailed.raise_if(errors)
    wanted = {lead_id: True, **{i: False for i in dict.fromkeys(member_ids) if i != lead_id}}
    current = members(engagement)
    now_roles = {m.staff_id: m.is_lead for m in current}
    if now_roles == wanted:
        return current  # the same team again: already done
    if current and (frozen := change_block(engagement)):
        raise Conflict(frozen)  # a first naming stays open
    reason = (data.reason or "").strip()
    if current and not reason:
        errors["reason"] = "变更主评人或团队成员须填写变更理由"
    elif len(reason) > 300:
        errors["reason"] = "变更理由不超过 300 字"
    # Whoever comes in, or becomes the lead, is checked against the limit; people already on the team stay.
    for staff_id, is_lead in wanted.items():
        if now_roles.get(staff_id) is None or (is_lead and not now_roles[staff_id]):
            blocked = people.naming_block(roster[staff_id], engagement.bureau)
            if blocked:
                key = "lead_staff_id" if is_lead else "member_staff_ids"
                errors[key] = "；".join(filter(None, [errors.get(key), blocked]))
    ValidationFailed.raise_if(errors)
    now = utcnow()
    for m in current:
        if wanted.get(m.staff_id) != m.is_lead:
            m.removed_at, m.removed_by_id, m.removed_reason = now, actor.id, reason or None
    kept = {m.staff_id for m in current if wanted.get(m.staff_id) == m.is_lead}
    for staff_id, is_lead in wanted.items():
        if staff_id not in kept:
            db.session.add(EngagementMember(engagement_id=engagement.id, staff_id=staff_id, is_lead=is_lead,
                                            named_at=now, named_by_id=actor.id))
    db.session.flush()
    team = members(engagement)
    lead_name = roster[lead_id].name
    others = "、".join(m.staff.name for m in team if not m.is_lead) or "无"
    verb = "变更" if current else "确定"
    audit.record(f"engagement.team_{'changed' if current else 'named'}", engagement, actor=actor,
                 summary=f"{engagement.reference} 主评人及团队{verb}：主评人 {lead_name}；成员 {others}"
                         + (f"；理由：{reason}" if reason else ""),
                 payload={"lead": lead_id, "members": [m.staff_id for m in team if not m.is_lead],
                          "before": {str(k): v for k, v in now_roles.items()}, "reason": reason or None})
    emit("engagement_team_named", link=f"/engagements/{engagement.id}/team", bureau_id=engagement.bureau_id,
         reference=engagement.reference, verb=verb, firm=firm.name, lead=lead_name, members=others,
         reason=f"变更理由：{reason}" if reason else "")
    return team


def close_team(engagement: Engagement, actor: User | None, reason: str) -> int:
    """Close every open row of the engagement's team (an award revoked): whoever wins it next — even the same
    firm again — names its team afresh, each person checked against the points limit as it is then, instead of
    getting the former rows back unchecked. Returns how many rows were closed; the history keeps them."""
    open_rows = db.session.execute(sa.select(EngagementMember).where(
        EngagementMember.engagement_id == engagement.id, EngagementMember.removed_at.is_(None))).scalars().all()
    now = utcnow()
    for row in open_rows:
        row.removed_at, row.removed_by_id, row.removed_reason = now, actor.id if actor else None, reason[:300]
    return len(open_rows)


# --- points to the people responsible --------------------------------------------------------------

def members_at(engagement: Engagement, at: datetime) -> list[EngagementMember]:
    """The team as it stood at ``at`` (the rows named by then and not yet removed), lead first."""
    return list(db.session.execute(
        sa.select(EngagementMember).join(FirmStaff, FirmStaff.id == EngagementMember.staff_id)
        .where(EngagementMember.engagement_id == engagement.id, EngagementMember.named_at <= at,
               sa.or_(EngagementMember.removed_at.is_(None), EngagementMember.removed_at > at),
               FirmStaff.firm_id == engagement.firm_id)
        .order_by(EngagementMember.is_lead.desc(), EngagementMember.id)).scalars())


def responsible(engagement: Engagement, at: datetime | None = None) -> list[EngagementMember]:
    """Who answers for the engagement's work: the lead, or the whole team (``people.points_to``). ``at`` (a case's
    opening): the team of that moment, so a lead swapped in once the firm knew of the case takes no one's points
    (reviewer R1); the team now when none was named by then."""
    team = (members_at(engagement, at) if at is not None else []) or members(engagement)
    if get_setting(engagement.bureau, "people.points_to") == "team":
        return team
    return [m for m in team if m.is_lead]


def charge(engagement: Engagement, kind: PointKind, *, bureau: Bureau, source_type: str, source_id: int,
           note: str, actor: User | None, link: str | None = None, at: datetime | None = None) -> list[StaffPoint]:
    """Points of ``kind`` (``bureau``'s table) to each person responsible for ``engagement``: called by review
    when it returns a report, by supervision when it records a finding. No team named: nobody is charged
    (the audit event of the decision stands; the engagement page shows that no lead was named)."""
    out = []
    for member in responsible(engagement, at):
        point = people.add_points(member.staff, kind, bureau=bureau, source_type=source_type, source_id=source_id,
                                  note=note, actor=actor, as_lead=member.is_lead, reference=engagement.reference,
                                  link=link)
        if point is not None:
            out.append(point)
    return out
