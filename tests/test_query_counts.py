"""Flat cost: the SQL statements a page runs do not grow with the data in scope (issue 18).

Each page is requested at two data sizes (one round of firms, experts and engagements in every stage, then
three) as a prefecture admin and as the region's admin; a page whose statement count grows loads rows one
by one (a lazy load per row, a rule computed per row in Python). The province-scale timings are measured by
``bench/web.py``; this test keeps the statement counts flat on every run of the suite.
"""
from __future__ import annotations

import pytest

from evalhub.extensions import db
from evalhub.core.enums import Role
from tests import factories
from tests.statements import recorded as counting

# Pages a bureau user opens every day: lists, dashboards, queues (with their common filters) and the
# detail pages of one fixed row, whose cost must not depend on how many other rows exist.
PAGES = [
    "/", "/engagements", "/engagements?overdue=1", "/engagements?state=contracted", "/firms", "/experts",
    "/plans", "/reviews", "/reviews?overdue=1", "/inbox", "/credit", "/inspections", "/complaints", "/campaigns", "/draws", "/audit",
    "/screening/queue", "/users", "/bureaus", "/frameworks",
    "/engagements/{engagement}", "/firms/{firm}", "/experts/{expert}", "/plans/{plan}", "/results/application",
    "/frameworks/new", "/api/v1/plans/{plan}", "/api/v1/plans/{plan}/ocds",
    "/api/v1/engagements", "/api/v1/firms", "/api/v1/experts", "/api/v1/ratings",
    "/api/v1/inspections", "/api/v1/plans", "/api/v1/screening/queue?year=2025", "/screening/queue?year=2025",
]


def _grow(w, rounds: int) -> None:
    """One round: a new admitted firm with a user and an expert; an engagement whose work plan is overdue,
    one in fieldwork and one accepted through both reviews (panels, reviews, screening rows)."""
    from evalhub.registry.models import FirmStatus

    for _ in range(rounds):
        n = next(factories._seq)
        firm = factories.firm(w.bz, FirmStatus.ADMITTED, name=f"巴州第{n}评价咨询有限公司")
        firm_user = factories.user(f"scale{n}", Role.FIRM_USER, firm_id=firm.id)
        factories.expert(w.bz, name=f"规模专家{n}")
        factories.contracted(w, firm=firm)
        factories.in_fieldwork(w, firm=firm, firm_user=firm_user)
        factories.accepted(w, firm=firm)
        db.session.commit()


def _counts(client, username, api_headers, fixed) -> dict[str, int]:
    out = {}
    for page in PAGES:
        url = page.format(**fixed)
        headers = api_headers if url.startswith("/api/") else {}
        # Each request in an app context of its own: an empty session and ``g``, as on a server (the test's
        # context would otherwise lend the page the rows the test already loaded).
        with client.application.app_context(), counting() as seen:
            response = client.get(url, headers=headers)
        assert response.status_code == 200, (username, url, response.status_code)
        out[url] = len(seen)
    return out


@pytest.mark.parametrize("who", ["bz_admin", "region_admin"])
def test_statements_per_page_do_not_grow_with_the_data(world, client, login, auth, who):
    user = getattr(world, who)
    fixed_engagement = factories.accepted(world)
    db.session.commit()
    # the plan grows by an item with each engagement ``_grow`` adds (all of 巴州's 2025 plan)
    fixed = {"engagement": fixed_engagement.id, "firm": world.firm.id, "expert": world.expert.id,
             "plan": fixed_engagement.plan_item.plan_id}
    _grow(world, 1)
    login(user)
    username = user.username
    headers = auth(username)
    _counts(client, username, headers, fixed)  # warm caches (settings, the screening index) once
    small = _counts(client, username, headers, fixed)
    _grow(world, 2)
    large = _counts(client, username, headers, fixed)
    grown = {url: (small[url], large[url]) for url in small if large[url] > small[url]}
    assert not grown, "statements per request grew with the data (url: small → large): " + ", ".join(
        f"{url}: {a} → {b}" for url, (a, b) in sorted(grown.items()))


@pytest.mark.parametrize("who", ["bz_admin", "lt_admin", "region_admin"])
def test_a_signed_in_page_reads_the_account_and_its_tree_once(world, client, login, who):
    """The common path of every signed-in page: the account (re-read, so a deactivation counts at once), its
    bureau's tree and the tree's own settings in one statement; the account gate reads no other setting."""
    from evalhub.core.settings import set_setting

    user = getattr(world, who)
    set_setting(world.bz, "security.require_totp_admins", "off", world.bz_admin)  # a value held, inherited below
    db.session.commit()
    login(user)
    with client.application.app_context(), counting() as seen:
        assert client.get("/firms").status_code == 200
    flat = [" ".join(s.split()) for s in seen]
    loaders = [s for s in flat if "FROM user_account LEFT OUTER JOIN bureau AS" in s]
    assert len(loaders) == 1 and "JOIN bureau AS" in loaders[0] and "bureau_setting" in loaders[0], loaders
    assert not any("FROM bureau_setting" in s for s in flat if s not in loaders), flat
    assert not any(s.startswith("SELECT bureau.id") and "JOIN bureau AS" in s for s in flat if s not in loaders), flat  # tree once


