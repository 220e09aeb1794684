"""API of the lead evaluator (主评人) and team (procurement/team.py) and of people's records (registry/people.py).

The same services as the pages: the firm names the team (POST), the bureau and the firm read it; a person's
record is read by their firm and the bureaus that see the firm. Not visible → 404, as everywhere in the API.
"""
from __future__ import annotations

from flask import jsonify

from evalhub.core.api import api_user, operation, schema
from evalhub.core.apiutil import (
    INTEGER, NULLABLE_DATETIME, STRING, date_str, datetime_str, id_field, labeled, labeled_schema, nullable,
    raise_if, read_body, text, visible,
)
from evalhub.core.errors import NotFound
from evalhub.core import permissions
from evalhub.extensions import db
from evalhub.procurement import team
from evalhub.procurement.models import Engagement, EngagementMember
from evalhub.registry import people
from evalhub.registry.models import Firm, FirmStaff, PointKind, StaffPoint, StaffRole

TAG = "主评人与人员记分"

MEMBER = schema("EngagementMember", {"type": "object", "required": ["staff_id", "name", "is_lead"], "properties": {
    "staff_id": INTEGER, "name": STRING, "role": labeled_schema(StaffRole), "is_lead": {"type": "boolean"},
    "named_at": NULLABLE_DATETIME, "removed_at": NULLABLE_DATETIME,
    "removed_reason": {"type": "string", "nullable": True}}})
TEAM = schema("EngagementTeam", {"type": "object", "required": ["engagement_id", "members"], "properties": {
    "engagement_id": INTEGER, "lead": nullable(MEMBER), "members": {"type": "array", "items": MEMBER},
    "history": {"type": "array", "items": MEMBER}, "may_name": {"type": "boolean"}}})
TEAM_REQUEST = schema("EngagementTeamRequest", {"type": "object", "required": ["lead_staff_id"], "properties": {
    "lead_staff_id": id_field("主评人：本机构名册中在岗人员的 ID"),
    "member_staff_ids": {"type": "array", "maxItems": team.MAX_MEMBERS, "items": id_field(),
                         "description": "其他团队成员：本机构名册中在岗人员的 ID"},
    "reason": text(300, "变更理由（已指定团队后再变更时必填）", nullable=True)}})
POINT = schema("StaffPoint", {"type": "object", "required": ["id", "kind", "points", "occurred_on"], "properties": {
    "id": INTEGER, "kind": labeled_schema(PointKind), "points": INTEGER,
    "occurred_on": {"type": "string", "format": "date"},
    "as_lead": {"type": "boolean"}, "reference": {"type": "string", "nullable": True},
    "bureau": STRING, "firm": STRING, "note": STRING, "counted": {"type": "boolean"}}})
STANDING = {"type": "object", "properties": {
    "total": INTEGER, "warning": INTEGER, "threshold": INTEGER, "window_days": INTEGER, "status": STRING,
    "blocked": {"type": "boolean"}, "blocked_until": {"type": "string", "format": "date", "nullable": True}}}
PERSON = schema("PersonRecord", {"type": "object", "required": ["staff_id", "name", "standing"], "properties": {
    "staff_id": INTEGER, "name": STRING, "role": labeled_schema(StaffRole), "firm_id": INTEGER,
    "active": {"type": "boolean"},
    "standing": STANDING, "points": {"type": "array", "items": POINT}}})
FIRM_PEOPLE = schema("FirmPeopleRecords", {"type": "object", "required": ["firm_id", "people"], "properties": {
    "firm_id": INTEGER, "people": {"type": "array", "items": PERSON}}})


def _member(m: EngagementMember) -> dict:
    return {"staff_id": m.staff_id, "name": m.staff.name, "role": labeled(m.staff.role), "is_lead": m.is_lead,
            "named_at": datetime_str(m.named_at), "removed_at": datetime_str(m.removed_at),
            "removed_reason": m.removed_reason}


