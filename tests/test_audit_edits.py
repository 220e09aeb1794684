"""Audit: what happens to a record when what it points to is edited, renamed, suspended, disabled or deleted
later. Each test states the rule and fails on the current code because of the defect it names."""
from __future__ import annotations

import sqlalchemy as sa
import pytest

from evalhub.core import draws
from evalhub.core.enums import Role
from evalhub.core.errors import DomainError
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.procurement.models import ResultNotice
from evalhub.registry import services as registry
from evalhub.results import services as S
from evalhub.review import services as R
from tests import factories


# --- 1. a published result notice keeps the supplier as published ---------------------------------------

def test_result_notice_page_keeps_the_suppliers_name_as_published_after_the_firm_is_renamed(world, client):
    """Rule: the result notice (中标/成交结果公告) is published at the award (docs/rules.md, Procurement;
    政府采购法实施条例 第四十三条) and a published record does not change afterwards — ``ResultNotice`` even
    keeps its own ``text`` and ``amount`` for that reason. Defect: the public notice page and the notices list
    print the supplier line from the live ``Firm`` row (``n.firm.name`` / ``n.firm.uscc``): after the firm edits
    its name, the published notice names a supplier that never appeared in it, and contradicts its own stored
    text on the same page."""
    e = factories.contracted(world)
    notice = db.session.execute(sa.select(ResultNotice).where(
        ResultNotice.procurement_id == e.current_procurement.id)).scalar_one()
    old_name = world.firm.name
    assert old_name in notice.text
    registry.update_firm(world.firm, factories.firm_input(name="巴州更名后咨询有限公司", uscc=world.firm.uscc),
                         world.firm_user)
    db.session.commit()

    page = client.get(f"/public/notices/{notice.id}").get_data(as_text=True)
    listing = client.get("/public/notices").get_data(as_text=True)
    assert "巴州更名后咨询有限公司" not in page, "the published notice now names the firm by a name it was not published under"
    assert "巴州更名后咨询有限公司" not in listing
    assert f"成交供应商：{old_name}" in page


def test_the_migration_fills_the_supplier_of_notices_already_out_from_their_published_text(world):
    """The upgrade that adds ``supplier_name``/``supplier_uscc`` fills the notices already published from their own
    text (the name as published), not from the firm row as renamed since."""
    from tests.migration_files import load

    e = factories.contracted(world)
    notice = db.session.execute(sa.select(ResultNotice).where(
        ResultNotice.procurement_id == e.current_procurement.id)).scalar_one()
    published = (notice.supplier_name, notice.supplier_uscc)
    world.firm.name = "巴州更名后咨询有限公司"
    notice.supplier_name = notice.supplier_uscc = ""
    db.session.flush()
    load("c2d4f6a8b0e3_result_notice_supplier_as_published.py").backfill(db.session.connection())
    db.session.expire_all()
    assert (notice.supplier_name, notice.supplier_uscc) == published


# --- 2. a deleted draft finding leaves its number behind -------------------------------------------------

def test_findings_keep_distinct_numbers_after_a_draft_one_is_deleted(world):
    """Rule: each finding of an accepted report is 第 N 条 — the rectification notice, the escalations (约谈/
    通报), the audit log and the refusal of a twin all cite a finding by its number (results/services.py), so
    numbers are distinct within an engagement. Defect: ``add_finding`` numbers a new row ``count + 1``; after
    ``delete_finding`` removes a draft that was not the last, the next finding takes the number of one still
    there (1, 2, 3 → delete 2 → the new one is 第 3 条 too)."""
    e = factories.accepted(world)
    firm_user = factories._firm_user_of(e)
    rows = [S.add_finding(e, firm_user, S.FindingInput(kind="问题", text=f"资金支付进度滞后，问题{i}", category="过程",
                                                        indicator="资金到位率")) for i in (1, 2, 3)]
    S.delete_finding(rows[0], firm_user)
    S.add_finding(e, firm_user, S.FindingInput(kind="问题", text="绩效目标设置不细化", category="决策", indicator="目标明确性"))
    db.session.flush()
    positions = [f.position for f in S.findings_of(e, firm_user)]
    assert len(positions) == len(set(positions)), f"two findings share a number: {positions}"


# --- 3. a witness's account disabled half-way through a draw ---------------------------------------------