def test_the_engagement_page_reads_its_timeline_with_who_acted_in_its_own_statement(world, client, login):
    """The timeline names who acted on each step: read with the engagement (one statement), not a lookup per
    person — steps by more people leave the page's statement count as it was."""
    from evalhub.procurement.models import EngagementTransition

    engagement = factories.accepted(world)
    db.session.commit()
    login(world.bz_admin)
    url = f"/engagements/{engagement.id}"

    def statements() -> int:
        with client.application.app_context(), counting() as seen:
            assert client.get(url).status_code == 200
        return len(seen)

    statements()  # warm the settings and kept statements
    before = statements()
    for n in range(3):  # three more steps, each by someone who has not acted on it yet
        actor = factories.user(f"timeline{n}", Role.BUREAU_STAFF, bureau_id=world.bz.id)
        db.session.add(EngagementTransition(engagement_id=engagement.id, action="note", from_state=engagement.state,
                                            to_state=engagement.state, actor_id=actor.id, note=f"记录{n}"))
    db.session.commit()
    assert statements() == before
    with client.application.app_context():
        page = client.get(url).get_data(as_text=True)
    assert all(f"timeline{n}" in page for n in range(3))  # each step shows its own person


def test_an_api_call_is_the_tokens_account_only_whatever_cookie_comes_with_it(world, client, login, auth):
    """A browser signed in as one account may call the API with another's token: the call is the token's, and
    the cookie's account is not even read (no second account-and-tree statement, no applicant gate)."""
    headers = auth(world.lt_admin.username)  # 轮台's admin: sees 轮台's engagements only

    def call() -> tuple[list[str], list[str]]:
        with client.application.app_context(), counting() as seen:
            response = client.get("/api/v1/engagements", headers=headers)
        assert response.status_code == 200
        return [e["bureau"]["id"] for e in response.json["items"]], seen

    factories.contracted(world)  # one of 巴州's: not 轮台's
    db.session.commit()
    call()  # warm the kept statements
    bureaus, without_cookie = call()
    login(world.region_admin)
    with_cookie_bureaus, with_cookie = call()
    assert with_cookie_bureaus == bureaus and set(bureaus) <= {world.lt.id}
    assert len(with_cookie) == len(without_cookie)
    assert sum("FROM user_account LEFT OUTER JOIN bureau AS" in " ".join(s.split()) for s in with_cookie) == 0


@pytest.mark.parametrize("who", ["bz_admin", "region_admin"])
def test_the_results_application_page_reads_the_bureaus_below_at_once(world, client, login, who):
    """The results-application page tables every bureau directly below (a prefecture's counties, the region's
    prefectures) with its filing and figures: read for all of them together, so a prefecture with ten counties
    costs what one with two does."""
    from evalhub.core.enums import BureauLevel

    user = getattr(world, who)
    parent = world.bz if who == "bz_admin" else world.region
    login(user)

    def statements() -> tuple[int, str]:
        with client.application.app_context(), counting() as seen:
            page = client.get("/results/application?year=2025")
        assert page.status_code == 200
        return len(seen), page.get_data(as_text=True)

    statements()  # warm the settings and kept statements
    before, _ = statements()
    for n in range(3):
        code = f"{parent.code[:4]}9{n}" if who == "bz_admin" else f"65{90 + n}00"
        level = BureauLevel.COUNTY if who == "bz_admin" else BureauLevel.PREFECTURE
        factories.bureau(code, f"新设第{n}财政局", f"新设{n}", level, parent)
    db.session.commit()
    after, page = statements()
    assert after == before
    assert all(f"新设{n}" in page for n in range(3))  # each new bureau has its row


def test_a_panels_page_and_outcomes_read_its_members_at_once(world, client, login, auth):
    """A review panel's page and the engagement's outcomes (API) list every member with their review: a panel
    of five costs what a panel of three does."""
    pages = []
    for size in (3, 5):
        e = factories.contracted(world)
        factories.submit_plan(e)
        panel = factories.own_panel(e, n=size)
        factories.review_panel(panel)
        db.session.commit()
        pages.append((panel.id, e.id))
    login(world.bz_admin)
    headers = auth(world.bz_admin.username)

    def statements(url: str, expected: int) -> int:
        with client.application.app_context(), counting() as seen:
            response = client.get(url, headers=headers if url.startswith("/api/") else {})
        assert response.status_code == 200
        body = str(response.json) if response.is_json else response.get_data(as_text=True)
        assert body.count("方案评审专家") >= expected  # every member is shown
        return len(seen)

    for template in ("/reviews/panels/{panel}", "/api/v1/engagements/{engagement}/outcomes"):
        statements(template.format(panel=pages[0][0], engagement=pages[0][1]), 3)  # warm
        small, large = (statements(template.format(panel=p, engagement=e), n) for (p, e), n in zip(pages, (3, 5)))
        assert large == small, (template, small, large)


def test_the_market_checks_a_page_of_procurements_at_once(world, client, login):
    """A firm's market page lists the open procurements with why the firm may not bid on each: every rule is
    applied to the whole page at once (``eligibility.exclusion_matrix``), so five procurements cost what one
    does — each of a different budget unit, so no case's reads stand for another's."""
    from evalhub.core.models import BudgetUnit
    from tests.test_procurement_views import _consultation

    def statements() -> tuple[int, str]:
        with client.application.app_context(), counting() as seen:
            page = client.get("/market")
        assert page.status_code == 200
        return len(seen), page.get_data(as_text=True)

    titles = [_consultation(world, factories.engagement(world)).title]
    login(world.firm_user)
    statements()  # warm the settings and kept statements
    one, _ = statements()
    for name in ["巴州民政局", "巴州教育局", "巴州水利局", "巴州交通运输局"]:
        unit = world.units.get(name) or BudgetUnit(bureau_id=world.bz.id, name=name)
        db.session.add(unit)
        db.session.flush()
        world.units[name] = unit
        titles.append(_consultation(world, factories.engagement(world, unit=name)).title)
    five, page = statements()
    assert five == one, (one, five)
    assert all(title in page for title in titles)
