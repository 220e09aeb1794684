"""Witnessed two-phase draws (issue 14, "Draws nobody can steer"): announce → witnesses' numbers → reveal.

Decisions these tests pin down (core/draws.py):
- the operator (whoever names the witnesses and reveals) is never a witness: naming oneself is refused, and a
  witness may not reveal — the two sides are always different people; one witness is enough;
- the witness list is frozen once the first number is in; each number is entered once, by the witness
  signed in as themselves; the reveal needs every number and happens once (compare-and-set);
- automatic draws (a replacement after a decline, a tie-break) are announced and wait for the bureau.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from evalhub.core import audit, draws
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import Draw, DrawStatus
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import ProcurementMethod as M
from evalhub.review import services as R
from evalhub.review.models import PanelStatus
from tests import factories

KIND = "test"


def _announce(world, *, actor=None, bureau=None, k=2, n=12, exclusions=None, secret=None, witnesses=()):
    draws.on_drawn(KIND, public=True)(factories._no_effect)
    actor = actor or world.krl_admin
    return draws.announce(KIND, "测试抽取", {i: f"候选人{i}" for i in range(1, n + 1)}, k,
                          exclusions if exclusions is not None else {3: ["回避：同一单位"]}, actor=actor,
                          bureau_id=(bureau or world.krl).id, secret=secret, witnesses=list(witnesses))


# --- announce ---------------------------------------------------------------------------------------

def test_announce_freezes_names_exclusions_and_a_commitment_without_showing_the_secret(world):
    record = _announce(world)
    assert record.status == DrawStatus.ANNOUNCED and record.seed is None and record.result_ids == []
    assert record.commitment == draws.sha256(record.secret)
    assert record.candidate_hash == draws.sha256(draws.canonical(record))
    assert record.candidate_names["5"] == "候选人5" and record.exclusions == [{"id": 3, "reasons": ["回避：同一单位"]}]
    event = audit.history("draw", record.id)[0]
    assert event.action == "draw.announced" and record.secret not in str(event.payload)
    assert event.payload["commitment"] == record.commitment and event.payload["candidate_hash"] == record.candidate_hash


def test_the_draw_page_shows_the_commitment_and_names_but_not_the_secret_before_the_reveal(world, login):
    record = _announce(world, witnesses=[world.krl_staff])
    db.session.commit()
    body = login(world.krl_staff).get(f"/draws/{record.id}").get_data(as_text=True)
    assert record.commitment in body and record.candidate_hash in body and "候选人7" in body
    assert record.secret not in body and "回避：同一单位" in body


# --- witnesses ------------------------------------------------------------------------------------

def test_the_operator_may_not_witness_and_witnesses_are_bureau_side_accounts(world):
    record = _announce(world)
    with pytest.raises(ValidationFailed) as caught:
        draws.name_witnesses(record, [world.krl_admin], world.krl_admin)
    assert "操作人不能担任" in caught.value.message
    with pytest.raises(ValidationFailed):
        draws.name_witnesses(record, [world.firm_user], world.krl_admin)
    with pytest.raises(ValidationFailed):
        draws.name_witnesses(record, [], world.krl_admin)
    with pytest.raises(PermissionDenied):  # another bureau names nobody here
        draws.name_witnesses(record, [world.krl_staff], world.kz_admin)
    draws.name_witnesses(record, [world.krl_staff, world.region_staff], world.krl_admin)
    assert [w.user_id for w in record.witnesses] == [world.krl_staff.id, world.region_staff.id]


def test_only_a_named_witness_enters_a_number_once_and_the_list_is_then_frozen(world):
    record = _announce(world, witnesses=[world.krl_staff, world.bz_staff])
    with pytest.raises(PermissionDenied):
        draws.enter_number(record, world.krl_admin, "123")
    with pytest.raises(ValidationFailed):
        draws.enter_number(record, world.krl_staff, "12a")
    with pytest.raises(ValidationFailed):
        draws.enter_number(record, world.krl_staff, "1" * 19)
    draws.enter_number(record, world.krl_staff, " 00042 ")
    assert record.witnesses[0].number == "42"
    with pytest.raises(Conflict):
        draws.enter_number(record, world.krl_staff, "43")
    with pytest.raises(Conflict):
        draws.name_witnesses(record, [world.region_staff], world.krl_admin)


def test_reveal_needs_every_number_is_not_for_a_witness_and_happens_once(world):
    record = _announce(world)
    with pytest.raises(Conflict):  # no witnesses yet
        draws.reveal(record, world.krl_admin)
    draws.name_witnesses(record, [world.krl_staff, world.bz_staff], world.krl_admin)
    draws.enter_number(record, world.krl_staff, "7")
    with pytest.raises(Conflict) as caught:
        draws.reveal(record, world.krl_admin)
    assert "未输入数字" in caught.value.message and record.status == DrawStatus.ANNOUNCED
    draws.enter_number(record, world.bz_staff, "8")
    with pytest.raises(PermissionDenied):
        draws.reveal(record, world.krl_staff)
    with pytest.raises(PermissionDenied):
        draws.reveal(record, world.kz_admin)
    draws.reveal(record, world.krl_admin)
    assert record.status == DrawStatus.DRAWN
    assert record.seed == draws.seed_of(record.secret, record.candidate_hash, ["7", "8"])
    assert record.result_ids == draws.rank(record.seed, [i for i in range(1, 13) if i != 3])[:2]
    assert 3 not in record.result_ids and draws.verify(record).ok
    with pytest.raises(Conflict):
        draws.reveal(record, world.krl_admin)


def test_a_reveal_that_lost_the_race_is_answered_409_not_drawn_twice(world):
    record = _announce(world, witnesses=[world.krl_staff])
    draws.enter_number(record, world.krl_staff, "5")
    # another worker revealed in between: the row moved, this session's copy did not
    db.session.execute(sa.update(Draw).where(Draw.id == record.id).values(status=DrawStatus.DRAWN)
                       .execution_options(synchronize_session=False))
    with pytest.raises(Conflict):
        draws.reveal(record, world.krl_admin)
    assert not [e for e in audit.history("draw", record.id) if e.action == "draw.performed"]


# --- verification catches tampering -----------------------------------------------------------------

def _drawn(world):
    record = _announce(world, witnesses=[world.krl_staff])
    draws.enter_number(record, world.krl_staff, "2026")
    draws.reveal(record, world.krl_admin)
    db.session.commit()
    assert draws.verify(record).ok
    return record


@pytest.mark.parametrize("tamper, expected", [
    ("secret", "承诺值"), ("seed", "种子"), ("candidates", "候选名单"), ("names", "候选名单"),
    ("result", "抽取结果"), ("number", "种子"),
])
def test_verify_catches_a_tampered_record(app, world, tamper, expected):
    record = _drawn(world)
    eligible = draws.eligible_ids(record)
    if tamper == "secret":  # a new secret with a seed and result that follow from it
        record.secret = "f" * 64
        record.seed = draws.seed_of(record.secret, record.candidate_hash, ["2026"])
        record.result_ids = draws.rank(record.seed, eligible)[:2]
    elif tamper == "seed":
        record.seed = next(f"forged{n}" for n in range(1000) if draws.rank(f"forged{n}", eligible)[:2] != record.result_ids)
        record.result_ids = draws.rank(record.seed, eligible)[:2]
    elif tamper == "candidates":
        record.candidate_ids = record.candidate_ids[:-1]
    elif tamper == "names":
        record.candidate_names = {**record.candidate_names, "5": "另一个人"}
    elif tamper == "result":
        record.result_ids = list(reversed(record.result_ids))
    else:
        record.witnesses[0].number = "2027"
    db.session.commit()
    check = draws.verify(record)
    assert not check.ok and any(expected in m for m in check.mismatches + ([] if check.rerun_ok else ["抽取结果"])), check
    result = app.test_cli_runner().invoke(args=["evalhub", "draws", "verify", str(record.id)])
    assert result.exit_code == 1, result.output


def test_cli_verify_prints_commitment_witness_numbers_and_agrees(app, world):
    record = _drawn(world)
    result = app.test_cli_runner().invoke(args=["evalhub", "draws", "verify", str(record.id)])
    assert result.exit_code == 0 and record.commitment in result.output and "2026" in result.output, result.output


# --- the property: nobody steers after the commitment --------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=st.lists(st.integers(min_value=0, max_value=10 ** 18 - 1), min_size=1, max_size=3),
       secret=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
       move=st.sampled_from(["secret", "candidates", "params", "operator", "nothing"]),
       chosen=st.text(alphabet="0123456789abcdef", min_size=1, max_size=64))
def test_no_operator_choice_after_the_commitment_changes_a_verifying_result(world, numbers, secret, move, chosen):
    """The operator chooses the secret BEFORE the witnesses' numbers exist (at the announcement). With the
    witnesses' numbers fixed, whatever the operator chooses afterwards — a different secret, a changed
    candidate list, the handler's parameters, who reveals — either leaves the result as the committed values
    decide it, or the draw no longer verifies."""
    witnesses = [world.krl_staff, world.bz_staff, world.region_staff][:len(numbers)]
    record = _announce(world, secret=secret, witnesses=witnesses, n=15)
    honest = draws.rank(draws.seed_of(secret, record.candidate_hash, [str(n) for n in numbers]),
                        draws.eligible_ids(record))[:record.k]
    for witness, number in zip(witnesses, numbers):
        draws.enter_number(record, witness, number)
    operator = world.krl_admin
    if move == "secret":
        record.secret = chosen
    elif move == "candidates":
        record.candidate_ids = sorted(set(record.candidate_ids) | {100 + len(chosen)})
        record.candidate_names = {**record.candidate_names, str(100 + len(chosen)): chosen}
    elif move == "params":
        record.params = {"chosen": chosen}
    elif move == "operator":
        operator = world.bz_admin if len(chosen) % 2 else world.krl_admin  # an upper bureau may not, either
    try:
        draws.reveal(record, operator)
    except PermissionDenied:
        return  # the upper bureau is not this draw's operator: nothing drawn
    assert record.result_ids == honest or not draws.verify(record).ok


# --- callers: announced draws wait for the bureau ------------------------------------------------------

def test_a_panel_is_formed_only_when_its_witnessed_draw_is_revealed(world):
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    factories.panel_experts(e, 4)
    record = R.form_panel(e, world.bz_staff, size=3)
    assert isinstance(record, Draw) and record.status == DrawStatus.ANNOUNCED
    assert R.latest_submission(e, R.SubmissionKind.REPORT).panel is None
    with pytest.raises(Conflict):  # announced once per version
        R.form_panel(e, world.bz_staff, size=3)
    draws.name_witnesses(record, [world.bz_admin], world.bz_staff)
    draws.enter_number(record, world.bz_admin, "31415")
    draws.reveal(record, world.bz_staff)
    panel = record.effect
    assert panel.draw_id == record.id and sorted(i.expert_id for i in panel.invitations) == sorted(record.result_ids)
    assert not draws.is_public(record)  # confidential to the bureau while the review runs
    panel.status = PanelStatus.CLOSED
    assert draws.is_public(record)


def test_a_decline_announces_a_replacement_that_waits_on_the_bureaus_page(world, login):
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    factories.panel_experts(e, 5)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    invitation = panel.invitations[0]
    record = R.respond(invitation, factories.expert_user(invitation.expert_id), accept=False, reason="出差")
    assert record.status == DrawStatus.ANNOUNCED and record.kind == "review_replacement"
    assert record.created_by_id is None  # nobody on the bureau's side chose to draw: the expert declined
    db.session.commit()
    page = login(world.bz_staff).get("/draws?status=announced").get_data(as_text=True)
    assert f"#{record.id}" in page or f">{record.id}<" in page
    new = factories.witnessed(record)
    assert len(new) == 1 and new[0].expert_id not in {invitation.expert_id}


def test_a_firm_lottery_awards_at_the_reveal_and_is_public_then(world, client):
    e = factories.engagement(world)
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff)
    assert p.award is None and p.draw.status == DrawStatus.ANNOUNCED
    db.session.commit()
    assert client.get(f"/public/draws/{p.draw_id}").status_code == 404  # not drawn: nothing to publish
    award = factories.witnessed(p.draw)
    db.session.commit()
    assert award.firm_id == p.draw.result_ids[0] and p.award is award
    body = client.get(f"/public/draws/{p.draw_id}").get_data(as_text=True)
    assert p.draw.secret in body and world.firm.name in body


def test_a_campaign_draws_its_inspectors_from_the_witnessed_seed(world):
    from evalhub.supervision import services as V
    from tests.test_credit_supervision_services import _completed

    _completed(world)
    record = V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100)
    assert record.status == DrawStatus.ANNOUNCED
    campaign = factories.witnessed(record)
    inspector_draws = [db.session.get(Draw, i.draw_id) for inspection in campaign.inspections for i in inspection.inspectors]
    assert inspector_draws and all(d.derived_from_id == record.id and draws.verify(d).ok for d in inspector_draws)
    assert not draws.is_public(record)
    V.publish_campaign_list(campaign, world.bz_staff)
    # the inspectors' names stay out of public view until the results (reviewer R1: the inspected firm reads them)
    assert draws.is_public(record) and not draws.is_public(inspector_draws[0])
    record.seed = "0" * 64  # the parent's seed replaced: every derived draw fails too
    assert not draws.verify(inspector_draws[0]).ok


# --- pages: who may do what ------------------------------------------------------------------------------

def test_draw_pages_refuse_the_wrong_role_and_the_wrong_organisation(world, login, client):
    record = _announce(world)  # 库尔勒市's draw
    db.session.commit()
    draw_id = record.id
    for user in (world.firm_user, world.expert_user, world.kz_admin, world.bz_admin):  # role; other bureau; upper bureau
        assert login(user).post(f"/draws/{draw_id}/witnesses", data={"witnesses": [world.krl_staff.id]}).status_code == 403
        assert login(user).post(f"/draws/{draw_id}/reveal").status_code == 403
    refused = login(world.krl_admin).post(f"/draws/{draw_id}/witnesses", data={"witnesses": [world.firm_user.id]})
    assert refused.status_code == 422 and "不在可选名单中" in refused.get_data(as_text=True)
    assert login(world.krl_admin).post(f"/draws/{draw_id}/witnesses",
                                       data={"witnesses": [world.krl_staff.id, world.region_staff.id]}).status_code == 302
    for user in (world.krl_admin, world.kz_admin, world.firm_user):
        assert login(user).post(f"/draws/{draw_id}/number", data={"number": "1"}).status_code == 403
    bad = login(world.krl_staff).post(f"/draws/{draw_id}/number", data={"number": "一二三"})
    assert bad.status_code == 422 and "1 至 18 位数字" in bad.get_data(as_text=True)
    assert login(world.krl_staff).post(f"/draws/{draw_id}/number", data={"number": "11"}).status_code == 302
    assert login(world.krl_admin).post(f"/draws/{draw_id}/reveal").status_code == 409  # region_staff has not entered
    assert login(world.region_staff).post(f"/draws/{draw_id}/number", data={"number": "22"}).status_code == 302
    assert login(world.krl_staff).post(f"/draws/{draw_id}/reveal").status_code == 403  # a witness, not the operator
    assert login(world.krl_admin).post(f"/draws/{draw_id}/reveal").status_code == 302
    db.session.expire_all()
    record = db.session.get(Draw, draw_id)
    assert record.status == DrawStatus.DRAWN and draws.verify(record).ok
    assert login(world.krl_admin).post(f"/draws/{draw_id}/reveal").status_code == 409


def test_a_witness_comes_from_the_draws_bureau_or_one_above_it_on_every_path(world, login):
    """The page offers the staff of the draw's bureau and the bureaus above it; the service holds the same rule (a
    sibling county's officer, named through the service, was accepted before). A witness is told on the page."""
    record = _announce(world)
    db.session.commit()
    with pytest.raises(ValidationFailed, match="不是本次抽取所在财政局或其上级财政局的人员"):
        draws.name_witnesses(record, [world.lt_admin], world.krl_admin)  # 轮台县: a sibling county
    db.session.rollback()
    draws.name_witnesses(record, [world.bz_staff], world.krl_admin)  # 巴州: the bureau above
    db.session.commit()
    page = login(world.bz_staff).get(f"/draws/{record.id}")
    assert page.status_code == 200 and "您是本次抽取的监督人" in page.get_data(as_text=True)
    waiting = login(world.bz_staff).get("/draws").get_data(as_text=True)
    assert f"#{record.id} 测试抽取" in waiting