def test_disabling_a_witness_of_a_half_witnessed_draw_leaves_a_way_to_finish_it(world):
    """Rule: every draw is witnessed and revealed once every named witness has entered a number; the witness
    list is fixed once the first number is in (core/draws.py), and a draw is never deleted. Deactivating an
    account (core/services.py ``set_enabled``) must therefore either be refused while the person is a named
    witness still owing a number, or let the bureau replace that witness. Defect: the account is disabled
    without a word; the disabled witness cannot sign in to enter a number, ``name_witnesses`` refuses a new
    list ("已有监督人输入了数字") and ``reveal`` waits for the missing number — the expert-panel draw can never
    be revealed, and ``form_panel`` refuses a new one while it waits: the engagement is stuck for good."""
    e = factories.contracted(world)
    factories.submit_plan(e)
    factories.panel_experts(e, 3)
    record = R.form_panel(e, world.bz_staff, size=3)
    first = factories.user("bz.witness1", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    second = factories.user("bz.witness2", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    third = factories.user("bz.witness3", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    draws.name_witnesses(record, [first, second], world.bz_staff)
    draws.enter_number(record, first, "20250314")

    try:
        from evalhub.core.services import set_enabled

        set_enabled(second, False, world.bz_admin, "调离本局")
    except DomainError:
        return  # refused while the person owes a number: the draw can still be finished
    # Disabled: the bureau must be able to carry on with another witness.
    try:
        draws.name_witnesses(record, [first, third], world.bz_staff)
    except DomainError as exc:
        pytest.fail(f"the draw is stuck: {exc.message}")


def test_after_the_first_number_the_operator_adds_no_witness_of_their_choosing(world):
    """The replacement of a disabled witness is one for one, and only for a disabled witness: once a number is in,
    the operator may not add a witness (who would then enter a number knowing the others' commitments) — on the
    service, whatever the page shows."""
    e = factories.contracted(world)
    factories.submit_plan(e)
    factories.panel_experts(e, 3)
    record = R.form_panel(e, world.bz_staff, size=3)
    first, second, third, fourth = (factories.user(f"bz.watch{n}", Role.BUREAU_STAFF, bureau_id=world.bz.id)
                                    for n in range(1, 5))
    draws.name_witnesses(record, [first, second], world.bz_staff)
    draws.enter_number(record, first, "20250314")
    with pytest.raises(DomainError):  # nobody disabled: no change at all
        draws.name_witnesses(record, [first, second, third], world.bz_staff)
    from evalhub.core.services import set_enabled

    set_enabled(second, False, world.bz_admin, "调离本局")
    with pytest.raises(DomainError):  # one disabled: one replacement, not two
        draws.name_witnesses(record, [first, third, fourth], world.bz_staff)
    draws.name_witnesses(record, [first, third], world.bz_staff)
    assert [(w.user_id, w.number is not None) for w in record.witnesses] == [(first.id, True), (third.id, False)]


# --- 4. a pass mark changed while a panel is reviewing ---------------------------------------------------

def test_a_panel_is_decided_on_the_pass_mark_in_force_when_it_was_formed(world):
    """Rule: a panel reviews on the standard in force when it was formed — ``_seat_panel`` fixes the rubric
    version on the panel ("reviews keep the version they were made with", ``revise_rubric``), so that scores of
    one review are comparable; the pass mark (``review.plan_pass_mark``, docs/rules.md Review) is part of that
    standard. Defect: ``maybe_decide`` reads the pass mark when the last expert submits: a bureau raising the
    mark from 80 to 95 while a panel is scoring fails a plan the experts scored 90, under a mark announced
    after the review began (and two panels of the same day are judged by different marks)."""
    e = factories.contracted(world)
    factories.submit_plan(e)
    panel = factories.own_panel(e)
    assert R.get_setting(world.bz, "review.plan_pass_mark") == 80
    set_setting(world.bz, "review.plan_pass_mark", 95, world.bz_admin)
    factories.review_panel(panel, "0.9")
    assert panel.score == 90
    assert panel.pass_mark == 80 and panel.passed, (
        f"panel formed under pass mark 80 decided under {panel.pass_mark}: passed={panel.passed}")


# --- 5. a result changed after its row of the results list was confirmed --------------------------------

def test_a_county_cannot_file_a_results_list_whose_confirmed_row_no_longer_matches_the_result(world):
    """Rule: the results list holds, per evaluated object, the result's score and grade and the measures the
    bureau confirmed on them (优 → priority, 差 → 通报 and cuts; docs/rules.md, Results application, seeds
    000/001/003); a county files (备案) a list holding every evaluated object with a result, and ``file_list``
    already refuses a list that a result recorded since its building has left incomplete. Defect: when a
    result's grade changes after its row was confirmed (a cap recorded — here the authenticity veto, 一票否决,
    turning 优 into 差), ``build_list`` leaves the confirmed row as it was (score/grade/measures of the old
    result) and ``file_list`` files it: the county reports an object as 优 with 优先安排 that its own result
    says is 差."""
    from evalhub.review.models import EvaluationResult, Grade

    e = factories.accepted(world, bureau_key="lt", unit="轮台县医疗保障局")
    S.build_list(world.lt, e.year, world.lt_admin)
    entry = S.entries(world.lt, e.year)[0]
    assert entry.grade == Grade.EXCELLENT
    S.confirm_entry(entry, world.lt_admin, measures=entry.proposed)
    R.add_cap(e, world.lt_staff, "failed_authenticity", "真实性核查发现调查问卷数据系虚构，一票否决。",
              link=f"/engagements/{e.id}")
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    assert result.grade == Grade.POOR

    S.build_list(world.lt, e.year, world.lt_admin)
    entry = S.entries(world.lt, e.year)[0]
    if entry.confirmed_at is None and entry.grade == result.grade:
        return  # the row was reopened on the new result: the bureau decides it again
    try:
        S.file_list(world.lt, e.year, world.lt_admin)
    except DomainError:
        return  # refused until the row is decided again on the result as it now stands
    pytest.fail(f"filed: the list says {entry.grade.label} ({entry.labels(entry.measures)}), "
                f"the result says {result.grade.label}")


# --- 6. a budget unit renamed through the organisation import ---------------------------------------------

def test_renaming_a_budget_unit_by_import_does_not_create_a_second_unit_with_the_same_credit_code(world):
    """Rule: a budget unit is one organisation, identified by its 统一社会信用代码 (GB 32100) when it has one;
    the organisation import updates existing rows rather than duplicating them (core/organisations.py: "Existing
    rows … are updated, so importing the same workbook twice changes nothing"), and conflict checks look the
    unit up by its row (a firm's recusal relation, an expert's tie). Defect: the import matches units by (bureau,
    name) only: a unit renamed in the bureau's workbook (机构改革, 更名) with the same code becomes a second
    unit with that code beside the old one, instead of the old unit renamed (or the row refused). A firm that
    keeps the unit's books, recorded against the old row, is then no longer excluded from evaluating the
    renamed unit."""
    from evalhub.core.models import BudgetUnit
    from evalhub.core.organisations import import_organisations
    from evalhub.core.validators import compose_uscc

    code = compose_uscc("652800", "MB000123X")
    import_organisations([], [{"bureau_code": "652800", "name": "巴州统计局", "code": code, "parent_name": ""}],
                         actor=world.bz_admin)
    unit = world.units["巴州统计局"]
    assert unit.code == code
    import_organisations([], [{"bureau_code": "652800", "name": "巴音郭楞蒙古自治州统计局", "code": code,
                               "parent_name": ""}], actor=world.bz_admin)
    same_code = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.code == code)).scalars().all()
    assert len(same_code) == 1, f"{len(same_code)} budget units now carry the code {code}: " + "、".join(
        u.name for u in same_code)


# --- 7. an admitted firm swaps its identity by editing itself ----------------------------------------------

def test_an_admitted_firm_cannot_change_its_credit_code_by_editing_itself(world):
    """Rule: a firm enters the library only by the bureau's admission of an application — the business licence,
    credit record and the other documents of that legal person, 统一社会信用代码 included (DOMAIN §3;
    docs/rules.md Registry: admission needs the application's documents; the USCC is what identifies the firm,
    GB 32100). Defect: ``update_firm`` lets the firm's own user rewrite its 统一社会信用代码 (with its name) while it
    stays 已入库: another legal person — never reviewed, its licence never seen — takes over the admitted place and
    its history, with no review and no trace beyond "修改机构信息". Expected: the code of an admitted firm is not
    the firm's to change (refused), or the change sends the firm back to the bureau's review."""
    from evalhub.registry.models import FirmStatus

    firm = world.firm
    assert firm.status == FirmStatus.ADMITTED
    other_code = factories.uscc("650100")
    try:
        registry.update_firm(firm, factories.firm_input(name="乌鲁木齐另一家咨询有限公司", uscc=other_code),
                             world.firm_user)
    except DomainError:
        return
    db.session.flush()
    assert not (firm.uscc == other_code and firm.status == FirmStatus.ADMITTED), (
        "the firm changed its own credit code and is still admitted: another legal person is in the library")
