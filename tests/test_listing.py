"""The list-page helper (evalhub/core/listing.py), the form helpers (evalhub/core/web.py) and the model mixins
(evalhub/core/mixins.py): query strings are read safely, the permission scope always applies, exports are
the filtered list, and the mixins declare the columns the tables always had."""
from __future__ import annotations

import io

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.errors import ValidationFailed
from evalhub.core.listing import (
    INT_MAX, MAX_PAGE, Export, Filter, Listing, choice_filter, enum_filter, enum_value, int_filter, page_number,
    parse_int, read_args, scoped, text_filter, year_filter,
)
from evalhub.extensions import db
from evalhub.registry.models import Expert, Firm, FirmKind, FirmStaff, FirmStatus, StaffRole
from tests import factories

HUGE = "963728318727131540488192"
FIRM_FILTERS = (enum_filter("status", FirmStatus, Firm.status), int_filter("bureau", Firm.bureau_id),
                text_filter("q", Firm.name))


def names(listing: Listing) -> set[str]:
    return {f.name for f in listing.all()}


# --- reading values --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["", "abc", "1.5", "1e3", "２０２５", "²", HUGE, str(INT_MAX + 1), "0", "-3", "9" * 5000])
def test_parse_int_refuses_what_is_not_an_integer_the_database_holds(raw):
    with pytest.raises(ValueError):
        parse_int(raw)


def test_parse_int_and_enum_value_accept_what_they_should():
    assert parse_int(" 42 ") == 42 and parse_int(str(INT_MAX)) == INT_MAX and parse_int("-3", lo=-5) == -3
    assert enum_value(FirmStatus, "admitted") is FirmStatus.ADMITTED
    assert enum_value(FirmStatus, FirmStatus.ADMITTED.label) is FirmStatus.ADMITTED  # the Chinese label too
    assert enum_value(FirmStatus, "nope") is None and enum_value(FirmStatus, None, FirmStatus.PENDING) is FirmStatus.PENDING


@pytest.mark.parametrize("raw, page", [("", 1), ("abc", 1), ("0", 1), ("-2", 1), ("7", 7), (HUGE, MAX_PAGE),
                                       ("9" * 5000, MAX_PAGE)])
def test_page_numbers_are_clamped_never_an_error(app, raw, page):
    with app.test_request_context(f"/?page={raw}"):
        assert page_number() == page


def test_read_args_ignores_garbage_on_pages_and_names_it_on_the_api(app):
    filters = (year_filter(), int_filter("bureau"), enum_filter("kind", FirmKind), text_filter("q"))
    with app.test_request_context(f"/?year=abc&bureau={HUGE}&kind=nope&q=%20巴州%20"):
        raw, values = read_args(filters)
        assert raw == {"year": "abc", "bureau": HUGE, "kind": "nope", "q": "巴州"}  # echoed back to the form
        assert values == {"year": None, "bureau": None, "kind": None, "q": "巴州"}
        with pytest.raises(ValidationFailed) as refused:
            read_args(filters, strict=True)
        assert set(refused.value.fields) == {"year", "bureau", "kind"}
        assert "可选值" in refused.value.fields["kind"] and "参数 year 无效：abc" in refused.value.message
    with app.test_request_context("/?year=2025&kind=会计师事务所"):
        assert read_args(filters, strict=True)[1] == {"year": 2025, "bureau": None, "kind": FirmKind.CPA_FIRM, "q": None}


# --- the list --------------------------------------------------------------------------------------

def test_the_permission_scope_applies_before_any_filter(app, world):
    with app.test_request_context("/"):
        assert names(Listing(scoped(Firm, user=world.kz_staff), *FIRM_FILTERS)) == {world.other_firm.name}
        assert names(Listing(scoped(Firm, user=world.region_admin), *FIRM_FILTERS)) == {world.firm.name,
                                                                                        world.other_firm.name}
    with app.test_request_context(f"/?bureau={world.bz.id}"):  # asking for another bureau's rows finds none
        assert names(Listing(scoped(Firm, user=world.kz_staff), *FIRM_FILTERS)) == set()


