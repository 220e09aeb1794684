"""Scale audit of the pages added or changed today: a page's statements do not grow with the rows it lists.

Each test requests a page (after one warm request), adds rows of the kind the page lists, and requests it again:
the statement count must be the same (the pattern of ``tests/test_query_counts.py`` and
``tests/test_row_statements.py``). The counts in the docstrings were measured with this suite (the same on SQLite and PostgreSQL).
"""
from __future__ import annotations

from datetime import date, timedelta

from evalhub.core.enums import Role
from evalhub.core.models import BudgetUnit
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories
from tests.test_row_statements import _statements


def _warm_count(client, url: str, headers: dict | None = None) -> tuple[int, str]:
    _statements(client, url, headers)  # warm settings and kept statements
    return _statements(client, url, headers)


def test_the_procurement_page_reads_its_challenges_and_their_complaint_dates_at_once(world, client, login, auth):
    """Page: the procurement page (/procurements/<id>, 质疑与答复 card) and its API list
    (/api/v1/procurements/<id>/challenges).

    Rule: a page's statements do not grow with the rows it lists.

    Defect: each challenge listed costs statements of its own. The challenge line added today states the date
    by which the challenger may complain (``procurement.services.complaint_right`` → ``complaint_until`` →
    ``core.calendar.add_working_days`` → ``_calendar``: one ``calendar_day`` SELECT per answered challenge, on
    the page and in the API's ``complaint_until``), and ``views._challenge_context`` reads the challenges
    without their evidence (``c.evidence`` and each ``ev.file``: a lazy load each). The API's
    ``procurement.api.challenge_json`` does the same per challenge (``c.firm``, ``c.evidence``, ``e.file`` and
    ``complaint_until``, for every challenge, answered or not). Measured: one answered challenge 30 statements,
    two 33 (page); the API list 7 → 11."""
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    first = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(first, world.bz_staff, "dismissed", "经核查，技术分计算无误，质疑不成立。")
    db.session.commit()
    login(world.bz_admin)
    headers = auth(world.bz_admin.username)
    urls = [f"/procurements/{p.id}", f"/api/v1/procurements/{p.id}/challenges"]
    before = {url: _warm_count(client, url, headers)[0] for url in urls}
    second = P.file_challenge(p, bidders["丙"][1], "商务分计算有误，请求重新评审。",
                              [("补充说明.txt", "商务分计算过程说明及附件。".encode())])
    P.answer_challenge(second, world.bz_staff, "dismissed", "经核查，商务分计算无误，质疑不成立。")
    db.session.commit()
    after = {}
    for url in urls:
        after[url], body = _statements(client, url, headers)
        assert "商务分计算有误" in body and "技术分计算有误" in body  # both challenges are listed
    grown = {url: (before[url], after[url]) for url in urls if after[url] != before[url]}
    assert not grown, f"statements grew with the challenges listed (before, after): {grown}"


def test_the_procurement_page_reads_its_bids_at_once(world, client, login):
    """Page: the procurement page (/procurements/<id>, 投标 card, after the bids are opened).

    Rule: a page's statements do not grow with the rows it lists.

    Defect: each bid listed is read piece by piece: its firm, its team (``bid_team_member``), the team's roster
    rows (``firm_staff``) and its technical file (``stored_file``) — four lazy loads per bid
    (``procurement.views._render_procurement`` takes them from ``_scoped_bids`` without loader options; the template reads
    ``b.firm``, ``b.team``, ``m.staff``, ``b.technical_file``). Measured: two bids 22 statements, four 30."""
    from evalhub.procurement import services as P
    from tests.test_procurement_law import _open

    def opened(names: list[str]):
        p = _open(world)
        for n, name in enumerate(names):
            _, user, staff = factories.bidder(world, name)
            factories.bid(p, user, staff, str(40 + n))
        p.bid_deadline = utcnow() - timedelta(seconds=1)
        P.open_bids(p, world.bz_staff)
        db.session.commit()
        return p

    small = opened(["甲投标评价有限公司", "乙投标评价有限公司"])
    large = opened(["丙投标评价有限公司", "丁投标评价有限公司", "戊投标评价有限公司", "己投标评价有限公司"])
    login(world.bz_admin)
    two, _ = _warm_count(client, f"/procurements/{small.id}")
    four, body = _warm_count(client, f"/procurements/{large.id}")
    assert all(name in body for name in ("丙投标", "丁投标", "戊投标", "己投标"))
    assert four == two, f"two bids: {two} statements, four bids: {four}"