def test_expert_panel_draws_stay_confidential_until_the_review_ends(world, login, client):
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    panel = factories.own_panel(e, n=3)
    db.session.commit()
    assert client.get(f"/public/draws/{panel.draw_id}").status_code == 404
    assert login(world.firm_user).get(f"/draws/{panel.draw_id}").status_code == 403
    assert login(world.kz_admin).get(f"/draws/{panel.draw_id}").status_code == 403
    assert login(world.bz_staff).get(f"/draws/{panel.draw_id}").status_code == 200


def test_witnesses_are_told_and_an_automatic_draw_tells_the_bureau(world):
    from evalhub.core.models import Notification

    def inbox(user):
        return [n.title for n in db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)).scalars()]

    record = _announce(world)
    draws.name_witnesses(record, [world.krl_staff], world.krl_admin)
    assert any("请担任随机抽取监督人" in t for t in inbox(world.krl_staff)) and not inbox(world.krl_admin)
    draws.on_drawn(KIND, public=True)(factories._no_effect)
    automatic = draws.announce(KIND, "补抽测试", {1: "甲", 2: "乙"}, 1, bureau_id=world.krl.id)
    assert any("随机抽取待揭晓" in t for t in inbox(world.krl_admin)) and automatic.created_by_id is None


def test_a_tie_for_first_is_announced_and_awarded_only_at_the_witnessed_reveal(world):
    from tests.test_procurement_services import tied_consultation

    p = tied_consultation(world)
    record = P.award_procurement(p, world.bz_staff, "并列")
    assert isinstance(record, Draw) and record.kind == "procurement_tiebreak" and p.award is None
    # recorded by bid number (the draw is public and its candidate hash published); the bureau's page names them
    assert sorted(record.candidate_names.values()) == sorted(f"投标 #{i}" for i in record.candidate_ids)
    assert sorted(draws.display_names(record, public=False).values()) == sorted(
        f"投标 #{b.id}（{b.firm.name}）" for b in p.bids if b.id in record.candidate_ids)
    with pytest.raises(Conflict):  # the tie-break is announced once
        P.award_procurement(p, world.bz_staff, "并列")
    award = factories.witnessed(record, operator=world.bz_staff, witnesses=[world.bz_admin])
    assert award.bid_id == record.result_ids[0] and f"#{record.id}" in award.reasons and draws.is_public(record)