def _team(engagement: Engagement) -> dict:
    now = team.members(engagement)
    lead = next((m for m in now if m.is_lead), None)
    return {"engagement_id": engagement.id, "lead": _member(lead) if lead else None,
            "members": [_member(m) for m in now], "history": [_member(m) for m in team.history(engagement)],
            "may_name": permissions.can(api_user(), "engagement.team.name", engagement)}


def _standing(s: people.Standing) -> dict:
    return {"total": s.total, "warning": s.warning, "threshold": s.threshold, "window_days": s.window_days,
            "status": s.status, "blocked": s.blocked, "blocked_until": date_str(s.blocked_until)}


def _point(p: StaffPoint, counted: set[int]) -> dict:
    return {"id": p.id, "kind": labeled(p.kind), "points": p.points, "occurred_on": date_str(p.occurred_on),
            "as_lead": p.as_lead, "reference": p.reference, "bureau": p.bureau.short_name, "firm": p.firm.name,
            "note": p.note, "counted": p.id in counted}


def _person(staff: FirmStaff, standing: people.Standing, points: list[StaffPoint]) -> dict:
    counted = {p.id for p in standing.points}
    return {"staff_id": staff.id, "name": staff.name, "role": labeled(staff.role), "firm_id": staff.firm_id,
            "active": staff.active, "standing": _standing(standing), "points": [_point(p, counted) for p in points]}


@operation("/engagements/<int:engagement_id>/team", "GET", summary="评价任务的主评人及项目团队（含变更记录）",
           tag=TAG, response=TEAM, errors=(404,))
def get_engagement_team(engagement_id: int):
    return jsonify(_team(visible(Engagement, engagement_id, "engagement.team.view", "未找到该评价任务。")))


@operation("/engagements/<int:engagement_id>/team", "POST",
           summary="承担机构指定或变更主评人及项目团队（只能从本机构名册选择；记分达到限制分数的人员不得指定）",
           tag=TAG, response=TEAM, body=TEAM_REQUEST, errors=(403, 404, 409, 422))
def name_engagement_team(engagement_id: int):
    user = api_user()
    engagement = visible(Engagement, engagement_id, "engagement.team.view", "未找到该评价任务。")
    data, errors, body = read_body("reason")
    ids = data.get("member_staff_ids") or []
    if not isinstance(ids, list):
        errors["member_staff_ids"] = "必须是 ID 数组"
        ids = []
    raise_if(errors)
    team.name_team(engagement, team.TeamInput(lead_staff_id=data.get("lead_staff_id"), member_staff_ids=ids,
                                              reason=body["reason"]), user)
    db.session.commit()
    return jsonify(_team(engagement))


def _visible_staff(staff_id: int) -> FirmStaff:
    staff = db.session.get(FirmStaff, staff_id)
    if staff is None or not permissions.can(api_user(), "staff.record.view", staff):
        raise NotFound("未找到该人员。")
    return staff


@operation("/staff/<int:staff_id>/record", "GET", summary="从业人员的记分记录（本区域记分周期内累计、状态和全部记分事项）",
           tag=TAG, response=PERSON, errors=(404,))
def get_person_record(staff_id: int):
    staff = _visible_staff(staff_id)
    user = api_user()
    bureau, _ = people.reading_settings(user, staff.firm)  # the reader's limit, as on the page
    return jsonify(_person(staff, *people.person_record(staff, user, bureau)))


@operation("/firms/<int:firm_id>/people", "GET", summary="机构在岗人员的记分情况（本区域记分周期内）",
           tag=TAG, response=FIRM_PEOPLE, errors=(404,))
def get_firm_people(firm_id: int):
    firm = visible(Firm, firm_id, "firm.view", "未找到该机构。")
    if not people.records_visible(api_user(), firm):
        raise NotFound("未找到该机构。")
    bureau, _ = people.reading_settings(api_user(), firm)  # the reader's limit, as the firm page's card
    return jsonify({"firm_id": firm.id, "people": [_person(s, st, st.points)
                                                   for s, st in people.firm_records(firm, bureau=bureau)]})