def test_the_public_inspections_page_reads_each_engagements_bureau_with_the_page(world, client):
    """Page: 抽查公示 (/public/inspections), which today lists each finding's measures.

    Rule: a page's statements do not grow with the rows it lists.

    Defect: each sampled engagement's row names its buyer (``e.bureau.name`` in
    templates/supervision/public_inspections.html), and ``supervision.views.public_inspections`` loads the
    inspections' engagements without their bureau: one ``SELECT … FROM bureau WHERE bureau.id = ?`` for each
    bureau not already in the session — on a public page no bureau tree is held, so each county whose
    engagement was sampled costs one. Measured: a campaign sampling engagements of 巴州 and 轮台县 9 statements;
    with engagements of 库尔勒市 and 和静县 added, 11. At province scale (bench/province.py, scale 1, its
    inspections grouped into 124 published campaigns by prefecture and year) the first page is 39 statements,
    32 of them one bureau each."""
    from evalhub.core.enums import BureauLevel
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Finding, Inspection, InspectionStatus, Measure, Severity, Trigger
    from tests.test_supervision_views import _campaign

    campaign, _ = _campaign(world, 1)
    V.publish_campaign_list(campaign, world.bz_staff)
    for inspection in campaign.inspections:
        inspection.status, inspection.closed_at, inspection.conclusion = InspectionStatus.CLOSED, utcnow(), "符合要求"
    db.session.commit()
    V.publish_campaign_results(campaign, world.bz_staff)
    hejing = factories.bureau("652827", "和静县财政局", "和静县", BureauLevel.COUNTY, world.bz)
    world.hejing, world.hejing_admin = hejing, factories.user("hejing.admin", Role.BUREAU_ADMIN, bureau_id=hejing.id)
    for bureau, name in [(world.krl, "库尔勒市教育局"), (hejing, "和静县农业农村局")]:
        world.units[name] = BudgetUnit(bureau_id=bureau.id, name=name)
        db.session.add(world.units[name])
    db.session.commit()
    n = iter(range(100))

    def sample(key: str, unit: str) -> None:  # one more engagement on the campaign's list, of a county of 巴州
        i = next(n)
        firm = factories.firm(world.bz, name=f"抽查公示评价有限公司{i}")
        e = factories.engagement(world, bureau_key=key, unit=unit)
        inspection = Inspection(bureau_id=world.bz.id, firm_id=firm.id, engagement_id=e.id, campaign_id=campaign.id,
                                trigger=Trigger.RANDOM, trigger_detail="不定向抽查", status=InspectionStatus.CLOSED,
                                checklist={}, conclusion="存在一般问题", closed_at=utcnow())
        db.session.add(inspection)
        db.session.flush()
        db.session.add(Finding(inspection_id=inspection.id, firm_id=firm.id, severity=Severity.GENERAL,
                               description=f"问题分析空泛{i}", measures=[Measure.PUBLIC_CRITICISM.value]))

    sample("lt", "轮台县医疗保障局")
    db.session.commit()
    before, _ = _warm_count(client, "/public/inspections")
    sample("krl", "库尔勒市教育局")
    sample("hejing", "和静县农业农村局")
    db.session.commit()
    after, body = _statements(client, "/public/inspections")
    assert all(b.name in body for b in (world.lt, world.krl, hejing))  # each row names its buyer
    assert after == before, f"statements grew with the bureaus of the engagements listed: {before} → {after}"


