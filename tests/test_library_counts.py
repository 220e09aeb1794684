"""The dashboard's firm, expert and inspection cards read counts kept on write (issue 18): ``firm_count``,
``expert_count`` and ``inspection_count`` always equal the rows of each bureau and status — after ORM writes, a
status change, a move between bureaus, a rollback, a bulk statement through the session and the migration's
fill — and for every user the cards say what counting the user's scoped rows says (a bureau's library: its own
bureaus whole, the bureaus above only for what is still in the library)."""
from __future__ import annotations

import sqlalchemy as sa

from evalhub.core import permissions
from evalhub.core.listing import Listing, text_filter
from evalhub.extensions import db
from evalhub.registry import counts
from evalhub.registry.models import Expert, ExpertCount, ExpertStatus, Firm, FirmCount, FirmStatus
from evalhub.supervision import services as supervision
from evalhub.supervision.models import Inspection, InspectionCount, InspectionStatus, Trigger
from tests import factories, migration_files

MIGRATION = "e2a7c4f9b1d6_firm_expert_inspection_counts.py"
KEPT = [(Firm, FirmCount), (Expert, ExpertCount), (Inspection, InspectionCount)]


def _live(model: type) -> dict[tuple, int]:
    rows = db.session.execute(sa.select(model.bureau_id, model.status, sa.func.count())
                              .group_by(model.bureau_id, model.status))
    return {(b, getattr(s, "value", s)): n for b, s, n in rows}


def _kept(summary: type) -> dict[tuple, int]:
    rows = db.session.execute(sa.select(summary.bureau_id, summary.status, summary.n))
    return {(b, getattr(s, "value", s)): n for b, s, n in rows}


def _all_equal() -> None:
    db.session.commit()
    for model, summary in KEPT:
        kept = _kept(summary)
        assert kept == _live(model), model.__name__
        assert all(n > 0 for n in kept.values()), model.__name__  # no row for a count of 0


def _inspection(world, bureau, status=InspectionStatus.OPEN) -> Inspection:
    row = Inspection(bureau_id=bureau.id, firm_id=world.firm.id, trigger=Trigger.RANDOM, trigger_detail="抽查",
                     status=status, checklist={})
    db.session.add(row)
    db.session.flush()
    return row


def _spread(world) -> dict:
    made = {"firms": [factories.firm(world.kz, FirmStatus.ADMITTED, name="克州甲评价有限公司"),
                      factories.firm(world.region, FirmStatus.PENDING, name="自治区乙评价有限公司"),
                      factories.firm(world.region, FirmStatus.REMOVED, name="自治区丙评价有限公司"),
                      factories.firm(world.lt, FirmStatus.ADMITTED, name="轮台丁评价有限公司")],
            "experts": [factories.expert(world.kz, name="克州专家甲"), factories.expert(world.region, name="自治区专家乙"),
                        factories.expert(world.lt, name="轮台专家丙")],
            "inspections": [_inspection(world, world.bz), _inspection(world, world.lt, InspectionStatus.CLOSED),
                            _inspection(world, world.region)]}
    made["experts"][1].status = ExpertStatus.REMOVED  # out of the region's pool: not usable below
    return made


def test_the_counts_follow_writes_moves_status_changes_and_rollbacks(world):
    made = _spread(world)
    _all_equal()
    made["firms"][1].status = FirmStatus.ADMITTED  # an application admitted: a status moves its count
    made["experts"][0].status = ExpertStatus.SUSPENDED
    made["inspections"][0].status = InspectionStatus.CLOSED
    _all_equal()
    made["firms"][3].bureau_id = world.krl.id  # moved between bureaus
    made["inspections"][2].bureau_id = world.kz.id
    _all_equal()
    made["firms"][0].name = "克州甲评价咨询有限公司"  # a change that moves no count recounts nothing
    db.session.flush()
    assert not counts.FIRMS.pending(db.session)
    _all_equal()
    factories.expert(world.bz, name="回滚的专家")  # added, then rolled back: as it was, nothing waiting
    _inspection(world, world.bz)
    db.session.flush()
    assert counts.EXPERTS.pending(db.session) == {(world.bz.id,)}
    assert supervision.INSPECTIONS.pending(db.session) == {(world.bz.id,)}
    db.session.rollback()
    assert not counts.EXPERTS.pending(db.session) and not supervision.INSPECTIONS.pending(db.session)
    _all_equal()
    # bulk statements through the session (a bulk load, an UPDATE of every row)
    db.session.execute(sa.update(Inspection).values(status=InspectionStatus.CLOSED))
    db.session.execute(sa.update(Firm).where(Firm.bureau_id == world.region.id).values(status=FirmStatus.SUSPENDED))
    _all_equal()
    db.session.delete(made["inspections"][1])
    _all_equal()


def _users(w):
    return [w.sysadmin, w.region_admin, w.bz_admin, w.bz_staff, w.lt_staff, w.krl_admin, w.kz_admin, w.ats_staff]


def _as_dict(stmt) -> dict:
    return {getattr(k, "value", k): n for k, n in db.session.execute(stmt) if n}


