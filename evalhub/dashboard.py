"""The bureau's dashboard (工作台): one page drawing on every domain, so it sits at the top level beside the
public pages and the API. Its route stays on the core blueprint (endpoint ``core.dashboard``), where sign-in
sends everyone."""
from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.orm import joinedload

from evalhub.core import permissions, summaries
from evalhub.core.enums import JobStatus, Role
from evalhub.core.models import AuditEvent, Bureau, Job
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.core.views import bp
from evalhub.credit.views import dashboard_cards, dashboard_counts as credit_counts
from evalhub.extensions import db
from evalhub.procurement import contract_notices, media, workflow
from evalhub.procurement.models import Engagement, ProcurementMethod
from evalhub.registry import counts as registry_counts
from evalhub.registry.models import Expert, Firm, FirmStatus
from evalhub.results.models import ResultFinding
from evalhub.results.services import late_cutoffs, overdue_findings_query
from evalhub.review.services import overdue_reviews_page, overdue_reviews_query, scoped_panels
from evalhub.supervision.views import dashboard_counts as supervision_counts, dashboard_summary


@bp.route("/")
def dashboard():
    context: dict = {}
    if current_user.role == Role.FIRM_USER:
        if permissions.limited_to(current_user) is not None:  # a firm not yet admitted: its application
            return redirect(url_for("registry.firm_detail", firm_id=current_user.firm_id))
        return redirect(url_for("procurement.workspace"))
    if current_user.role == Role.EXPERT:
        return redirect(url_for("registry.expert_detail", expert_id=current_user.expert_id))
    if current_user.role == Role.BUDGET_UNIT:  # an evaluated unit: its engagements and rectification
        return redirect(url_for("results.unit_home"))
    today = beijing_today()
    year = today.year  # the 监督检查 card counts this year's findings
    built = _statements(current_user, today, permissions.can(current_user, "audit.view"))
    bound = {NOW.key: utcnow()}
    # the counts kept on write that this transaction's own writes moved, if any (none: no statement)
    summaries.recount_all(db.session())
    # every number on the page, and whether the lists that are usually empty have anything, in one statement
    counted = _read_counts(built.counts, built.shapes, bound)
    context["firm_counts"] = {FirmStatus(status): n for status, n in counted["firms"].items()}
    context["expert_count"] = counted["experts"]
    # the short lists in one statement, each with only the columns it shows
    listed = _read_lists(*built.lists[bool(context["firm_counts"].get(FirmStatus.PENDING))])
    context["pending"] = [dict(id=i, name=name, bureau_short_name=short, applied_at=at)
                          for i, name, short, at in listed.get("pending", [])]
    context["jobs"] = [dict(id=i, title=title, status=JobStatus(status)) for i, title, status, _ in listed["jobs"]]
    if "events" in listed:
        context["events"] = [dict(actor_name=actor, summary=summary, occurred_at=at)
                             for _, actor, summary, at in listed["events"]]
    context["overdue_count"], context["overdue"] = _overdue_engagements(built.overdue, today)
    rows = db.session.execute(built.reviews, bound).all() if counted["overdue_reviews"] else []
    context["overdue_reviews_count"], context["overdue_reviews"] = (rows[0].total if rows else 0), rows
    context["overdue_findings"] = db.session.execute(built.findings).all() if counted["overdue_findings"] else []
    # 合同公告 past its 2 working days (政府采购法实施条例 第五十条) and result notices not posted on the designated media
    # past theirs (87号令 第六十九条): counted with the rest, both listed in one statement when there are any
    context["contract_notices_count"] = counted["contract_notices"]
    context["result_postings_count"] = counted["result_postings"]
    owed = db.session.execute(built.notices).all() if counted["contract_notices"] or counted["result_postings"] else []
    context["contract_notices"] = [n for n in owed if n.part == "contract"]
    context["result_postings"] = [(n, ProcurementMethod(n.method).result_word) for n in owed if n.part == "result"]
    context.update(dashboard_cards(current_user, counted))
    # the 监督检查 card
    context["supervision"] = dashboard_summary(counted, year)
    return render_template("core/dashboard.html", FirmStatus=FirmStatus, **context)


# The present time in the statements built once (``_statements``): bound on each request.
NOW = sa.bindparam("dashboard_now")