def test_a_firms_relations_are_offered_to_the_firm_without_a_read_per_row(world, client, login):
    """Page: the firm page (/firms/<id>, 回避关系 card) as the firm's own user.

    Rule: a page's statements do not grow with the rows it lists.

    Defect: today's "firm.relation.end" rule is asked for each open relation the card lists
    (``can('firm.relation.end', r)`` in templates/registry/firm_detail.html) and, for the firm's user, reads
    the relation's author by itself (``registry.permissions._relation_end``: ``db.session.get(User,
    relation.created_by_id)``) — one ``user_account`` SELECT per relation by a different person. Measured: one
    relation 13 statements, four relations (each recorded by a different officer) 16. The bureau's users read
    the same card in 12 statements whatever its length."""
    from evalhub.registry.models import FirmRelation, RelationKind

    n = iter(range(100))

    def add(count: int) -> None:
        for _ in range(count):
            i = next(n)
            author = factories.user(f"relation.author{i}", Role.BUREAU_STAFF, bureau_id=world.bz.id)
            db.session.add(FirmRelation(firm_id=world.firm.id, budget_unit_id=world.units["巴州民政局"].id,
                                        kind=RelationKind.TAX_AGENT, start_date=date(2024, 1, 1) + timedelta(days=i),
                                        created_by_id=author.id, note=f"财政局登记关系{i}"))

    add(1)
    db.session.commit()
    login(world.firm_user)
    url = f"/firms/{world.firm.id}"
    before, _ = _warm_count(client, url)
    add(3)
    db.session.commit()
    after, body = _statements(client, url)
    assert all(f"财政局登记关系{i}" in body for i in range(4))
    assert after == before, f"statements grew with the relations listed: {before} → {after}"


def test_the_public_credit_page_states_each_bureaus_grade_lines_without_a_read_per_bureau(world, client):
    """Page: 信用评价公示 (/public/ratings), which today states the grade lines of each bureau whose ratings it lists
    (``credit.views.public_ratings`` → ``credit.services.grade_lines`` per bureau listed).

    Rule: a page's statements do not grow with the rows it lists.

    Defect: ``grade_lines`` → ``core.settings.get_setting`` → ``bureau_tree.chain_ids`` walks each listed bureau
    up to the root over the ORM's ``Bureau.parent`` (``Bureau.ancestors``): on this public page no tree is held,
    so every ancestor not already in the session is a ``SELECT … FROM bureau WHERE bureau.id = ?`` of its own — a
    page listing the ratings of counties of several prefectures reads each prefecture by itself. Measured:
    ratings of 轮台县 only 8 statements; with ratings of 阿图什市 (克州's county) and of a new county of a new
    prefecture added, 10."""
    from decimal import Decimal

    from evalhub.core.enums import BureauLevel
    from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus

    n = iter(range(100))

    def rate(bureau) -> None:
        firm = factories.firm(world.bz, name=f"信用公示评价有限公司{next(n)}")
        db.session.add(CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=2024, status=RatingStatus.FINAL,
                                    rated=True, grade=CreditGrade.A, total=Decimal("92.00")))

    rate(world.lt)
    rate(world.lt)
    db.session.commit()
    before, _ = _warm_count(client, "/public/ratings")
    prefecture = factories.bureau("654000", "伊犁哈萨克自治州财政局", "伊犁州", BureauLevel.PREFECTURE, world.region)
    county = factories.bureau("654002", "伊宁市财政局", "伊宁市", BureauLevel.COUNTY, prefecture)
    rate(world.ats)
    rate(county)
    db.session.commit()
    after, body = _statements(client, "/public/ratings")
    assert all(f"{name} 2024 年度：A 级" in body for name in (world.lt.name, world.ats.name, county.name))  # each one's lines
    assert after == before, f"statements grew with the bureaus listed: {before} → {after}"
