"""Pages that list rows read them with what each row shows: more rows, the same statements (issue 18).

``test_query_counts`` grows the data every bureau page scopes; these pages list rows the growth there does not
add (a firm's roster and documents, an expert's invitations, a bureau's results-application list, the reports
the public may read, overdue findings), so each is measured before and after rows are added to it.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core import files
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState
from evalhub.registry import services as registry
from tests import factories
from tests.test_query_counts import counting


def _statements(client, url: str, headers: dict | None = None) -> tuple[int, str]:
    with client.application.app_context(), counting() as seen:
        response = client.get(url, headers=headers or {})
    assert response.status_code == 200, (url, response.status_code)
    return len(seen), str(response.json) if response.is_json else response.get_data(as_text=True)


def _flat(client, urls: list[str], add_rows, shown: list[str], headers: dict | None = None) -> None:
    """Each url's statements are the same before and after ``add_rows()``, and the page shows ``shown``."""
    for url in urls:
        _statements(client, url, headers)  # warm settings and kept statements
    before = {url: _statements(client, url, headers)[0] for url in urls}
    add_rows()
    db.session.commit()
    for url in urls:
        after, body = _statements(client, url, headers)
        assert after == before[url], (url, before[url], after)
        missing = [text for text in shown if text not in body]
        assert not missing, (url, missing)


def test_a_firms_page_reads_its_roster_and_documents_at_once(world, client, login, auth):
    firm = world.firm
    login(world.bz_admin)
    n = iter(range(100))

    def add_rows():
        for _ in range(3):
            i = next(n)
            registry.add_staff(firm, registry.StaffInput(
                name=f"名册人员{i}", id_number=factories.id_number(), role="评价人员", years_experience=5,
                certificates=[("注册会计师", f"CPA-{i:03d}"), ("税务师", f"TAX-{i:03d}")]), world.firm_user)
            registry.attach_firm_document(firm, "其他", f"补充材料{i}.txt", f"补充材料{i}。".encode(), world.firm_user)

    add_rows()
    db.session.commit()
    _flat(client, [f"/firms/{firm.id}", f"/api/v1/firms/{firm.id}"], add_rows, ["补充材料5.txt"],
          auth(world.bz_admin.username))
    assert "名册人员5" in _statements(client, f"/firms/{firm.id}")[1]  # the roster, on the page


def test_an_experts_reviews_read_each_panels_engagement_at_once(world, client, login):
    from evalhub.review.models import InvitationStatus, PanelInvitation

    panels = []
    for _ in range(4):
        e = factories.contracted(world)
        factories.submit_plan(e)
        panels.append((factories.own_panel(e), e))
    db.session.commit()
    expert = world.expert

    def seat(panel) -> None:  # the expert on one more panel (as a declined seat: no review to fill in)
        db.session.add(PanelInvitation(panel_id=panel.id, expert_id=expert.id, draw_id=panel.draw_id,
                                       status=InvitationStatus.DECLINED, decline_reason="时间冲突",
                                       respond_by=datetime(2026, 1, 1), responded_at=datetime(2025, 12, 1)))

    seat(panels[0][0])
    db.session.commit()
    login(world.expert_user)
    _flat(client, ["/reviews"], lambda: [seat(p) for p, _ in panels[1:]], [e.name for _, e in panels])