def test_a_tie_break_after_a_re_evaluation_that_changed_the_tie_cites_the_first(world):
    """The first lot stands only for the same bids tied on the same score and price; a tie that changed is drawn
    again, citing the first lot and why (DESIGN.md: a redraw cites its reason)."""
    from tests.test_procurement_services import rescore, tied_consultation
    from tests.test_procurement_law import EVIDENCE
    from evalhub.procurement.models import Award

    p = tied_consultation(world)
    first = P.award_procurement(p, world.bz_staff, "并列第一")
    award = factories.witnessed(first, operator=world.bz_staff, witnesses=[world.bz_admin])
    loser = next(b for b in p.bids if b.id in first.candidate_ids and b.id != award.bid_id)
    user = db.session.execute(sa.select(factories.User).where(factories.User.firm_id == loser.firm_id)).scalars().first()
    challenge = P.file_challenge(p, user, "评分记录存在错误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，评分记录有误，重新评审。", "reevaluate")
    db.session.flush()
    rescore(world, p, {"甲": 90, "乙": 90, "丙": 80})  # still 甲 and 乙, on other scores
    again = P.award_procurement(p, world.bz_staff, "重新评审后仍并列第一")
    assert not isinstance(again, Award) and again.redraw_of_id == first.id and "得分" in again.redraw_reason
    with pytest.raises(Conflict):  # frozen while it waits
        rescore(world, p, {"甲": 80, "乙": 80, "丙": 80})
    assert factories.witnessed(again, operator=world.bz_staff, witnesses=[world.bz_admin]).bid_id in first.candidate_ids