def test_filters_narrow_and_garbage_is_ignored(app, world):
    pending = factories.firm(world.bz, FirmStatus.PENDING, name="巴州待审核评价有限公司")
    db.session.commit()
    scope = scoped(Firm, user=world.region_admin)
    with app.test_request_context("/?status=pending"):
        firms = Listing(scope, *FIRM_FILTERS, order_by=[Firm.id])
        assert names(firms) == {pending.name} and firms["status"] is FirmStatus.PENDING
    with app.test_request_context(f"/?status=待审核&bureau={world.bz.id}&q=巴州"):
        assert names(Listing(scope, *FIRM_FILTERS)) == {pending.name}
    with app.test_request_context(f"/?status=nope&bureau={HUGE}&q="):
        firms = Listing(scope, *FIRM_FILTERS)
        assert len(firms.all()) == 3 and firms.filters["bureau"] == HUGE
    with app.test_request_context("/?q=100%25"):  # LIKE wildcards are literal
        assert names(Listing(scope, *FIRM_FILTERS)) == set()


def test_choice_and_custom_filters(app, world):
    kinds = choice_filter("kind", {"pending": Firm.status == FirmStatus.PENDING,
                                   "admitted": Firm.status == FirmStatus.ADMITTED})
    custom = Filter("initial", str, lambda stmt, text: stmt.where(Firm.name.startswith(text)))
    with app.test_request_context("/?kind=admitted&initial=克州"):
        assert names(Listing(scoped(Firm, user=world.region_admin), kinds, custom)) == {world.other_firm.name}
    with app.test_request_context("/?kind=maybe"):
        assert len(Listing(scoped(Firm, user=world.region_admin), kinds).all()) == 2


def test_pages_and_the_export_is_the_whole_filtered_list(app, world):
    for i in range(3):
        factories.expert(world.bz, name=f"列表专家{i}")
    db.session.commit()
    app.config["PAGE_SIZE"], size = 2, app.config["PAGE_SIZE"]
    try:
        spec = Export("专家", ["姓名"], lambda experts: [{"姓名": e.name} for e in experts])
        with app.test_request_context("/?q=列表&page=2"):
            experts = Listing(scoped(Expert, user=world.bz_admin), text_filter("q", Expert.name), order_by=[Expert.id])
            page = experts.page()
            assert page.total == 3 and [e.name for e in page.items] == ["列表专家2"]
            response = experts.export(spec)
        assert response.mimetype.endswith("spreadsheetml.sheet")
        response.direct_passthrough = False
        frame = pd.read_excel(io.BytesIO(response.get_data()))
        assert list(frame.columns) == ["姓名"] and list(frame["姓名"]) == ["列表专家0", "列表专家1", "列表专家2"]
        with app.test_request_context(f"/?page={HUGE}"):
            assert experts.page().items == []
    finally:
        app.config["PAGE_SIZE"] = size


