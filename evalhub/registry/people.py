"""A person's own record (issue 14): points (失信记分) against the people of a firm's roster.

Modelled on the ecology ministry's credit platform for the writers of environmental impact reports
(生态环境部公告 2019年第38号 附件3《建设项目环境影响报告书（表）编制单位和编制人员失信行为记分办法（试行）》
第二条): points are counted over a one-year scoring period, 10 is the warning score, and 20 — reached at once
or added up as they come (实时累计) — is the limit, after which the person is put on the correction list.
Here the period is a rolling window (``people.points_window_days``, default 365 days up to today): every
person's archive starts on a different day in the ministry's rule, and a rolling year never lets points
vanish on 1 January. The limit is reached at the threshold ("达到"), not only above it.

The points of each kind of event are a bureau setting (the deciding bureau's); the threshold and window
are the settings of the bureau that would name the person. Points given by any bureau of the same region
(the top of the bureau tree, e.g. 自治区) count, wherever the person is named in that region. A person is
the keyed hash of their identity number, so the record follows them to another firm's roster.

Who the responsible people are (the lead evaluator, or the whole team) is the engagement's business:
``procurement.team`` names them and calls ``add_points`` here when review or supervision decides.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable, Optional

import sqlalchemy as sa

from evalhub.core import audit
from evalhub.core.enums import Role
from evalhub.core.models import Bureau, User
from evalhub.core.notifications import emit
from evalhub.core.permissions import rules, visible
from evalhub.core.settings import SettingDef, get_setting, register
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.registry.models import Firm, FirmStaff, PointKind, StaffPoint
from evalhub.registry.permissions import firm_member

SECTION = "从业人员记分"
SOURCE = "生态环境部公告2019年第38号附件3 第二条"

# Each kind of event and the setting that holds its points.
KIND_SETTINGS = {
    PointKind.REPORT_RETURNED: "people.points_report_returned",
    PointKind.FINDING_MINOR: "people.points_finding_minor",
    PointKind.FINDING_GENERAL: "people.points_finding_general",
    PointKind.FINDING_SERIOUS: "people.points_finding_serious",
    PointKind.FINDING_INTENTIONAL: "people.points_finding_intentional",
}

register(
    SettingDef("people.points_report_returned", "评价报告评审未通过退回整改，每次记分", SECTION, 2, minimum=0, maximum=20),
    SettingDef("people.points_finding_minor", "监督检查发现轻微问题记分", SECTION, 1, minimum=0, maximum=20),
    SettingDef("people.points_finding_general", "监督检查发现一般问题记分", SECTION, 3, minimum=0, maximum=20),
    SettingDef("people.points_finding_serious", "监督检查发现严重问题记分", SECTION, 10, minimum=0, maximum=20),
    SettingDef("people.points_finding_intentional", "监督检查发现故意违规记分", SECTION, 20, minimum=0, maximum=20,
               help="默认 20 分，一次即达到限制分数（参照环评编制人员失信记分办法：禁止从业的直接记 20 分）。"),
    SettingDef("people.points_warning", "记分警示分数", SECTION, 10, minimum=1, maximum=100,
               help="记分周期内累计达到该分数的人员在机构页面和个人记录中标为“警示”。"),
    SettingDef("people.points_threshold", "记分限制分数（达到后不得被指定为主评人或团队成员）", SECTION, 20,
               minimum=1, maximum=100,
               help="记分周期内累计达到该分数的人员，不得在本区域任何财政局的新任务中被指定，也不得中途换入。"),
    SettingDef("people.points_window_days", "记分周期（天，滚动计算至今日）", SECTION, 365, minimum=30, maximum=1095),
    SettingDef("people.points_to", "记分对象", SECTION, "lead", kind="choice",
               choices=(("lead", "仅主评人（默认）"), ("team", "主评人和团队成员")),
               help="评价报告退回整改或监督检查发现问题时，记分给任务的主评人，或主评人和全部团队成员。"),
)


# --- the region and the window ---------------------------------------------------------------------

def region_of(bureau: Bureau) -> Bureau:
    """The top of the bureau's tree (the region, 自治区): its points count wherever in that tree."""
    node = bureau
    while node.parent is not None:
        node = node.parent
    return node


def _window_start(bureau: Bureau, on: date) -> date:
    """The first day that still counts: the window ends today and is ``people.points_window_days`` long."""
    return on - timedelta(days=int(get_setting(bureau, "people.points_window_days")) - 1)


