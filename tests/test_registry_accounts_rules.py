"""Rules of the registry and accounts: each test states a rule, its source, and the case that tests it."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.enums import BureauLevel
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import Bureau, User
from evalhub.extensions import db
from tests import factories


def test_an_import_cannot_make_a_bureau_that_has_a_parent_a_region(world):
    """core/organisations.py ``import_organisations``: "自治区（省）级财政局不能有上级" and an import cannot change
    where a bureau sits ("不能通过导入改变隶属关系"). A 自治区 row with no parent code for the existing county
    轮台县 (under 巴州) is refused, even from the command line (actor None): 轮台县 stays a county, as rules that
    read the level (``audit.checkpoints``) take it."""
    from evalhub.core.organisations import import_organisations

    rows = [{"code": "652822", "name": "轮台县财政局", "short_name": "轮台县", "level": "自治区", "parent_code": ""}]
    with pytest.raises(ValidationFailed):
        import_organisations(rows, [], actor=None)
    db.session.rollback()
    assert db.session.get(Bureau, world.lt.id).level == BureauLevel.COUNTY


def test_a_bureau_admin_cannot_rename_its_own_bureau_by_import(world):
    """core/permissions.py "bureau.manage": "Bureaus are created and renamed by the system admin, or by a bureau's
    admin for the bureaus below it" — below it, not the bureau itself. An import by 轮台县's administrator that
    renames 轮台县 is refused ("无权") and the name stays."""
    from evalhub.core.organisations import import_organisations

    rows = [{"code": "652822", "name": "轮台县人民政府财政局（改）", "short_name": "轮台", "level": "县/市",
             "parent_code": "652800"}]
    with pytest.raises(ValidationFailed) as caught:
        import_organisations(rows, [], actor=world.lt_admin)
    assert "无权" in caught.value.message
    db.session.rollback()
    assert db.session.get(Bureau, world.lt.id).name == "轮台县财政局"


def test_an_import_cannot_put_a_bureau_level_at_or_below_its_existing_children(world):
    """core/organisations.py: "Levels strictly increase downwards" (上级的层级须高于本级). Re-importing 巴州 as
    县/市 would leave its counties 库尔勒市 and 轮台县 (县/市) under a 县/市: the import is refused and 巴州 stays a
    prefecture."""
    from evalhub.core.organisations import import_organisations

    rows = [{"code": "652800", "name": "巴音郭楞蒙古自治州财政局", "short_name": "巴州", "level": "县/市",
             "parent_code": "650000"}]
    with pytest.raises(ValidationFailed):
        import_organisations(rows, [], actor=world.bz_admin)
    db.session.rollback()
    assert db.session.get(Bureau, world.bz.id).level == BureauLevel.PREFECTURE


def test_editing_an_expert_keeps_the_birth_year_consistent_with_the_identity_number(world):
    """docs/rules.md "Expert eligibility: age" (expert.max_age, DOMAIN §4 ≤ 65) is judged on ``birth_year``, which
    entry, API, import and edit hold to the identity number ("出生年份与身份证号码不一致", registry/services.py
    clean_expert; the import template: "出生年份须与身份证一致"). An edit that sends the masked number back
    unchanged is checked too: a 1950-born expert re-entered as born 1975 is refused on ``birth_year``."""
    from evalhub.registry import services
    from evalhub.registry.models import Degree, ProfessionalTitle

    expert = factories.expert(world.bz, id_number=factories.id_number(birth="19500301"), birth_year=1950)
    assert any("年龄" in r for r in services.expert_eligibility(expert))
    db.session.commit()
    data = services.ExpertInput(name=expert.name, id_number=expert.id_number_masked, employer=expert.employer,
                                title=ProfessionalTitle.SENIOR, degree=Degree.MASTER, years_in_field=15,
                                birth_year=1975, fields=list(expert.fields))
    with pytest.raises(ValidationFailed) as caught:
        services.update_expert(expert, data, world.bz_staff)
    assert "birth_year" in caught.value.fields
    db.session.rollback()


def test_firm_self_registration_refuses_a_username_that_differs_only_in_case(client, world):
    """Usernames are unique whatever their case (core/accounts.py ``_check_new_account``: "该用户名已被使用", checked
    with lower(); the same rule names expert and firm logins, ``registry.services._free_username``). The public
    firm registration (registry/services.py ``register_firm_application``) holds to it too: "BZ.ADMIN" beside the
    bureau administrator "bz.admin" is refused (422)."""
    data = {"name": "大小写用户名测试有限公司", "uscc": factories.uscc(), "legal_form": "limited_company",
            "kind": "consultancy", "address": "新疆库尔勒市石化大道 9 号", "legal_representative": "赵六",
            "contact_name": "钱七", "contact_phone": "0996-2111112", "fields": ["finance"],
            "declares_no_major_violation": "y", "bureau_id": str(world.lt.id), "username": "BZ.ADMIN",
            "display_name": "钱七", "password": "Long-enough-1", "password_confirm": "Long-enough-1"}
    response = client.post("/register/firm", data=data)
    assert response.status_code == 422, response.status_code
    db.session.rollback()
    same = db.session.execute(sa.select(User.username).where(sa.func.lower(User.username) == "bz.admin")).scalars().all()
    assert same == ["bz.admin"]


def test_changing_an_experts_employer_does_not_end_a_declared_employment_with_a_firm(world):
    """docs/rules.md "Expert avoidance" (财政部令第87号 第六十二条, ``expert.tie_years``): a declared tie counts while
    current and for N years after it ends. A change of 工作单位 closes the old *employer* tie only
    (``registry.services.update_expert``: "kept: a former employer still counts for 3 years"); a still-current
    employment the expert declared with a firm stays open and still counts N years on."""
    from datetime import timedelta

    from evalhub.core.timeutil import beijing_today
    from evalhub.registry import services
    from evalhub.registry.models import Degree, ProfessionalTitle, TieKind

    expert = factories.expert(world.bz, employer="新疆财经大学")
    tie = services.add_expert_tie(expert, kind=TieKind.EMPLOYMENT, counterpart_type="firm", counterpart_name=None,
                                  firm_id=world.firm.id, bureau_id=None, budget_unit_id=None,
                                  start_date=beijing_today() - timedelta(days=400), end_date=None, note="兼职",
                                  actor=world.bz_staff)
    db.session.commit()
    data = services.ExpertInput(name=expert.name, id_number=expert.id_number_masked, employer="新疆大学",
                                title=ProfessionalTitle.SENIOR, degree=Degree.MASTER, years_in_field=15,
                                birth_year=1970, fields=list(expert.fields))
    services.update_expert(expert, data, world.bz_staff)
    db.session.commit()
    assert tie.end_date is None, f"the declared employment with {world.firm.name} must stay open (end_date {tie.end_date})"
    later = beijing_today() + timedelta(days=4 * 366)
    assert services.expert_avoidance_reasons(expert, firm_ids=[world.firm.id], on=later)


def test_an_import_names_a_duplicate_code_written_with_a_space_instead_of_failing_the_job(world, login):
    """registry/imports.py: "All rows are checked first; the error report lists every problem by row number in
    Chinese". Duplicates are found on the USCC as stored, normalised (``validate_uscc`` drops spaces): two rows of
    the same firm, one with a space, are reported on row 3 ("与第 2 行重复") and nothing is imported — the job
    does not die on the unique index (IntegrityError)."""
    from evalhub.core.models import Job
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload, xlsx

    code = factories.uscc()
    client = login(world.bz_staff)
    before = db.session.execute(sa.select(sa.func.count(Firm.id))).scalar_one()
    response = upload(client, "firms", xlsx(FIRM_COLUMNS, [firm_row(uscc=code), firm_row(uscc=code[:9] + " " + code[9:])]))
    assert response.status_code == 302
    db.session.rollback()
    job = db.session.execute(sa.select(Job).order_by(Job.id.desc())).scalars().first()
    assert db.session.execute(sa.select(sa.func.count(Firm.id))).scalar_one() == before
    assert "IntegrityError" not in (job.message or ""), job.message
    assert [e["row"] for e in (job.result or {}).get("errors", [])] == [3], job.result


def test_no_new_activation_link_for_an_expert_removed_from_the_pool(world):
    """registry/services.py ``open_expert_account``: "该专家已移出专家库，不能开通账号" (the page hides 开通账号 for a
    removed expert); ``reissue_expert_link`` holds to it too: an account opened before the removal and not yet
    activated gets no fresh activation link (Conflict), so the removed expert cannot set a password."""
    from evalhub.core.errors import Conflict
    from evalhub.registry import services

    expert = factories.expert(world.bz)
    db.session.commit()
    services.open_expert_account(expert, world.bz_staff)
    services.change_expert_status(expert, "remove", "弄虚作假", world.bz_admin)
    db.session.commit()
    with pytest.raises(Conflict):
        services.reissue_expert_link(expert, world.bz_staff)
    db.session.rollback()


def test_no_new_activation_link_for_a_blacklisted_firm(world):
    """registry/services.py ``open_firm_account``: no account for a firm that is rejected, removed or blacklisted
    ("机构当前状态为…，不能开通账号"); ``reissue_firm_link`` holds to the same statuses: a firm blacklisted after the
    bureau opened its (not yet activated) account gets no fresh activation link (Conflict)."""
    from evalhub.core.errors import Conflict
    from evalhub.registry import services

    firm = factories.firm(world.bz)
    db.session.commit()
    services.open_firm_account(firm, world.bz_staff)
    services.change_firm_status(firm, "blacklist", world.bz_admin, reason="串通投标")
    db.session.commit()
    with pytest.raises(Conflict):
        services.reissue_firm_link(firm, world.bz_staff)
    db.session.rollback()


def test_a_tie_cannot_name_a_firm_the_declarer_may_not_see(world, login):
    """registry/permissions.py: "Applications and rejected firms of an upper bureau are that bureau's business only"
    (the firm row scope); the tie page offers only ``scoped(Firm)``, and ``registry.services.add_expert_tie`` takes
    only a firm in that scope: an expert who posts the id of 克州's pending application is refused (422) and does
    not read its name back on their own page."""
    from evalhub.registry.models import FirmStatus

    secret = factories.firm(world.kz, FirmStatus.PENDING, name="克州尚在审核的申请机构")
    db.session.commit()
    client = login(world.expert_user)
    response = client.post(f"/experts/{world.expert.id}/ties/new",
                           data={"kind": "interest", "counterpart_type": "firm", "firm_id": str(secret.id),
                                 "start_date": "2020-01-01"})
    page = client.get(f"/experts/{world.expert.id}").get_data(as_text=True)
    assert "克州尚在审核的申请机构" not in page
    assert response.status_code == 422, response.status_code


def test_a_link_issued_before_an_expert_left_the_pool_no_longer_works(world):
    """core/accounts.py ``check_link``/``use_link`` ask the same rule as ``issue_link`` (``link_refusal``), and
    registry/services.py voids the unused links of an expert removed (or a firm rejected, removed, blacklisted):
    the activation link opened before the removal says why it no longer works and sets no password."""
    from evalhub.core import accounts
    from evalhub.core.errors import Conflict
    from evalhub.core.models import AccountLink
    from evalhub.registry import services

    expert = factories.expert(world.bz)
    db.session.commit()
    user, token = services.open_expert_account(expert, world.bz_staff)
    db.session.commit()
    assert accounts.check_link(token, accounts.LinkPurpose.ACTIVATION).ok
    services.change_expert_status(expert, "remove", "弄虚作假", world.bz_admin)
    db.session.commit()
    check = accounts.check_link(token, accounts.LinkPurpose.ACTIVATION)
    assert not check.ok and "移出专家库" in check.problem
    with pytest.raises(Conflict):
        accounts.use_link(token, accounts.LinkPurpose.ACTIVATION, "Tianshan-2025!", "Tianshan-2025!")
    db.session.rollback()
    live = db.session.execute(sa.select(AccountLink).where(AccountLink.user_id == user.id,
                                                           AccountLink.revoked_at.is_(None))).scalars().all()
    assert live == [] and db.session.get(User, user.id).awaiting_activation
