"""Registry rules: applications, library status with history, staff, recusal, expert eligibility and avoidance."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import audit
from evalhub.core.enums import Field, Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import User
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.models import (
    Degree, Expert, Firm, FirmRelation, FirmStaff, FirmStatus, FirmStatusChange, ProfessionalTitle, RelationKind, TieKind,
)
from tests import factories
from tests.test_admission import admission_papers


def _count(model):
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


# --- applications ----------------------------------------------------------------------------------

def test_a_firm_applies_itself_and_gets_an_account(world):
    firm, user = services.register_firm_application(
        factories.firm_input(name="天山绩效评价咨询有限公司"), world.bz,
        username="tianshan", password="long-enough-1", display_name="王五")
    db.session.commit()
    assert firm.status == FirmStatus.PENDING and firm.bureau_id == world.bz.id
    assert user.role == Role.FIRM_USER and user.firm_id == firm.id
    assert firm.fields == [Field.FINANCE]
    assert [e.action for e in audit.history("firm", firm.id)] == ["firm.applied"]
    assert firm.status_history[0].to_status == FirmStatus.PENDING


def test_self_application_needs_the_no_violation_declaration_and_reports_every_problem(world):
    firms, users = _count(Firm), _count(User)
    with pytest.raises(ValidationFailed) as caught:
        services.register_firm_application(
            factories.firm_input(uscc="91652800MA000001X0", declares_no_major_violation=False, fields=[],
                                 contact_email="not-an-email"),
            world.bz, username="firm1", password="short", display_name="x")
    fields = caught.value.fields
    assert {"uscc", "declares_no_major_violation", "fields", "contact_email", "username", "password"} <= set(fields)
    assert "已被使用" in fields["username"]
    db.session.rollback()
    assert (_count(Firm), _count(User)) == (firms, users)


def test_a_credit_code_can_be_registered_once(world):
    with pytest.raises(ValidationFailed) as caught:
        services.create_firm(factories.firm_input(uscc=world.firm.uscc), world.bz, world.bz_admin)
    assert "已登记" in caught.value.fields["uscc"] and world.firm.name in caught.value.fields["uscc"]
    # another bureau, which may not see 巴州's firm, is told the code is taken, not by whom
    with pytest.raises(ValidationFailed) as caught:
        services.create_firm(factories.firm_input(uscc=world.firm.uscc), world.kz, world.kz_admin)
    assert "已登记" in caught.value.fields["uscc"] and world.firm.name not in caught.value.fields["uscc"]


def test_labels_and_values_are_both_accepted_for_enums(world):
    firm = services.create_firm(factories.firm_input(legal_form="special_partnership", kind="会计师事务所",
                                                     fields=["财务会计", "accounting", "教育"]), world.bz, world.bz_staff)
    assert firm.legal_form.label == "特殊普通合伙企业" and firm.kind.value == "cpa_firm"
    assert firm.fields == [Field.ACCOUNTING, Field.EDUCATION]  # duplicates folded, order of the enum
    with pytest.raises(ValidationFailed):
        services.create_firm(factories.firm_input(fields=["会计"]), world.bz, world.bz_staff)  # 会计 is not a field


def _audited(action: str) -> int:
    from evalhub.core.models import AuditEvent
    return db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == action)).scalar_one()


def test_only_a_bureau_s_own_people_enter_a_firm_or_an_expert_into_its_library_whatever_the_path(world):
    """The rule is the service's (the web page and the API checked "firm.create" / "expert.create" on the user's
    own bureau; the service checked nothing): another bureau's administrator, a lower bureau's staff, a firm's
    user or an expert calling it are refused, with nothing written."""
    firms, experts = _count(Firm), _count(Expert)
    applied, entered = _audited("firm.applied"), _audited("expert.created")
    for outsider in (world.kz_admin, world.lt_staff, world.firm_user, world.expert_user):
        with pytest.raises(PermissionDenied):
            services.create_firm(factories.firm_input(), world.bz, outsider)
        with pytest.raises(PermissionDenied):
            services.create_firm(factories.firm_input(), world.bz, outsider, via="import")
        with pytest.raises(PermissionDenied):
            services.create_expert(factories.expert_input(), world.bz, outsider)
    assert not db.session.new
    db.session.rollback()
    assert (_count(Firm), _count(Expert)) == (firms, experts)
    assert (_audited("firm.applied"), _audited("expert.created")) == (applied, entered)
    # the bureau's own staff, and the system administrator, still may
    assert services.create_firm(factories.firm_input(), world.bz, world.bz_staff).bureau_id == world.bz.id
    assert services.create_expert(factories.expert_input(), world.bz, world.sysadmin).bureau_id == world.bz.id


def test_only_one_who_may_edit_a_firm_changes_its_details_whatever_the_path(world):
    """The rule is the service's (the edit page checked "firm.edit"; ``update_firm`` checked nothing): another
    firm's user, an expert, another bureau's administrator — or the firm's own user once the firm was removed
    from the library — calling it is refused, with nothing changed."""
    firm = world.firm
    name, updated = firm.name, _audited("firm.updated")
    for outsider in (world.other_firm_user, world.expert_user, world.kz_admin):
        with pytest.raises(PermissionDenied):
            services.update_firm(firm, factories.firm_input(name="冒名修改的咨询有限公司", uscc=firm.uscc), outsider)
    db.session.execute(sa.update(Firm).where(Firm.id == firm.id).values(status=FirmStatus.REMOVED)
                       .execution_options(synchronize_session=False))  # removed while the form was open
    with pytest.raises(PermissionDenied):
        services.update_firm(firm, factories.firm_input(name="移出后修改的咨询有限公司", uscc=firm.uscc), world.firm_user)
    db.session.rollback()
    db.session.refresh(firm)
    assert firm.name == name and firm.status == FirmStatus.ADMITTED and _audited("firm.updated") == updated
    # its own user and its bureau's staff still may
    services.update_firm(firm, factories.firm_input(name="巴州示范评价咨询有限公司（更名）", uscc=firm.uscc), world.firm_user)
    services.update_firm(firm, factories.firm_input(name=name, uscc=firm.uscc), world.bz_staff)
    assert _audited("firm.updated") == updated + 2


# --- library status --------------------------------------------------------------------------------

def test_admission_and_later_status_changes_keep_a_history(world):
    firm = factories.firm(world.bz, FirmStatus.PENDING)
    services.change_firm_status(firm, "admit", world.bz_staff, reason="材料齐全", documents=admission_papers())
    until = beijing_today() + timedelta(days=90)
    services.change_firm_status(firm, "suspend", world.bz_admin, reason="年度信用评价为 D", effective_until=until)
    services.change_firm_status(firm, "reinstate", world.bz_admin, reason="整改完成")
    services.change_firm_status(firm, "blacklist", world.bz_admin, reason="伪造评价数据")
    db.session.commit()
    history = [(c.from_status, c.to_status) for c in firm.status_history]
    assert history == [(None, FirmStatus.PENDING), (FirmStatus.PENDING, FirmStatus.ADMITTED),
                       (FirmStatus.ADMITTED, FirmStatus.SUSPENDED), (FirmStatus.SUSPENDED, FirmStatus.ADMITTED),
                       (FirmStatus.ADMITTED, FirmStatus.BLACKLISTED)]
    assert firm.status_history[2].effective_until == until
    assert firm.admitted_at is not None
    actions = [e.action for e in audit.history("firm", firm.id) if e.action != "firm.document_added"]
    assert actions == ["firm.applied", "firm.admit", "firm.suspend", "firm.reinstate", "firm.blacklist"]
    assert audit.verify_chain().ok


@pytest.mark.parametrize("status, action", [
    (FirmStatus.ADMITTED, "admit"), (FirmStatus.PENDING, "suspend"), (FirmStatus.REJECTED, "reinstate"),
    (FirmStatus.BLACKLISTED, "remove"), (FirmStatus.REMOVED, "suspend"),
])
def test_transitions_not_allowed_from_the_current_state_are_conflicts(world, status, action):
    firm = factories.firm(world.bz, status)
    with pytest.raises(Conflict) as caught:
        services.change_firm_status(firm, action, world.bz_admin, reason="测试")
    assert status.label in caught.value.message


def test_rejecting_needs_a_reason_and_writes_nothing_without_one(world):
    firm = factories.firm(world.bz, FirmStatus.PENDING)
    db.session.commit()
    before = _count(FirmStatusChange)
    with pytest.raises(ValidationFailed) as caught:
        services.change_firm_status(firm, "reject", world.bz_staff, reason="  ")
    assert "原因" in caught.value.message
    db.session.rollback()
    assert _count(FirmStatusChange) == before and db.session.get(Firm, firm.id).status == FirmStatus.PENDING


def test_staff_may_review_but_only_admins_suspend_and_only_in_their_own_bureau(world):
    firm = factories.firm(world.bz, FirmStatus.PENDING)
    with pytest.raises(PermissionDenied):
        services.change_firm_status(firm, "admit", world.kz_admin)
    with pytest.raises(PermissionDenied):
        services.change_firm_status(firm, "admit", world.region_admin)  # supervises, does not run 巴州's library
    services.change_firm_status(firm, "admit", world.bz_staff, reason="材料齐全", documents=admission_papers())
    with pytest.raises(PermissionDenied):
        services.change_firm_status(firm, "suspend", world.bz_staff, reason="x")


# --- staff and recusal -----------------------------------------------------------------------------

def test_staff_identity_numbers_are_protected_and_a_person_works_for_one_firm(world):
    number = factories.id_number()
    staff = services.add_staff(world.firm, services.StaffInput(
        name="赵六", id_number=number, role="项目负责人", years_experience=12,
        certificates=[("注册会计师", "CPA-001"), ("", "")]), world.firm_user)
    db.session.commit()
    assert staff.id_number_masked != number and number not in staff.id_number_encrypted
    assert [c.kind.label for c in staff.certificates] == ["注册会计师"]
    with pytest.raises(ValidationFailed) as caught:
        services.add_staff(world.other_firm, services.StaffInput(name="赵六", id_number=number, role="评价人员",
                                                                 years_experience=3), world.other_firm_user)
    assert "其他机构" in caught.value.fields["id_number"]
    db.session.rollback()
    services.deactivate_staff(db.session.get(FirmStaff, staff.id), world.firm_user, "离职")
    services.add_staff(world.other_firm, services.StaffInput(name="赵六", id_number=number, role="评价人员",
                                                             years_experience=3), world.other_firm_user)


def test_a_firm_cannot_manage_another_firms_roster(world):
    with pytest.raises(PermissionDenied):
        services.add_staff(world.other_firm, services.StaffInput(name="x", id_number=factories.id_number(),
                                                                 role="评价人员", years_experience=1), world.firm_user)


def test_recusal_relations_block_while_active(world):
    unit = world.units["巴州统计局"]
    today = beijing_today()
    services.add_relation(world.firm, kind=RelationKind.ACCOUNTING_AGENT, bureau_id=None, budget_unit_id=unit.id,
                          start_date=today - timedelta(days=400), end_date=None, note="代理记账", actor=world.bz_staff)
    services.add_relation(world.firm, kind="税务代理", bureau_id=world.lt.id, budget_unit_id=None,
                          start_date=today - timedelta(days=800), end_date=today - timedelta(days=400), note=None,
                          actor=world.firm_user)
    reasons = services.firm_recusal_reasons(world.firm, budget_unit_ids=[unit.id], bureau_ids=[world.lt.id])
    assert len(reasons) == 1 and "巴州统计局" in reasons[0] and "代理记账" in reasons[0]
    past = services.firm_recusal_reasons(world.firm, bureau_ids=[world.lt.id], on=today - timedelta(days=500))
    assert len(past) == 1 and "税务代理" in past[0]
    assert services.firm_recusal_reasons(world.other_firm, budget_unit_ids=[unit.id]) == []


def test_a_relation_names_exactly_one_counterpart(world):
    with pytest.raises(ValidationFailed) as caught:
        services.add_relation(world.firm, kind="其他经济利益", bureau_id=world.bz.id,
                              budget_unit_id=world.units["巴州民政局"].id, start_date=date(2024, 1, 1),
                              end_date=None, note=None, actor=world.bz_staff)
    assert "counterpart" in caught.value.fields


def test_the_same_relation_or_tie_entered_twice_is_on_record_once(world):
    """A double click or a resend: the second gets a 409 naming the record, nothing written twice; another period
    of the same relation, or the same counterpart by another kind, is a record of its own."""
    unit = world.units["巴州统计局"]
    relation = dict(kind=RelationKind.ACCOUNTING_AGENT, bureau_id=None, budget_unit_id=unit.id,
                    start_date=date(2024, 1, 1), end_date=None, note="代理记账", actor=world.bz_staff)
    services.add_relation(world.firm, **relation)
    with pytest.raises(Conflict) as caught:
        services.add_relation(world.firm, **{**relation, "note": "重复提交"})
    assert "已登记" in caught.value.message and "巴州统计局" in caught.value.message
    services.add_relation(world.firm, **{**relation, "start_date": date(2020, 1, 1), "end_date": date(2021, 1, 1)})
    assert db.session.scalar(sa.select(sa.func.count(FirmRelation.id)).where(
        FirmRelation.budget_unit_id == unit.id)) == 2

    expert = _expert(world)
    tie = dict(kind=TieKind.EMPLOYMENT, counterpart_type="第三方机构", counterpart_name=None, firm_id=world.firm.id,
               bureau_id=None, budget_unit_id=None, start_date=date(2019, 1, 1), end_date=None, note=None,
               actor=world.bz_staff)
    services.add_expert_tie(expert, **tie)
    with pytest.raises(Conflict) as caught:
        services.add_expert_tie(expert, **tie)
    assert "已申报" in caught.value.message and world.firm.name in caught.value.message
    services.add_expert_tie(expert, **{**tie, "kind": "控股股东"})
    other = dict(tie, counterpart_type="其他单位", counterpart_name="某会计师事务所", firm_id=None)
    services.add_expert_tie(expert, **other)
    with pytest.raises(Conflict):
        services.add_expert_tie(expert, **other)
    services.add_expert_tie(expert, **{**other, "counterpart_name": "另一会计师事务所"})
    assert len([t for t in expert.ties if t.start_date == date(2019, 1, 1)]) == 4


# --- experts ---------------------------------------------------------------------------------------

def _expert(world, **kw):
    return factories.expert(world.bz, **kw)


def test_expert_eligibility_thresholds(world):
    this_year = beijing_today().year
    assert services.expert_eligibility(_expert(world)) == []
    cases = {
        "从业年限": dict(years_in_field=9),
        "学历": dict(degree=Degree.COLLEGE),
        "职称": dict(title=ProfessionalTitle.JUNIOR),
        "年龄": dict(birth_year=this_year - 66,
                     id_number=factories.id_number(birth=f"{this_year - 66}0101")),
    }
    for word, overrides in cases.items():
        reasons = services.expert_eligibility(_expert(world, **overrides))
        assert len(reasons) == 1 and word in reasons[0], (word, reasons)
    combined = _expert(world, years_in_field=3, title=ProfessionalTitle.NONE)
    assert len(services.expert_eligibility(combined)) == 2


def test_expert_age_counts_full_years_from_the_birth_date(world):
    """财库〔2016〕198号 第六条 ("年龄在70周岁以下"), the setting 65 here: an expert born on 12 December 1960 is 65
    周岁 on 11 December 2026 and may sit; the next day, 66 周岁, is over. Counting calendar years made them 66 — and
    out — from the first of January."""
    from datetime import date

    expert = _expert(world, birth_year=1960, id_number=factories.id_number(birth="19601212"))
    assert services.expert_eligibility(expert, on=date(2026, 12, 11)) == []
    assert services.expert_eligibility(expert, on=date(2026, 1, 1)) == []
    over = services.expert_eligibility(expert, on=date(2026, 12, 12))
    assert over == ["年龄 66 周岁，超过 65 周岁"]


def test_expert_thresholds_are_bureau_settings(world):
    junior = _expert(world, years_in_field=8)
    assert services.expert_eligibility(junior)
    set_setting(world.bz, "expert.min_years", 8, world.bz_admin)
    assert services.expert_eligibility(junior) == []
    set_setting(world.bz, "expert.min_degree", "doctor", world.bz_admin)
    assert "学历" in services.expert_eligibility(junior)[0]


def test_expert_input_is_checked_against_the_identity_number(world):
    with pytest.raises(ValidationFailed) as caught:
        services.create_expert(factories.expert_input(birth_year=1980,
                                                      id_number=factories.id_number(birth="19700101")), world.bz, None)
    assert "出生年份" in caught.value.fields["birth_year"]
    with pytest.raises(ValidationFailed) as caught:
        services.create_expert(factories.expert_input(id_number="123"), world.bz, None)
    assert "id_number" in caught.value.fields


def test_avoidance_uses_ties_within_three_years(world):
    expert = _expert(world, employer="巴州审计事务所")
    today = beijing_today()
    services.add_expert_tie(expert, kind=TieKind.EMPLOYMENT, counterpart_type="第三方机构", counterpart_name=None,
                            firm_id=world.firm.id, bureau_id=None, budget_unit_id=None,
                            start_date=date(2015, 1, 1), end_date=today - timedelta(days=365 * 2), note=None,
                            actor=world.expert_user if expert.id == world.expert.id else world.bz_staff)
    services.add_expert_tie(expert, kind="控股股东", counterpart_type="第三方机构", counterpart_name=None,
                            firm_id=world.other_firm.id, bureau_id=None, budget_unit_id=None,
                            start_date=date(2010, 1, 1), end_date=date(2015, 1, 1), note=None, actor=world.bz_staff)
    reasons = services.expert_avoidance_reasons(expert, firm_ids=[world.firm.id, world.other_firm.id])
    assert len(reasons) == 1 and world.firm.name in reasons[0]          # the 2015 tie is too old
    assert services.expert_avoidance_reasons(expert, names=["巴州审计事务所"])  # current employer
    set_setting(world.bz, "expert.tie_years", 1, world.bz_admin)
    assert services.expert_avoidance_reasons(expert, firm_ids=[world.firm.id]) == []


def test_changing_employer_keeps_the_old_one_for_avoidance(world):
    expert = _expert(world, employer="新疆大学")
    data = factories.expert_input(name=expert.name, employer="巴州民政局", id_number=expert.id_number_masked,
                                  birth_year=expert.birth_year)
    services.update_expert(expert, data, world.bz_staff)
    db.session.commit()
    assert services.expert_avoidance_reasons(expert, names=["新疆大学"])
    assert services.expert_avoidance_reasons(expert, names=["巴州民政局"])


def test_unavailable_or_suspended_experts_cannot_be_drawn(world):
    expert = _expert(world)
    assert services.expert_is_drawable(expert) == []
    services.set_expert_availability(expert, available=False, until=beijing_today() + timedelta(days=10),
                                     note="出差", actor=world.bz_staff)
    assert "不可用" in services.expert_is_drawable(expert)[0]
    services.set_expert_availability(expert, available=True, until=None, note=None, actor=world.bz_staff)
    services.change_expert_status(expert, "suspend", "评审中存在敷衍", world.bz_admin)
    assert "暂停" in services.expert_is_drawable(expert)[0]
    with pytest.raises(Conflict):
        services.change_expert_status(expert, "suspend", "again", world.bz_admin)
    with pytest.raises(PermissionDenied):
        services.change_expert_status(expert, "reinstate", "x", world.bz_staff)


def test_the_library_machines_refuse_a_step_from_a_wrong_state_alike(world):
    """The firm library and the expert pool share the engagement machine's step (core.steps): a step from a
    state it does not leave from is a 409 naming the state now and the states it may be taken from."""
    expert = _expert(world)
    assert [a.action for a in services.available_expert_actions(expert, world.bz_admin)] == ["suspend", "remove"]
    assert services.available_expert_actions(expert, world.bz_staff) == []  # expert.status is the admin's
    services.change_expert_status(expert, "remove", "长期联系不上", world.bz_admin)
    assert services.available_expert_actions(expert, world.bz_admin) == []
    with pytest.raises(Conflict) as caught:
        services.change_expert_status(expert, "reinstate", "已恢复联系", world.bz_admin)
    assert caught.value.message == "专家当前状态为“已移出”，不能执行“恢复”（仅在“暂停”时可以）。"
    firm = factories.firm(world.bz)
    with pytest.raises(Conflict) as caught:
        services.change_firm_status(firm, "reinstate", world.bz_admin, reason="已整改")
    assert caught.value.message == f"机构当前状态为“{firm.status.label}”，不能执行“恢复”（仅在“暂停”时可以）。"


def test_an_identity_number_enters_the_pool_once(world):
    number = factories.id_number()
    factories.expert(world.bz, id_number=number)
    with pytest.raises(ValidationFailed) as caught:
        factories.expert(world.kz, id_number=number)
    assert "已在专家库" in caught.value.fields["id_number"]
    assert _count(Expert) == 2  # world.expert plus the first one