def _region_points(digests: Iterable[str], bureau: Bureau, on: date, firm_id: int | None = None) -> list[StaffPoint]:
    """The points of these people given in ``bureau``'s region within its window, oldest first (``firm_id``:
    only those given on that firm's roster rows)."""
    digests = list(set(digests))
    if not digests:
        return []
    root = region_of(bureau)
    stmt = (sa.select(StaffPoint).join(Bureau, Bureau.id == StaffPoint.bureau_id)
            .where(StaffPoint.person_digest.in_(digests), Bureau.path.startswith(root.path),
                   StaffPoint.occurred_on >= _window_start(bureau, on), StaffPoint.occurred_on <= on)
            .order_by(StaffPoint.occurred_on, StaffPoint.id))
    if firm_id is not None:
        stmt = stmt.where(StaffPoint.firm_id == firm_id)
    return list(db.session.execute(stmt).scalars())


@dataclass
class Standing:
    """A person's points in a region's window and what follows from them."""

    total: int
    warning: int
    threshold: int
    window_days: int
    points: list[StaffPoint] = field(default_factory=list)
    blocked_until: Optional[date] = None  # the first day the person may be named again

    @property
    def blocked(self) -> bool:
        return self.total >= self.threshold

    @property
    def status(self) -> str:
        if self.blocked:
            return "限制"
        return "警示" if self.total >= self.warning else "正常"


def standing(staff: FirmStaff, bureau: Bureau, on: date | None = None) -> Standing:
    return standings([staff], bureau, on)[staff.id]


def standings(staff: Iterable[FirmStaff], bureau: Bureau, on: date | None = None, *,
              firm_id: int | None = None) -> dict[int, Standing]:
    """Each person's standing in ``bureau``'s region (with its settings), one query for all of them
    (``firm_id``: counting only the points given on that firm's roster rows)."""
    on = on or beijing_today()
    staff = list(staff)
    threshold = int(get_setting(bureau, "people.points_threshold"))
    warning = int(get_setting(bureau, "people.points_warning"))
    window = int(get_setting(bureau, "people.points_window_days"))
    by_person: dict[str, list[StaffPoint]] = defaultdict(list)
    for point in _region_points((s.id_number_digest for s in staff), bureau, on, firm_id):
        by_person[point.person_digest].append(point)
    out = {}
    for s in staff:
        points = by_person.get(s.id_number_digest, [])
        result = Standing(sum(p.points for p in points), warning, threshold, window, points)
        if result.blocked:
            # Points drop out of the window day by day: the person is free once what is left is under the limit.
            left = result.total
            for day in sorted({p.occurred_on for p in points}):
                left -= sum(p.points for p in points if p.occurred_on == day)
                if left < threshold:
                    result.blocked_until = day + timedelta(days=window)
                    break
        out[s.id] = result
    return out


def naming_block(staff: FirmStaff, bureau: Bureau, on: date | None = None) -> Optional[str]:
    """Why ``staff`` may not be named on an engagement of ``bureau`` (None: they may)."""
    result = standing(staff, bureau, on)
    if not result.blocked:
        return None
    until = f"，{result.blocked_until:%Y-%m-%d} 起方可再被指定" if result.blocked_until else ""
    return (f"{staff.name}近 {result.window_days} 天在本区域累计记分 {result.total} 分，已达到限制分数 "
            f"{result.threshold} 分，不得被指定为主评人或团队成员{until}")


# --- adding points ---------------------------------------------------------------------------------

def points_for(kind: PointKind, bureau: Bureau) -> int:
    return int(get_setting(bureau, KIND_SETTINGS[kind]))


