"""Registry audit: the firm library, rosters, the expert pool, walked as an applicant, each bureau, a competitor
and an attacker.

Each test states the rule it holds the code to and its source, and fails on the current code because of the
defect it names.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.timeutil import beijing_today
from evalhub.core.errors import ValidationFailed
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import ProcurementMethod
from evalhub.registry import people
from evalhub.registry import services as registry
from evalhub.registry.models import Firm, FirmStatus, PointKind
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


def _staff(name: str, number: str, role: str = "项目负责人") -> registry.StaffInput:
    return registry.StaffInput(name=name, id_number=number, role=role, years_experience=8)


# --- a library decision's end date ----------------------------------------------------------------------

@pytest.mark.parametrize("action", ["suspend", "blacklist"])
def test_a_suspension_or_blacklisting_with_an_end_date_ends_on_that_date(world, monkeypatch, action):
    """Rule: DOMAIN §3 "the library is dynamic (admit, suspend, remove, blacklist), each change with a reason";
    the status form offers "截止日期 — 暂停或列入黑名单的截止日期" (registry/forms.py ``FirmStatusForm``), stored as
    ``Firm.status_until`` ("end of a suspension", registry/models.py) and shown beside the status on the firm list
    and page ("暂停 至 …"). A decision that says when it ends must end then: from the day after, the firm is back
    in the library for selection (rules.md: eligibility checks "library status now").

    Defect: registry/services.py ``change_firm_status`` stores the end date and nothing ever reads it — no job,
    no check in ``procurement/eligibility.py`` ``exclusion_matrix`` (``firm.status != ADMITTED``). 巴州 suspends
    (or blacklists) the firm "至" a day now past; today the firm is still excluded from every procurement as
    "机构库状态为“暂停”/“黑名单”". A blacklisting has not even a manual way out: no action leaves
    BLACKLISTED, and the firm cannot apply again (its credit code is taken)."""
    today = beijing_today()
    monkeypatch.setattr(registry, "beijing_today", lambda: today - timedelta(days=40))
    registry.change_firm_status(world.firm, action, world.bz_admin, reason="年度检查发现问题，限期整改",
                                effective_until=today - timedelta(days=10))
    monkeypatch.undo()
    db.session.commit()
    label = world.firm.status.label  # 暂停 / 黑名单
    assert world.firm.status_until == today - timedelta(days=10)  # the decision's own end date, now past
    e = factories.engagement(world)
    reasons = eligibility.exclusion_reasons(world.firm, e, ProcurementMethod.OPEN_TENDER)
    assert not any(label in r for r in reasons), (
        f"ten days after the {label} ended ({world.firm.status_until}), the firm is still excluded: {reasons}")


# --- rosters: one person, one firm -----------------------------------------------------------------------

def test_an_application_nobody_admitted_cannot_hold_a_person_off_an_admitted_firms_roster(world):
    """Rule: registry/services.py ``add_staff``: "同一人员不得同时在多家机构执业" — one person practises for one
    firm at a time. Only a firm in a library practises (registry/permissions.py: an applicant's account "serves
    the application only"); DOMAIN §3: the staff roster is reviewed with the application.

    Defect: ``add_staff`` refuses a person active on *any* roster, including that of an application no bureau
    has looked at (anyone may open one through 机构自行申请入库, ``register_firm_application``). An attacker
    registers a firm and puts a competitor's lead evaluator on its roster by their identity number; the admitted
    firm the person works for can then never enter them ("该人员已在其他机构名册中登记"), and so can never name them
    as 主评人 or bid with them. The answer also tells the applicant that the number is on another roster."""
    number = factories.id_number()
    squatter, squatter_user = registry.register_firm_application(
        factories.firm_input(name="抢注名册咨询有限公司"), world.lt, username="squatter1", password="Long-enough-1",
        display_name="抢注者", address="203.0.113.9")
    db.session.flush()
    assert squatter.status == FirmStatus.PENDING
    registry.add_staff(squatter, _staff("张评价", number), squatter_user)
    db.session.commit()
    try:
        registry.add_staff(world.firm, _staff("张评价", number), world.firm_user)
    except ValidationFailed as exc:
        pytest.fail(f"the admitted firm cannot enter its own evaluator: {exc.fields} "
                    "(held by an application nobody admitted)")


# --- a person's record: what a former employer sees --------------------------------------------------------

def test_a_former_employer_does_not_read_the_points_a_person_got_at_a_competitor(world, login):
    """Rule: registry/people.py ``records_visible`` — "The firm sees its own people's records"; a point's note
    and task are the deciding bureau's finding about the firm the person works for now (rules.md, 记分: points go
    "to the people responsible when the deciding service decides"); DOMAIN §3: staff data is personal data.
    The record follows the person *to* the new roster (rules.md), not back to the one they left.

    Defect: ``person_points`` returns every point of the identity number, whichever roster it was given on, and
    the rule ``staff.record.view`` lets the old firm open its former staff row (/people/<id>). 巴州示范 employs
    张评价, who leaves for 克州另一家; 克州 records a serious finding against him on 克州另一家's task. 巴州示范
    (a competitor) opens its old roster row and reads 克州's finding text, the task reference and the competitor's
    name."""
    number = factories.id_number()
    old = registry.add_staff(world.firm, _staff("张评价", number), world.firm_user)
    registry.deactivate_staff(old, world.firm_user, "辞职")
    new = registry.add_staff(world.other_firm, _staff("张评价", number), world.other_firm_user)
    db.session.flush()
    people.add_points(new, PointKind.FINDING_SERIOUS, bureau=world.kz, source_type="finding", source_id=4242,
                      note="定向检查发现满意度问卷数据系编造", actor=world.kz_admin, reference="653000-2025-077")
    db.session.commit()
    body = text(login(world.firm_user).get(f"/people/{old.id}"))
    assert "满意度问卷数据系编造" not in body and "653000-2025-077" not in body, (
        "巴州示范 reads 克州's finding on its competitor's task through a former employee's roster row")


# --- the public registration form ------------------------------------------------------------------------

def test_the_public_registration_form_does_not_reveal_another_bureaus_rejected_application(world, client):
    """Rule: registry/permissions.py — "Applications and rejected firms of an upper bureau are that bureau's
    business only" (IN_LIBRARY); rules.md "An expert names only firms the declarer may see when they are
    applications (pending or rejected)"; the public library (public/views.py ``firms``) lists admitted firms only.

    Defect: registry/services.py ``clean_firm`` answers a code already registered with
    "该统一社会信用代码已登记（<name>，<bureau>，<status>）", and the anonymous self-registration form
    (``/register/firm``) shows it. Anyone typing a company's credit code learns that it applied to 巴州's library
    and was refused (未通过) — a decision that is 巴州's business, shown to no other bureau's users."""
    refused = factories.firm(world.bz, FirmStatus.REJECTED, name="被拒入库评价咨询有限公司")
    db.session.commit()
    data = {"name": "冒用代码测试有限公司", "uscc": refused.uscc, "legal_form": "limited_company",
            "kind": "consultancy", "address": "新疆库尔勒市石化大道 9 号", "legal_representative": "赵六",
            "contact_name": "钱七", "contact_phone": "0996-2111112", "fields": ["finance"],
            "declares_no_major_violation": "y", "bureau_id": str(world.kz.id), "username": "probe01",
            "display_name": "钱七", "password": "Long-enough-1", "password_confirm": "Long-enough-1"}
    response = client.post("/register/firm", data=data)
    body = text(response)
    assert response.status_code == 422 and "统一社会信用代码" in body  # refused, as it should be
    assert refused.status.label not in body and refused.name not in body, (
        "an anonymous visitor learns the firm's name, library and refusal from the registration form")


# --- a refused applicant --------------------------------------------------------------------------------

def test_a_firm_refused_once_for_missing_papers_can_apply_again(world):
    """Rule: DOMAIN §3 "the library is dynamic (admit, suspend, remove, blacklist)" — refusal is a decision on an
    application, not a ban (a ban is 黑名单, with its own step); 政府采购法 第五条 ("任何单位和个人不得采用任何方式，
    阻挠和限制供应商自由进入本地区和本行业的政府采购市场") — the library is the gate to every library draw; the code's
    own message to a firm (registry/services.py ``update_firm``): "其他法人请另行申请入库".

    Defect: a refusal (未通过) is a dead end everywhere. No step leaves REJECTED (``FIRM_STATUS_ACTIONS``), the
    firm's own account may no longer edit or upload (``_firm_edit``: pending/admitted/suspended only), and
    ``clean_firm`` refuses any new application with the same 统一社会信用代码 in any bureau ("该统一社会信用代码已登记
    （…，未通过）"). 轮台县 refuses an application for a missing 培训制度; the firm, papers complete, can neither
    resubmit nor apply again — to 轮台县 or any other library — ever."""
    data = factories.firm_input(name="首次申请材料不全咨询有限公司")
    firm, user = registry.register_firm_application(data, world.lt, username="refused1", password="Long-enough-1",
                                                    display_name="钱七", address="203.0.113.10")
    registry.change_firm_status(firm, "reject", world.lt_admin, reason="缺少培训制度，材料不全")
    db.session.commit()
    again = factories.firm_input(name="首次申请材料不全咨询有限公司", uscc=firm.uscc)
    try:
        registry.register_firm_application(again, world.lt, username="refused1b", password="Long-enough-1",
                                           display_name="钱七", address="203.0.113.10")
        return  # a new application is accepted: fine
    except ValidationFailed as exc:
        refused = exc.fields
    db.session.rollback()
    from evalhub.core import permissions
    resubmit = (registry.available_status_actions(firm, world.lt_admin)
                or permissions.can(user, "firm.edit", firm))
    assert resubmit, (f"a refused firm can neither apply again ({refused}) nor complete and resubmit its "
                      "application: the refusal bars it from every library for good")


# --- recusal relations: who may end one, and from when ---------------------------------------------------

def test_a_firm_cannot_backdate_the_end_of_a_recusal_relation_the_bureau_recorded(world, login):
    """Rule: DOMAIN §3 "Recusal (回避) of a firm: it keeps the books or does tax work for the commissioner or the
    object … These relations are recorded and block assignment automatically"; rules.md "Conflicts up and down
    the tree: a firm's recusal relation … excludes it"; DOMAIN §3 "each change with a reason and an audit trail".

    Defect: registry/services.py ``end_relation`` lets the firm itself end any relation on its page — one the
    bureau recorded included — with any end date not before its start: no reason, no check that the date is not
    in the past, not even that the relation is still open. 巴州 records that the firm keeps 巴州统计局's books
    (代理记账, since last year); the firm ends it "as of" the day it began, and is at once eligible to evaluate
    巴州统计局, the relation rewritten as if it had never been in force."""
    from evalhub.registry.models import FirmRelation, RelationKind

    unit = world.units["巴州统计局"]
    today = beijing_today()
    relation = registry.add_relation(world.firm, kind=RelationKind.ACCOUNTING_AGENT, bureau_id=None,
                                     budget_unit_id=unit.id, start_date=today - timedelta(days=300), end_date=None,
                                     note="检查发现该机构为巴州统计局代理记账", actor=world.bz_staff)
    db.session.commit()
    e = factories.engagement(world, unit="巴州统计局")
    db.session.commit()  # the request below shares this session: its refusal rolls back what is not committed
    assert any("代理记账" in r for r in eligibility.exclusion_reasons(world.firm, e, ProcurementMethod.OPEN_TENDER))
    start = relation.start_date.isoformat()
    login(world.firm_user).post(f"/firms/{world.firm.id}/relations/{relation.id}/end", data={"end_date": start})
    db.session.expire_all()
    relation = db.session.get(FirmRelation, relation.id)
    reasons = eligibility.exclusion_reasons(world.firm, e, ProcurementMethod.OPEN_TENDER)
    assert relation.end_date is None or relation.end_date >= today, (
        f"the firm ended the bureau's record of its 代理记账 relation as of {relation.end_date} (its first day); "
        f"its exclusions for 巴州统计局 are now {reasons}")


# --- an expert suspended: the seats they still hold ------------------------------------------------------

def _opened(world, bidders: str):
    """A consultation of 巴州 with two bids, opened: a committee may be drawn for it (as tests/test_conflicts_tree.py)."""
    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P

    e = factories.engagement(world)
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
        method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, 10)), world.bz_staff))
    for name, price in (("甲", "40"), ("乙", "45")):
        _firm, user, staff = factories.bidder(world, f"{bidders}{name}")
        factories.bid(p, user, staff, price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    return p


def test_an_expert_suspended_after_being_seated_on_a_bid_committee_no_longer_scores_there(world):
    """Rule: rules.md "a seat released when an expert is suspended, removed or disabled is replaced from the same
    recorded pool", and "the rules are asked again of whom it picks at the reveal: … a bid committee's member …
    who no longer qualifies (suspended, disabled, tied since) does not sit"; registry/services.py
    ``on_expert_unavailable`` ("whenever an expert is suspended, removed from the pool or their login is
    disabled"); 财政部令第87号 第五十条 (a member who cannot go on is replaced: "依法补足后继续评标").

    Defect: the only handler of ``on_expert_unavailable`` is review's (panels). 巴州 suspends an expert for
    misconduct the day after the committee was seated; registry/services.py ``change_expert_status`` releases
    no committee seat and procurement/services.py ``record_technical_scores`` asks nothing of the member, so the
    suspended expert's scores are taken into the ranking as if nothing had happened."""
    from evalhub.core.errors import Conflict
    from evalhub.procurement import services as P
    p = _opened(world, "停职评委测试机构")
    for i in range(4):
        factories.expert(world.bz, name=f"评委{i}", employer=f"新疆某学院{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    member = next(m for m in p.committee if m.expert_id is not None)
    registry.change_expert_status(member.expert, "suspend", "在其他项目评审中收受供应商财物，暂停评审资格",
                                  world.bz_admin)
    db.session.commit()
    factories.committee_clears_flags(p, world.bz_staff)
    scores = {b.id: {i.id: i.max_points for i in p.rubric} for b in p.bids}
    try:
        P.record_technical_scores(p, member, scores, world.bz_staff)
    except Conflict:
        return  # refused: the suspended member no longer scores
    db.session.flush()
    still = [m.name for m in p.committee if m.expert_id == member.expert_id]
    assert not still, (f"suspended expert {member.name} still sits on the committee and their scores were "
                       "recorded for the ranking")


# --- one person, one roster: two firms entering the same person at once ------------------------------------

def test_two_firms_entering_the_same_person_at_the_same_moment_get_one_roster_row(app, world, monkeypatch):
    """Rule: registry/services.py ``add_staff`` — "同一人员不得同时在多家机构执业"; docs/architecture.md "A rule
    that counts, then writes ("one X per Y" …): take ``core.concurrency.serialise(key)`` before counting, so that
    simultaneous requests on several workers see each other".

    Defect: ``add_staff`` looks for an active roster row of the identity number's digest, then inserts, with no
    ``serialise`` and no unique index on (digest, active) (registry/models.py ``FirmStaff``). Two firms entering
    the same evaluator at the same moment both succeed: the person is then active on two rosters, can be named on
    both firms' teams, and the collusion check's "same person on two teams" becomes ordinary."""
    from evalhub.registry.models import FirmStaff

    number = factories.id_number()
    firm_id, other_id = world.firm.id, world.other_firm.id
    user_id, other_user_id = world.firm_user.id, world.other_firm_user.id
    digest = registry.protect_id_number(number)["id_number_digest"]
    db.session.commit()

    # Both requests have looked for the person before either writes (the moment the race needs, made certain):
    # ``add_staff`` refuses, once, after its look-up; the wait gives up after 5 s, so a fix that serialises the
    # two requests (the second waits for the first before it looks) is not held up here.
    import threading

    both_looked = threading.Barrier(2, timeout=5)
    refuse = registry._raise_if

    def looked_then_refuse(errors):
        try:
            both_looked.wait()
        except threading.BrokenBarrierError:
            pass
        return refuse(errors)

    monkeypatch.setattr(registry, "_raise_if", looked_then_refuse)

    def enter(fid, uid):
        from evalhub.core.errors import Conflict
        from evalhub.core.models import User

        def call():
            try:
                registry.add_staff(db.session.get(Firm, fid), _staff("赵同时", number), db.session.get(User, uid))
            except ValidationFailed as exc:  # the second one refused: counted as an outcome
                raise Conflict(exc.message) from exc
        return call

    outcomes = factories.at_once(app, enter(firm_id, user_id), enter(other_id, other_user_id))
    db.session.expire_all()
    rows = db.session.execute(sa.select(FirmStaff.firm_id).where(FirmStaff.id_number_digest == digest,
                                                                 FirmStaff.active.is_(True))).scalars().all()
    assert len(rows) <= 1, f"the same person is active on {len(rows)} rosters at once (outcomes {outcomes})"