def test_a_page_its_count_and_its_extra_columns_are_one_statement(app, world):
    """The count rides on the page's statement (issue 18), as do ``extra`` columns (here each expert's fields,
    in the enum's order); a page past the end counts apart, an empty first page counts nothing."""
    from evalhub.core.enums import Field
    from evalhub.core.listing import page_rows

    for i, fields in enumerate([[Field.FINANCE], [Field.LAW], [Field.LAW, Field.FINANCE]]):
        factories.expert(world.bz, name=f"计数专家{i}", fields=fields)
    db.session.commit()
    stmt = scoped(Expert, sa.select(Expert).where(Expert.name.startswith("计数专家")), world.bz_admin).order_by(Expert.id)
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        items, total, extra = page_rows(stmt, 2, 2, [Expert.fields_column()])
        assert [e.name for e in items] == ["计数专家2"] and total == 3 and len(seen) == 1
        assert Expert.parse_fields(extra[0]["fields"]) == [Field.FINANCE, Field.LAW]
        seen.clear()
        assert page_rows(stmt, 5, 2) == ([], 3, []) and len(seen) == 2  # past the end: the count apart
        seen.clear()
        assert page_rows(stmt.where(Expert.id < 0), 1, 2) == ([], 0, []) and len(seen) == 1
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def test_a_pages_offset_is_written_into_its_statement(app, world):
    """The offset is part of the SQL text, not a parameter beside the limit (PostgreSQL then keeps a generic
    plan for a list instead of planning it at every request); each page still gets its own rows, plain and
    ``late``."""
    from evalhub.core.listing import page_rows

    for i in range(5):
        factories.expert(world.bz, name=f"偏移专家{i}")
    db.session.commit()
    stmt = scoped(Expert, sa.select(Expert).where(Expert.name.startswith("偏移专家")), world.bz_admin) \
        .order_by(Expert.name)
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        for late in (None, Expert.id):
            seen.clear()
            pages = [[e.name for e in page_rows(stmt, page, 2, late=late)[0]] for page in (1, 2, 3)]
            assert pages == [["偏移专家0", "偏移专家1"], ["偏移专家2", "偏移专家3"], ["偏移专家4"]]
            assert len(seen) == 3
            for statement, offset in zip(seen, (0, 2, 4)):
                assert f"OFFSET {offset}" in statement, statement  # bound, it reads "OFFSET ?" / "OFFSET %(…)s"
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def test_a_late_page_is_the_same_page(app, world):
    """``late``: the page chosen over the key alone, then only its rows joined — the same items, order, total
    and extra columns as the plain page, on every page and past the end, for users with different scopes."""
    from evalhub.core.enums import Field
    from evalhub.core.listing import page_rows

    for i in range(7):  # ties in the order (two per name) so the key decides between them
        factories.expert(world.bz if i % 3 else world.region, name=f"后取专家{i // 2}",
                         fields=[Field.FINANCE] if i % 2 else [Field.LAW, Field.FINANCE])
    db.session.commit()
    for user in (world.bz_admin, world.region_admin, world.sysadmin):
        stmt = scoped(Expert, sa.select(Expert).where(Expert.name.startswith("后取专家")), user) \
            .order_by(Expert.name.desc(), Expert.id)
        for page in (1, 2, 3, 9):
            plain = page_rows(stmt, page, 3, [Expert.fields_column()])
            late = page_rows(stmt, page, 3, [Expert.fields_column()], late=Expert.id)
            assert [e.id for e in late[0]] == [e.id for e in plain[0]] and late[1:] == plain[1:], (user, page)
        assert page_rows(stmt, 1, 3)[1] > 0


def test_a_page_of_rows_has_the_items_and_extra_columns_of_the_page_of_objects(app, world):
    """``rows``: a page selecting the columns it shows reads whole rows — the same items, order, total and
    ``extra`` values (after the row's own columns) as the page of objects, plain and ``late``."""
    from evalhub.core.enums import Field
    from evalhub.core.listing import page_rows

    for i in range(5):
        factories.expert(world.bz, name=f"列页专家{i}", fields=[Field.LAW] if i % 2 else [Field.FINANCE])
    db.session.commit()
    where = Expert.name.startswith("列页专家")
    objects = scoped(Expert, sa.select(Expert).where(where), world.bz_admin).order_by(Expert.name.desc())
    columns = scoped(Expert, sa.select(Expert.id, Expert.name, Expert.bureau_id).where(where), world.bz_admin) \
        .order_by(Expert.name.desc())
    for page in (1, 2, 3, 4):
        for late in (None, Expert.id):
            items, total, extra = page_rows(objects, page, 2, [Expert.fields_column()], late=late)
            rows, row_total, row_extra = page_rows(columns, page, 2, [Expert.fields_column()], late=late, rows=True)
            assert [(r.id, r.name, r.bureau_id) for r in rows] == [(e.id, e.name, e.bureau_id) for e in items]
            assert row_total == total == 5 and row_extra == extra, (page, late)
    assert [r.fields for r in page_rows(columns, 1, 2, [Expert.fields_column()], rows=True)[0]] == \
        [row["fields"] for row in page_rows(objects, 1, 2, [Expert.fields_column()])[2]]