def test_the_cards_say_what_counting_the_scoped_rows_says_for_every_user(world):
    _spread(world)
    db.session.commit()
    for user in _users(world):
        firms, experts = counts.firms_by_status(user), counts.experts_total(user)
        inspections = supervision.INSPECTIONS.scope_counts(user, Inspection)
        bureau_user = permissions.is_bureau_user(user)
        assert (firms is not None, experts is not None, inspections is not None) == (bureau_user, bureau_user, True), \
            user.username
        if not bureau_user:
            continue
        counted_firms = permissions.scope(user, sa.select(Firm.status, sa.func.count()).group_by(Firm.status), Firm)
        assert _as_dict(firms) == _as_dict(counted_firms), user.username
        assert db.session.execute(experts).scalar_one() == \
            db.session.execute(permissions.scope(user, sa.select(sa.func.count(Expert.id)), Expert)).scalar_one(), user.username
        counted = permissions.scope(user, sa.select(Inspection.status, sa.func.count()).group_by(Inspection.status),
                                    Inspection)
        assert _as_dict(inspections) == _as_dict(counted), user.username
    # the library rule is the rows': 克州 sees the region's firms still in the library, not its application
    kz = _as_dict(counts.firms_by_status(world.kz_admin))
    assert kz.get(FirmStatus.PENDING.value, 0) == 0 and kz.get(FirmStatus.REMOVED.value, 0) >= 1


def test_the_dashboard_shows_the_kept_numbers(world, login):
    """The page's cards (its template's context) hold what counting the user's rows says."""
    from flask import template_rendered

    _spread(world)
    db.session.commit()
    for user in (world.region_admin, world.bz_admin, world.kz_admin, world.sysadmin):
        seen = []
        record = lambda sender, template, context, **extra: seen.append(context)  # noqa: E731
        client = login(user)
        template_rendered.connect(record, client.application)
        try:
            assert client.get("/").status_code == 200, user.username
        finally:
            template_rendered.disconnect(record, client.application)
        context = next(c for c in seen if "firm_counts" in c)
        with client.application.app_context():
            counted = permissions.scope(user, sa.select(Firm.status, sa.func.count()).group_by(Firm.status), Firm)
            assert {s.value: n for s, n in context["firm_counts"].items()} == _as_dict(counted), user.username
            assert context["expert_count"] == db.session.execute(
                permissions.scope(user, sa.select(sa.func.count(Expert.id)), Expert)).scalar_one(), user.username
            closed = db.session.execute(permissions.scope(user, sa.select(sa.func.count(Inspection.id)).where(
                Inspection.status == InspectionStatus.CLOSED), Inspection)).scalar_one()
            assert context["supervision"]["closed"] == closed, user.username


def test_the_firm_and_expert_lists_total_and_libraries_say_what_counting_the_rows_says(world, login):
    """The two lists' pager totals (unfiltered, or by status) and the firm list's library choices come from the
    kept counts for a bureau's users and from the rows for anyone else: the same numbers either way."""
    from flask import template_rendered

    _spread(world)
    db.session.commit()
    cases = [(Firm, "/firms", ""), (Firm, "/firms", f"?status={FirmStatus.ADMITTED.value}"),
             (Expert, "/experts", ""), (Expert, "/experts", f"?status={ExpertStatus.REMOVED.value}")]
    for user in _users(world):
        client = login(user)
        for model, path, query in cases:
            seen = []
            record = lambda sender, template, context, **extra: seen.append(context)  # noqa: E731
            template_rendered.connect(record, client.application)
            try:
                assert client.get(path + query).status_code == 200, (user.username, path)
            finally:
                template_rendered.disconnect(record, client.application)
            context = next(c for c in seen if "page" in c)
            with client.application.app_context():
                stmt = permissions.scope(user, sa.select(sa.func.count(model.id)), model)
                if query:
                    stmt = stmt.where(model.status == query.split("=")[1])
                assert context["page"].total == db.session.execute(stmt).scalar_one(), (user.username, path + query)
                if model is Firm and not query:
                    libraries = set(db.session.execute(
                        permissions.scope(user, sa.select(Firm.bureau_id).distinct(), Firm)).scalars())
                    assert {b.id for b in context["library_bureaus"]} == libraries, user.username
    # a firm added and not yet committed, in the same transaction, is in the total as in a count of the rows
    factories.firm(world.bz, FirmStatus.ADMITTED, name="巴州新增评价有限公司")
    listing = Listing(permissions.scope(world.bz_admin, sa.select(Firm), Firm), args={})
    total = counts.list_total(world.bz_admin, listing, Firm)
    assert db.session.execute(sa.select(total)).scalar_one() == db.session.execute(
        permissions.scope(world.bz_admin, sa.select(sa.func.count(Firm.id)), Firm)).scalar_one()
    # a filter the counts do not keep is counted from the rows
    assert counts.list_total(world.bz_admin, Listing(sa.select(Firm), text_filter("q", Firm.name), args={"q": "巴州"}), Firm) \
        is None


def test_the_migration_fills_the_same(world):
    _spread(world)
    _all_equal()
    fills = migration_files.load(MIGRATION).FILL_SQL
    for model, summary in KEPT:
        kept = _kept(summary)
        db.session.execute(sa.delete(summary))
        db.session.execute(sa.text(fills[summary.__tablename__]))
        assert _kept(summary) == kept == _live(model), model.__name__
    db.session.commit()