def add_points(staff: FirmStaff, kind: PointKind, *, bureau: Bureau, source_type: str, source_id: int,
               note: str, actor: User | None, as_lead: bool = False, reference: str | None = None,
               link: str | None = None, on: date | None = None) -> Optional[StaffPoint]:
    """Record ``kind``'s points (the deciding ``bureau``'s table) against ``staff``, once per source.
    Called by the service that decides (review returns a report, supervision records a finding); None when
    the table gives the kind 0 points or this source already charged this person."""
    amount = points_for(kind, bureau)
    if amount <= 0:
        return None
    existing = db.session.execute(sa.select(StaffPoint).where(
        StaffPoint.staff_id == staff.id, StaffPoint.source_type == source_type,
        StaffPoint.source_id == source_id)).scalar_one_or_none()
    if existing is not None:
        return None
    on = on or beijing_today()
    point = StaffPoint(staff_id=staff.id, firm_id=staff.firm_id, person_digest=staff.id_number_digest,
                       bureau_id=bureau.id, kind=kind, points=amount, occurred_on=on, as_lead=as_lead,
                       reference=reference, source_type=source_type, source_id=source_id, link=link,
                       note=note[:500], actor_id=actor.id if actor is not None else None)
    db.session.add(point)
    db.session.flush()
    now = standing(staff, bureau, on)
    role = "主评人" if as_lead else "团队成员"
    audit.record("staff.points_added", staff.firm, actor=actor, bureau_id=bureau.id,
                 summary=f"{staff.firm.name} {staff.name}（{role}）记分 {amount} 分：{kind.label}"
                         + (f"（{reference}）" if reference else "") + f"；累计 {now.total} 分",
                 payload={"staff_id": staff.id, "point_id": point.id, "kind": kind, "points": amount,
                          "source": f"{source_type}:{source_id}", "total": now.total, "status": now.status})
    emit("staff_points_recorded", link=f"/people/{staff.id}", firm_id=staff.firm_id, name=staff.name,
         points=amount, kind=kind.label, reference=reference or "—", bureau=bureau.short_name,
         total=now.total, days=now.window_days,
         status=(f"已达到限制分数 {now.threshold} 分，不得被指定为新任务的主评人或团队成员。" if now.blocked
                 else f"已达到警示分数 {now.warning} 分。" if now.status == "警示" else ""))
    return point


# --- reading a record ------------------------------------------------------------------------------

def only_own_points(user: User, staff: FirmStaff) -> int | None:
    """The firm whose points alone ``user`` reads on this person's record, or None for the whole record. The
    record follows the person to the firm they work for now, not back: a firm they left (or any firm they are
    not active on) reads only the points given on its own roster rows — another firm's findings and tasks are
    that firm's and the deciding bureau's business. Bureaus read everything they may open."""
    if user.role != Role.FIRM_USER:
        return None
    current = db.session.execute(sa.select(FirmStaff.id).where(
        FirmStaff.id_number_digest == staff.id_number_digest, FirmStaff.firm_id == user.firm_id,
        FirmStaff.active.is_(True)).limit(1)).first()
    return None if current is not None else user.firm_id


def person_points(staff: FirmStaff, user: User | None = None) -> list[StaffPoint]:
    """Every point this person was given (on any roster, by any bureau), newest first: their record — as much
    of it as ``user`` reads (``only_own_points``; None: all)."""
    stmt = (sa.select(StaffPoint).where(StaffPoint.person_digest == staff.id_number_digest)
            .order_by(StaffPoint.occurred_on.desc(), StaffPoint.id.desc()))
    own = only_own_points(user, staff) if user is not None else None
    if own is not None:
        stmt = stmt.where(StaffPoint.firm_id == own)
    return list(db.session.execute(stmt).scalars())


def person_record(staff: FirmStaff, user: User, bureau: Bureau) -> tuple[Standing, list[StaffPoint]]:
    """The person's standing in their firm's region under ``bureau``'s settings (``reading_settings``) and their
    points, as ``user`` may read them."""
    own = only_own_points(user, staff)
    found = standings([staff], bureau, firm_id=own)[staff.id]
    return found, person_points(staff, user)


def firm_records(firm: Firm, on: date | None = None, bureau: Bureau | None = None) -> list[tuple[FirmStaff, Standing]]:
    """The firm's people (on the roster now) with their standing in the firm's region, most points first, with
    ``bureau``'s settings (default: the firm's library bureau's)."""
    people = [s for s in firm.staff if s.active]
    found = standings(people, bureau or firm.bureau, on)
    return sorted(((s, found[s.id]) for s in people), key=lambda pair: (-pair[1].total, pair[0].id))


def reading_settings(user: User, firm: Firm) -> tuple[Bureau, str]:
    """Whose limit a reader of a person's standing sees, and the words naming it. The limit is the setting of the
    bureau that would name the person (``naming_block``): a bureau user reads its own bureau's — the block it
    will meet; the firm (or an account without a bureau) reads its library bureau's, named as such."""
    if user.role in (Role.BUREAU_ADMIN, Role.BUREAU_STAFF) and user.bureau is not None:
        return user.bureau, "本局设置"
    return firm.bureau, f"{firm.bureau.name}的设置，即机构入库财政局；其他财政局可能另有设置"


def records_visible(user: User, firm: Firm) -> bool:
    """The firm sees its own people's records; a bureau user, those of the firms in the libraries it sees."""
    if firm_member(user, firm):
        return True
    return user.role != Role.FIRM_USER and visible(user, firm)


rules({"staff.record.view": lambda user, staff: staff is not None and records_visible(user, staff.firm)})