def test_a_kept_list_reads_its_rows_as_they_are_for_each_filter_and_page(world, login, auth):
    """``Listing(keep=...)`` builds the engagement list's statements once per scope, filters and page (web and
    API): a later request still shows the rows as they are then, each filter and page its own, each user's scope
    its own."""
    from evalhub.procurement.models import EngagementState

    made = [factories.engagement(world, unit="巴州统计局") for _ in range(3)]
    made.append(factories.engagement(world, bureau_key="kz", unit="克州农业农村局"))
    db.session.commit()
    headers = auth("bz.admin")  # the API as 巴州's admin; the pages as whoever ``login`` signed in last

    def shown(user, query=""):
        body = login(user).get("/engagements" + query).get_data(as_text=True)
        return {e.reference for e in made if e.reference in body}

    def listed(query=""):
        return {item["reference"] for item in login(world.bz_admin).get(
            "/api/v1/engagements" + query, headers=headers).json["items"]}

    bz = {e.reference for e in made[:3]}
    assert shown(world.bz_admin) == bz and listed() == bz and shown(world.kz_admin) == {made[3].reference}
    made.append(factories.engagement(world, unit="巴州民政局"))  # written after the statements were built
    db.session.commit()
    bz.add(made[-1].reference)
    assert shown(world.bz_admin) == bz and listed() == bz and shown(world.kz_admin) == {made[3].reference}
    assert shown(world.bz_admin, "?q=" + made[-1].reference) == listed("?q=" + made[-1].reference) == {made[-1].reference}
    assert shown(world.bz_admin, "?state=contracted") == set()
    assert listed("?state=" + EngagementState.PLANNED.value) == bz
    pages = [login(world.bz_admin).get(f"/api/v1/engagements?per_page=2&page={n}", headers=headers).json
             for n in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [2, 2, 0] and {p["total"] for p in pages} == {4}
    assert {i["reference"] for p in pages for i in p["items"]} == bz


def test_distinct_values_read_a_probe_per_value(app, world):
    """``read_distinct`` (a skip scan) gives what SELECT DISTINCT gives, in order, for each user's scope."""
    from evalhub.core.listing import read_distinct
    from evalhub.procurement.models import Engagement

    for year in (2019, 2021, 2021, 2024):
        factories.engagement(world, year=year)
    db.session.commit()
    for user in (world.bz_admin, world.region_admin, world.kz_admin, world.sysadmin, world.firm_user):
        def scope(stmt, user=user):
            return scoped(Engagement, stmt, user)
        expected = sorted(set(db.session.execute(scope(sa.select(Engagement.year).distinct())).scalars()))
        assert read_distinct(Engagement.year, scope) == expected, user.username
    assert read_distinct(Engagement.year, lambda stmt: scoped(Engagement, stmt, world.region_admin))[-3:] == [2019, 2021, 2024]
    assert read_distinct(Engagement.year, lambda stmt: scoped(Engagement, stmt, world.kz_admin)) == []


# --- through the pages and the API -----------------------------------------------------------------

@pytest.mark.parametrize("query", [f"page={HUGE}", f"bureau={HUGE}&status=nope", "year=abc", "year=²", f"year={HUGE}",
                                   f"firm={HUGE}&kind=nope&trigger=x", f"bureau_id={HUGE}&firm_id=-1&kind=x"])
def test_no_list_page_answers_500_to_garbage(world, login, query):
    client = login(world.region_admin)
    for path in ("/firms", "/experts", "/plans", "/engagements", "/reviews", "/inspections", "/campaigns",
                 "/complaints", "/credit", "/screening/queue", "/public/reports", "/public/ratings",
                 "/public/inspections"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 200, (path, query, response.status_code)


def test_a_filtered_page_keeps_what_was_typed_and_exports_the_same_rows(world, login):
    client = login(world.region_admin)
    page = client.get(f"/firms?q=克州&bureau={HUGE}").get_data(as_text=True)
    assert world.other_firm.name in page and world.firm.name not in page and 'value="克州"' in page
    response = client.get("/firms?q=克州&export=xlsx")
    frame = pd.read_excel(io.BytesIO(response.data))
    assert response.status_code == 200 and list(frame["机构名称"]) == [world.other_firm.name]


def test_the_api_refuses_garbage_with_the_argument_named(client, world):
    token = client.post("/api/v1/tokens", json={"username": "region.admin", "password": factories.PASSWORD}).json
    headers = {"Authorization": f"Bearer {token['token']}"}
    body = client.get(f"/api/v1/firms?page={HUGE}&status=admitted", headers=headers).json
    assert body["items"] == [] and body["total"] == 2 and body["page"] == MAX_PAGE
    for url, names_ in ((f"/api/v1/firms?status=nope&bureau={HUGE}", {"status", "bureau"}),
                        (f"/api/v1/plans?year={HUGE}", {"year"}),
                        (f"/api/v1/inspections?campaign={HUGE}", {"campaign"}),
                        ("/api/v1/public/ratings?grade=Z&year=20xx", {"grade", "year"})):
        response = client.get(url, headers=headers)
        assert response.status_code == 422 and set(response.json["error"]["fields"]) == names_, url


# --- forms -----------------------------------------------------------------------------------------

def test_a_refused_form_is_shown_again_with_422_and_nothing_written(world, login):
    client = login(world.bz_admin)
    before = db.session.execute(sa.select(sa.func.count(Expert.id))).scalar_one()
    response = client.post("/experts/new", data={"name": "", "id_number": "123"})
    assert response.status_code == 422 and "录入专家" in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(Expert.id))).scalar_one() == before