class _Built(NamedTuple):
    counts: sa.Select  # ``_count_statement``'s
    shapes: dict[str, int]
    lists: dict[bool, tuple[sa.Select, tuple[str, ...]]]  # with pending applications or not: ``_list_statement``'s
    overdue: sa.Select
    reviews: sa.Select
    findings: sa.Select
    notices: sa.Select


def _statements(user: Any, today: date, audit: bool) -> _Built:
    """The page's statements for ``user`` on ``today``, built once per process for the same scope, day and audit
    permission (``permissions.kept``): some fifteen scoped statements, a nine-part UNION and the lists' windows
    cost the page several times what running them does. What changes within a day is a bound parameter (``NOW``);
    the overdue findings' working-day cutoffs are read each time (a bureau may correct its calendar today)."""
    cutoffs = late_cutoffs(permissions.visible_bureaus(user), today)
    return permissions.kept(user, "dashboard", lambda: _build(user, today, audit, cutoffs), today, audit, cutoffs)


def _build(user: Any, today: date, audit: bool, cutoffs: Any) -> _Built:
    findings = overdue_findings_query(user, today, cutoffs)
    panels = scoped_panels(user)  # an engagement's or a self-evaluation's, in the user's scope
    # the library's firms and experts from the counts kept per bureau (a bureau user's), else counted
    firms, experts = registry_counts.firms_by_status(user), registry_counts.experts_total(user)
    counts, shapes = _count_statement(dict(
        firms=firms if firms is not None else permissions.scope(
            user, sa.select(Firm.status, sa.func.count()).group_by(Firm.status), Firm),
        experts=experts if experts is not None else permissions.scope(user, sa.select(sa.func.count(Expert.id)), Expert),
        overdue_findings=_any(findings), overdue_reviews=_any(overdue_reviews_query(panels, NOW)),
        contract_notices=contract_notices.overdue_count(user, today),
        result_postings=media.result_overdue_count(user, today),
        **supervision_counts(user, today.year), **credit_counts(user)))
    lists = {"jobs": (permissions.scope(user, sa.select(
        Job.id, Job.title, sa.type_coerce(Job.status, sa.String), sa.cast(sa.null(), sa.DateTime)), Job),
        Job.id.desc(), 5)}
    with_pending = {**lists, "pending": (permissions.scope(user, sa.select(
        Firm.id, Firm.name, Bureau.short_name, Firm.applied_at).join(Bureau, Bureau.id == Firm.bureau_id)
        .where(Firm.status == FirmStatus.PENDING), Firm), Firm.applied_at, 10)}
    if audit:
        events = (permissions.scope(user, sa.select(
            AuditEvent.id, AuditEvent.actor_name, AuditEvent.summary, AuditEvent.occurred_at), AuditEvent),
            AuditEvent.id.desc(), 8)
        lists, with_pending = {**lists, "events": events}, {**with_pending, "events": events}
    return _Built(counts, shapes, {False: _list_statement(lists), True: _list_statement(with_pending)},
                  _overdue_statement(user, today), overdue_reviews_page(panels, NOW),
                  findings.with_only_columns(ResultFinding.id, ResultFinding.engagement_id, ResultFinding.text,
                                             ResultFinding.deadline).limit(10),
                  _owed_notices(user, today))


def _owed_notices(user: Any, today: date) -> sa.Select:
    """The ten oldest overdue contract announcements and the ten oldest result notices overdue on the designated
    media, as one statement (a UNION ALL of the two, each cut to ten in its order): part, id, engagement id,
    reference, name, due date, evalhub's copy of the contract announcement (or None), the procurement's method."""
    contract = contract_notices.overdue_rows(user, today).limit(10).subquery("contract")
    result = media.result_overdue_rows(user, today).limit(10).subquery("result")
    union = sa.union_all(
        sa.select(sa.literal("contract", sa.String).label("part"), contract.c.contract_id.label("id"),
                  contract.c.engagement_id, contract.c.reference, contract.c.name, contract.c.notice_due_on.label("due"),
                  contract.c.published_here, sa.cast(sa.null(), sa.String).label("method")),
        sa.select(sa.literal("result", sa.String), result.c.notice_id, result.c.engagement_id, result.c.reference,
                  result.c.name, result.c.media_due_on, sa.cast(sa.null(), sa.Integer),
                  sa.type_coerce(result.c.method, sa.String))).subquery("owed")
    return sa.select(union).order_by(union.c.part, union.c.due, union.c.id)