def test_a_results_list_reads_its_engagements_with_it(world, client, login, auth):
    from evalhub.results import services as results

    factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局")
    results.build_list(world.lt, 2025, world.lt_staff)
    db.session.commit()
    login(world.lt_admin)
    added = []

    def add_rows():
        for _ in range(3):
            added.append(factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局"))
        results.build_list(world.lt, 2025, world.lt_staff)

    urls = ["/results/application?year=2025", "/api/v1/results/application?year=2025"]
    _flat(client, urls, add_rows, [], auth(world.lt_admin.username))
    for url in urls:
        body = _statements(client, url, auth(world.lt_admin.username))[1]
        assert all(e.reference in body for e in added), url


def test_the_public_reports_read_each_reports_engagement_at_once(world, client):
    from evalhub.review.models import Publication

    def publish(n: int) -> None:
        for _ in range(n):
            e = factories.contracted(world)
            e.state = EngagementState.PUBLISHED
            stored = files.store("脱密报告.txt", f"脱密报告{e.id}".encode(), allowed=files.DOCUMENT_KINDS)
            db.session.add(Publication(engagement_id=e.id, classified=False, redacted_file_id=stored.id,
                                       published_at=datetime(2026, 3, 1)))

    publish(1)
    db.session.commit()
    _flat(client, ["/public/reports"], lambda: publish(3), ["巴州统计局"])


def test_overdue_findings_read_their_engagement_unit_and_escalations_at_once(world, client, login):
    from datetime import date

    from evalhub.results.models import ResultFinding

    def overdue(n: int) -> None:
        for _ in range(n):
            e = factories.accepted(world)
            factories.confirmed_findings(world, e, n=2, staff=world.bz_staff)
            db.session.execute(sa.update(ResultFinding).where(ResultFinding.engagement_id == e.id)
                               .values(deadline=date(2025, 1, 31)))  # a deadline long past

    overdue(1)
    db.session.commit()
    login(world.bz_admin)
    _flat(client, ["/results/overdue"], lambda: overdue(2), ["巴州统计局"])
    head = _statements(client, "/results/overdue")[1].split("</title>")[0]
    assert "双公开逾期" not in head and "<table" not in head  # the title is the title, not the second table
    count = db.session.execute(sa.text("SELECT count(*) FROM result_finding")).scalar_one()
    assert count >= 6 and Decimal(count) > 0


def test_the_market_reads_a_page_of_procurements_whatever_is_open(world, client, login, app):
    """A firm's 采购公告 checks each procurement it lists against the eligibility rules: it lists a page of
    them, so a region with many open procurements costs what a page does; a procurement of a bureau whose
    library does not hold the firm is not listed."""
    from datetime import timedelta

    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod as M
    from tests.test_procurement_services import _consultation

    firm = world.firm  # 巴州's library: 巴州's procurements and those of its counties
    app.config["PAGE_SIZE"] = 5
    try:
        opened = [_consultation(world) for _ in range(6)]
        elsewhere = factories.witnessed(P.open_procurement(  # 克州's: its library does not hold 巴州's firms
            factories.engagement(world, bureau_key="kz", unit="克州农业农村局"), P.ProcurementInput(
                method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
                bid_deadline=factories.bid_deadline(world.kz, 10)), world.kz_staff))
        db.session.commit()
        login(world.firm_user)
        before, page = _statements(client, "/market")
        assert page.count('data-testid="opportunity-') == 5 and f"opportunity-{elsewhere.id}" not in page
        opened += [_consultation(world, method=M.OPEN_TENDER) for _ in range(4)]
        db.session.commit()
        after, page = _statements(client, "/market?page=2")
        assert after == before and page.count('data-testid="opportunity-') == 5
        assert all(f"opportunity-{p.id}" in page for p in opened[-4:])  # the latest deadlines, on page 2
    finally:
        app.config["PAGE_SIZE"] = 20


def test_lists_that_name_each_rows_bureau_or_organisation_read_them_with_the_page(world, client, login, auth):
    """The system administrator holds no bureau tree, so a list that names each row's bureau, firm or unit
    must read them with its rows: inspections (API), the account directory, the public result notices."""
    from evalhub.core.enums import Role
    from evalhub.supervision.models import Inspection, InspectionStatus, Trigger

    bureaus = [world.bz, world.kz, world.lt, world.krl, world.ats, world.region]
    n = iter(range(100))

    def add_rows():
        for bureau in bureaus[:3] if next(n) == 0 else bureaus[3:]:
            firm = factories.firm(bureau, name=f"{bureau.short_name}名录评价有限公司{next(n)}")
            db.session.add(Inspection(bureau_id=bureau.id, firm_id=firm.id, trigger=Trigger.RANDOM,
                                      trigger_detail="抽查", status=InspectionStatus.OPEN, checklist={}))
            factories.user(f"directory{next(n)}", Role.FIRM_USER, firm_id=firm.id)

    add_rows()
    db.session.commit()
    login(world.sysadmin)
    _flat(client, ["/users", "/api/v1/inspections"], add_rows, ["阿图什市", "阿图什市名录评价有限公司"],
          auth(world.sysadmin.username))


def test_public_result_notices_read_each_notices_firm_and_buyer_at_once(world, client):
    from evalhub.procurement.models import ResultNotice

    n = iter(range(100))

    def award(count: int) -> None:  # each to a firm of its own, by 巴州 or 轮台县 in turn
        for _ in range(count):
            i = next(n)
            firm, _, _ = factories.bidder(world, f"公告评价咨询有限公司{i}")
            e = factories.contracted(world, firm=firm, **({"bureau_key": "lt", "unit": "轮台县医疗保障局"} if i % 2 else {}))
            notice = db.session.execute(sa.select(ResultNotice).where(
                ResultNotice.procurement_id.in_([p.id for p in e.procurements]))).scalars().first()
            assert notice is not None

    award(1)
    db.session.commit()
    _flat(client, ["/public/notices"], lambda: award(3), ["公告评价咨询有限公司3", "轮台县财政局"])


def test_a_campaigns_page_reads_its_inspections_rows_at_once(world, client, login):
    from evalhub.supervision.models import Inspection, InspectionStatus, Trigger
    from tests.test_supervision_views import _campaign

    campaign, _ = _campaign(world, 1)
    n = iter(range(100))

    def add_rows():  # more engagements on the campaign's list, each of a firm of its own
        for _ in range(3):
            firm, _, _ = factories.bidder(world, f"抽查评价咨询有限公司{next(n)}")
            e = factories.contracted(world, firm=firm)
            db.session.add(Inspection(bureau_id=world.bz.id, firm_id=firm.id, engagement_id=e.id, campaign_id=campaign.id,
                                      trigger=Trigger.RANDOM, trigger_detail="抽查", status=InspectionStatus.OPEN,
                                      checklist={}))

    login(world.bz_staff)
    _flat(client, [f"/campaigns/{campaign.id}"], add_rows, ["抽查评价咨询有限公司2"])


def test_the_procure_page_assesses_the_whole_library_at_once(world, client, login):
    """The procure page sorts every firm of the usable libraries into eligible and excluded (status, fields,
    credit grade, watch list, recusal relations, the yearly cap, rotation): each rule reads the library at
    once, so a library of hundreds of firms costs what a library of two does."""
    from datetime import date

    from evalhub.credit.models import CreditRating, RatingStatus
    from evalhub.credit.services import CreditGrade
    from evalhub.registry.models import FirmRelation, RelationKind

    e = factories.engagement(world)
    n = iter(range(100))

    def add_rows():
        for grade in (CreditGrade.A, CreditGrade.C, CreditGrade.D, None):
            firm = factories.firm(world.bz, name=f"库内评价咨询有限公司{next(n)}")
            if grade is not None:
                db.session.add(CreditRating(bureau_id=world.lt.id, firm_id=firm.id, year=2024,
                                            status=RatingStatus.FINAL, rated=True, grade=grade,
                                            watch_list=grade == CreditGrade.D, watch_reason="检查发现故意违规"))
            db.session.add(FirmRelation(firm_id=firm.id, budget_unit_id=world.units["巴州民政局"].id,
                                        kind=RelationKind.TAX_AGENT, start_date=date(2024, 1, 1)))

    add_rows()
    db.session.commit()
    login(world.bz_admin)
    _flat(client, [f"/engagements/{e.id}/procure"], add_rows, ["库内评价咨询有限公司4", "库内评价咨询有限公司6"])