def test_a_child_of_another_parent_is_404(world, login):
    other = factories.firm(world.bz, name="巴州另一家评价有限公司")
    staff = FirmStaff(firm_id=other.id, name="张三", role=StaffRole.EVALUATOR, id_number_encrypted="x",
                      id_number_masked="6528**********0011", id_number_digest="d" * 64)
    db.session.add(staff)
    db.session.commit()
    client = login(world.bz_admin)
    url = f"/firms/{{}}/staff/{staff.id}/deactivate"
    assert client.post(url.format(world.firm.id), data={"reason": "离职"}).status_code == 404  # not world.firm's
    assert client.post(url.format(other.id), data={"reason": "离职"}).status_code == 302


# --- mixins ----------------------------------------------------------------------------------------

def test_mixins_declare_the_columns_the_tables_always_had(app):
    firm, expert = Firm.__table__, Expert.__table__
    assert not firm.c.bureau_id.nullable and firm.c.bureau_id.index
    assert [fk.target_fullname for fk in firm.c.bureau_id.foreign_keys] == ["bureau.id"]
    assert not expert.c.created_at.nullable and expert.c.created_at.default is not None
    from evalhub.procurement.models import EngagementTransition
    transition = EngagementTransition.__table__
    assert transition.c.actor_id.nullable and [fk.target_fullname for fk in transition.c.actor_id.foreign_keys] == [
        "user_account.id"]


def test_mixin_relationships_load(world):
    assert world.firm.bureau is world.bz and world.expert.bureau is world.bz
    assert Firm.fields_of([world.firm.id]) == {world.firm.id: world.firm.fields}
    assert db.session.execute(sa.select(Firm.id).where(Firm.with_field(world.firm.fields[0]))).scalars().all()