def _any(stmt: sa.Select) -> sa.Select:
    """1 if ``stmt`` has a row, else 0 (a count part of ``_count_statement`` that stops at the first row)."""
    first = next(iter(stmt.selected_columns))
    return sa.select(sa.func.count()).select_from(stmt.with_only_columns(first).order_by(None).limit(1).subquery())


def _count_statement(parts: dict[str, sa.Select]) -> tuple[sa.Select, dict[str, int]]:
    """The grouped counts ``parts`` as one statement (a UNION ALL of them, each row tagged with its part), and
    each part's shape for ``_read_counts``. A part selects zero, one or two keys and then a count; it reads back as
    the count, {key: n} or {(key, key2): n}. A first key is read as its stored text (an enum's value), a second as
    an integer."""
    shapes, selects = {}, []
    for name, stmt in parts.items():
        *keys, n = stmt.selected_columns
        shapes[name] = len(keys)
        first = sa.type_coerce(keys[0], sa.String) if keys else sa.cast(sa.null(), sa.String)
        second = keys[1] if len(keys) > 1 else sa.cast(sa.null(), sa.Integer)
        selects.append(stmt.with_only_columns(sa.literal(name, sa.String).label("part"), first.label("key"),
                                              second.label("key2"), n.label("n")))
    return sa.union_all(*selects), shapes


def _read_counts(stmt: sa.Select, shapes: dict[str, int], params: dict) -> dict:
    out: dict = {name: {} if shape else 0 for name, shape in shapes.items()}
    for part, key, key2, n in db.session.execute(stmt, params):
        if shapes[part] == 0:
            out[part] = n
        else:
            out[part][key if shapes[part] == 1 else (key, key2)] = n
    return out


def _list_statement(parts: dict[str, tuple[sa.Select, Any, int]]) -> tuple[sa.Select, tuple[str, ...]]:
    """Several short lists as one statement: each part (a SELECT of four columns — an integer, two texts and a
    time —, its order, its length) is cut to its length in its order in SQL and numbered, and the parts are
    joined by UNION ALL. With the parts' names, for ``_read_lists``."""
    selects = []
    for name, (stmt, order, limit) in parts.items():
        part = stmt.add_columns(sa.func.row_number().over(order_by=order).label("pos")).order_by(order) \
            .limit(limit).subquery(name)
        selects.append(sa.select(sa.literal(name, sa.String).label("part"), *part.c))
    union = sa.union_all(*selects).subquery("lists")
    return sa.select(union).order_by(union.c.part, union.c.pos), tuple(parts)


def _read_lists(stmt: sa.Select, names: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Each list of ``_list_statement``'s as its rows, in order."""
    out: dict[str, list[tuple]] = {name: [] for name in names}
    for row in db.session.execute(stmt):
        out[row[0]].append(tuple(row[1:5]))
    return out


def _overdue_statement(user: Any, today: date) -> sa.Select:
    """How many scoped engagements are overdue, and the ten longest in their state: a count and one page in SQL
    (``workflow.overdue_clause``), whatever the history in scope. The count rides along the page as a window
    over every matching row (evaluated before the LIMIT); the window runs over ids only, and the rows shown (with
    their firms' names) are read for the ten it keeps."""
    ten = permissions.scope(user, sa.select(Engagement.id, sa.func.count().over().label("total"))
                            .where(workflow.overdue_clause(today)), Engagement) \
        .order_by(Engagement.state_changed_at, Engagement.id).limit(10).subquery()
    return sa.select(Engagement, ten.c.total).join(ten, ten.c.id == Engagement.id) \
        .options(joinedload(Engagement.firm).load_only(Firm.name)).order_by(Engagement.state_changed_at, Engagement.id)


def _overdue_engagements(stmt: sa.Select, today: date) -> tuple[int, list]:
    """``_overdue_statement`` read: how many, and the ten as (engagement, reason)."""
    rows = db.session.execute(stmt).all()
    count = rows[0].total if rows else 0
    shown = [row.Engagement for row in rows]
    reasons = workflow.overdue_reasons(shown, today)
    return count, [(e, reasons[e.id]) for e in shown if e.id in reasons]
