"""Procurement integrity (issue 17): each collusion sign on small constructed bids, the committee's decision
before scoring, the award record, and that a firm never reads another's bid or the flags."""
from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.integrity import services as I
from evalhub.integrity.models import CollusionFlag, CollusionRule, FlagDecision, IntegrityCheck
from evalhub.procurement import ocds
from evalhub.procurement import services as P
from evalhub.procurement.models import BidStatus, ProcurementMethod as M, ProcurementStatus
from evalhub.registry.services import StaffInput, add_staff
from tests import factories

TOPICS = ["预算执行", "资金拨付", "绩效目标", "政府采购", "资产管理", "项目立项", "制度建设", "档案管理", "满意度调查",
          "产出数量", "产出质量", "时效指标", "成本控制", "社会效益", "可持续影响"]
PROPOSAL = [f"本项目评价工作将围绕{t}开展专项核查，核查{t}相关的凭证、台账和第1批抽样资料。" for t in TOPICS]


def docx_with(text: str, author: str | None = None, company: str | None = None) -> bytes:
    data = factories.docx_bytes(text, author)
    if company:  # app.xml's <Company>, as Word writes it
        import zipfile

        source = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for item in source.infolist():
                body = source.read(item.filename)
                if item.filename == "docProps/app.xml":
                    body = body.replace(b"</Properties>", f"<Company>{company}</Company></Properties>".encode())
                target.writestr(item, body)
        data = out.getvalue()
    return data


def _consultation(world):
    engagement = factories.engagement(world)
    return factories.witnessed(P.open_procurement(engagement, P.ProcurementInput(
        method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, 10)), world.bz_staff))


def _bid(p, user, staff, price, data: bytes | None = None, team=None):
    return P.submit_bid(p, P.BidInput(price_wan=price, team_staff_ids=team or [staff.id], lead_staff_id=staff.id,
                                      technical_filename="技术方案.docx",
                                      technical_data=data or docx_with(f"技术方案 {user.username}")), user)


def _open(world, p):
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    return I.flags_of(p)


def _rules(flags):
    return sorted(f.rule.value for f in flags)


def test_same_file_is_flagged_with_its_hash(world):
    p = _consultation(world)
    bidders = [factories.bidder(world, n) for n in ("甲公司", "乙公司", "丙公司")]
    same = docx_with("\n".join(PROPOSAL))
    for (_, user, staff), price in zip(bidders, ["40", "45", "48"]):
        _bid(p, user, staff, price, data=same if price != "48" else None)
    flags = _open(world, p)
    assert _rules(flags) == ["same_file"]
    flag = flags[0]
    assert "同一文件" in flag.summary and "sha256" in flag.summary and len(flag.bid_ids) == 2
    assert I.IntegrityCheck.query.filter_by(procurement_id=p.id).one().bid_count == 3


def test_near_identical_text_shows_shared_passages_side_by_side():
    """Firm names swapped and numbers changed still match (masked names, digits collapsed)."""
    a = "\n".join(s.replace("本项目", "甲公司本项目") for s in PROPOSAL)
    b = "\n".join(s.replace("本项目", "乙公司本项目").replace("第1", "第9") for s in PROPOSAL)
    own = "\n".join(f"丙公司对{t}采用自行设计的问卷和现场访谈方法，另行说明抽样框。" for t in TOPICS)
    docs = [I.BidDoc(1, 1, "甲公司", Decimal("400000"), "a", a), I.BidDoc(2, 2, "乙公司", Decimal("450000"), "b", b),
            I.BidDoc(3, 3, "丙公司", Decimal("480000"), "c", own)]
    found = I.compare(docs)
    assert [(f.rule, f.bids) for f in found] == [(CollusionRule.SIMILAR_TEXT, (1, 2))]
    evidence = found[0].evidence
    assert evidence["share"] == 1.0 and evidence["shared_sentences"] == 15
    first = evidence["passages"][0]
    assert "甲公司" in first["a"] and "乙公司" in first["b"]  # each bid's own sentence, side by side
    # a few equal sentences (the response format) are not a copy
    few = "\n".join(PROPOSAL[:5] + [s.replace("核查", "访谈") + "另行说明。" for s in PROPOSAL[5:]])
    assert I.compare([I.BidDoc(1, 1, "甲公司", Decimal("1"), "a", a), I.BidDoc(2, 2, "乙公司", Decimal("2"), "b", few)]) == []


def test_same_docx_author_is_flagged_and_program_defaults_are_not(world):
    p = _consultation(world)
    bidders = [factories.bidder(world, n) for n in ("甲公司", "乙公司", "丙公司")]
    _bid(p, bidders[0][1], bidders[0][2], "40", data=docx_with("甲的方案", author="张文书", company="某咨询公司"))
    _bid(p, bidders[1][1], bidders[1][2], "45", data=docx_with("乙的方案", author="张文书", company="某咨询公司"))
    _bid(p, bidders[2][1], bidders[2][2], "48", data=docx_with("丙的方案"))  # python-docx's own defaults only
    flags = _open(world, p)
    assert _rules(flags) == ["same_metadata"]
    fields = {f["field"]: f["value"] for f in flags[0].evidence["fields"]}
    assert fields["作者"] == "张文书" and fields["单位"] == "某咨询公司" and fields["最后修改者"] == "张文书"
    assert I.docx_metadata(docx_with("x", author="李四"))["creator"] == "李四"


def test_same_project_manager_matched_by_identity_hmac_never_shown(world, login, auth):
    p = _consultation(world)
    (_, user_a, staff_a), (firm_b, user_b, staff_b), (_, user_c, staff_c) = [
        factories.bidder(world, n) for n in ("甲公司", "乙公司", "丙公司")]
    number = factories.id_number()
    manager = add_staff(user_a.firm, StaffInput(name="王经理", id_number=number, role="项目负责人", years_experience=8), user_a)
    _bid(p, user_a, manager, "40", team=[manager.id, staff_a.id])
    manager.active = False  # moved to 乙 during the bid window: the same person now on 乙's roster
    db.session.flush()
    moved = add_staff(firm_b, StaffInput(name="王经理", id_number=number, role="项目负责人", years_experience=8), user_b)
    _bid(p, user_b, moved, "45", team=[moved.id, staff_b.id])
    _bid(p, user_c, staff_c, "48")
    flags = _open(world, p)
    assert _rules(flags) == ["same_person"]
    assert "王经理" in flags[0].summary and "项目负责人" in flags[0].summary
    db.session.commit()
    page = login(world.bz_staff).get(f"/procurements/{p.id}/integrity").get_data(as_text=True)
    api = login(world.bz_staff).get(f"/api/v1/procurements/{p.id}/integrity", headers=auth(world.bz_staff.username))
    assert "王经理" in page and api.status_code == 200
    for text in (page, api.get_data(as_text=True), str(flags[0].evidence), flags[0].summary):
        assert number not in text and number[-6:] not in text and manager.id_number_digest not in text


@pytest.mark.parametrize("prices, expected", [
    (["41.30", "43.55", "45.80"], ["price_pattern"]),            # a constant step of 2.25 万元
    (["40", "44", "48.4"], ["price_pattern"]),                    # a constant ratio of 1.1
    (["40", "45", "50", "55"], ["price_pattern"]),                # four bids in whole 万元 steps
    (["40", "45", "50"], []),                                     # three round bids: steps of whole 万元 by chance
    (["40", "45", "48"], []),
    (["40", "40", "48"], ["identical_price"]),
])
def test_regular_and_identical_prices(prices, expected):
    docs = [I.BidDoc(i, i, f"机构{i}", Decimal(p) * 10000) for i, p in enumerate(prices, start=1)]
    found = I.compare(docs)
    assert sorted(f.rule.value for f in found) == expected
    if expected == ["price_pattern"]:
        assert len(found[0].bids) == len(prices) and "规律性差异" in found[0].summary


def test_price_tolerance_is_a_setting():
    docs = [I.BidDoc(i, i, f"机构{i}", Decimal(p)) for i, p in enumerate(["413000", "435500", "458200"], start=1)]
    assert I.compare(docs, tolerance_permille=5) == []  # steps 22,500 and 22,700: 0.9 % apart
    assert [f.rule for f in I.compare(docs, tolerance_permille=10)] == [CollusionRule.PRICE_PATTERN]


def test_shared_phone_in_the_registry_is_flagged(world):
    p = _consultation(world)
    bidders = [factories.bidder(world, n) for n in ("甲公司", "乙公司", "丙公司")]
    bidders[1][0].contact_phone = bidders[0][0].contact_phone.replace("-", "")  # the same number, written differently
    for (_, user, staff), price in zip(bidders, ["40", "45", "48"]):
        _bid(p, user, staff, price)
    flags = _open(world, p)
    assert _rules(flags) == ["shared_contact"] and "联系电话" in flags[0].summary


def _flagged(world):
    """A consultation whose 甲 and 乙 bid the same price (one flag), 丙 apart."""
    p = _consultation(world)
    bidders = {n: factories.bidder(world, n) for n in ("甲公司", "乙公司", "丙公司")}
    for name, price in [("甲公司", "40"), ("乙公司", "40"), ("丙公司", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    flags = _open(world, p)
    assert _rules(flags) == ["identical_price"]
    return p, bidders, flags[0]


def _scores(p):
    return {b.id: {i.id: i.max_points * Decimal("0.8") for i in p.rubric} for b in p.bids if b.status == BidStatus.SUBMITTED}


def test_the_committee_cannot_score_before_deciding_every_flag(world):
    p, _, flag = _flagged(world)
    members = P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    with pytest.raises(Conflict, match="一致性检查尚有 1 条提示"):
        P.record_technical_scores(p, members[0], _scores(p), world.bz_staff)
    with pytest.raises(ValidationFailed) as caught:
        I.decide(flag, world.bz_staff, FlagDecision.NOT_COLLUSION, "太短")
    assert "reason" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        I.decide(flag, world.bz_staff, "随便", "理由足够长的一段说明文字内容")
    assert "decision" in caught.value.fields
    assert flag.decision is None
    I.decide(flag, world.bz_staff, "不构成（继续评审，理由载入定标记录）", "两家报价均为整数万元，属常见报价习惯，其他方面未见关联。")
    with pytest.raises(Conflict):
        I.decide(flag, world.bz_staff, FlagDecision.EXCLUDE, "再次处理同一提示的理由说明")
    for member, points in zip(members, (90, 85, 80)):
        P.record_technical_scores(p, member, _scores(p), world.bz_staff)
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    # continuing despite a flag: the reason is in the award's record
    assert "不构成" in award.reasons and "整数万元" in award.reasons
    release = ocds.release(p)
    assert any(d["documentType"] == "evaluationReports" for d in release["tender"]["documents"])
    assert "documents" not in ocds.release(p, public=True)["tender"]


def test_the_gate_is_a_bureau_setting(world):
    from evalhub.core.settings import set_setting

    p, _, _flag = _flagged(world)
    assert I.undecided_flags_block(p)
    set_setting(world.bz, "integrity.scoring_gate", 0, world.bz_admin)
    assert I.undecided_flags_block(p) is None


def test_excluding_makes_the_bids_invalid_and_fails_when_too_few_remain(world):
    p, bidders, flag = _flagged(world)
    I.decide(flag, world.bz_staff, FlagDecision.EXCLUDE, "两家报价完全一致且技术方案由同一人编制，认定串通投标。")
    invalid = {b.firm.name for b in p.bids if b.status == BidStatus.INVALID}
    assert invalid == {"甲公司", "乙公司"}
    assert all("串通投标" in b.invalid_reason for b in p.bids if b.status == BidStatus.INVALID)
    assert p.status == ProcurementStatus.FAILED  # one valid bid left, two needed


def test_decisions_only_by_the_purchasing_bureau(world):
    p, _, flag = _flagged(world)
    for outsider in (world.kz_staff, world.region_staff, world.firm_user):
        with pytest.raises(Exception) as caught:
            I.decide(flag, outsider, FlagDecision.NOT_COLLUSION, "外单位人员试图处理该提示的理由")
        assert type(caught.value).__name__ == "PermissionDenied"


def test_only_the_purchasing_bureau_runs_the_checks_whatever_the_path(world):
    """The rule is the service's (the panel's button checked "integrity.decide"; ``run_checks`` checked nothing):
    the flags a check raises hold up the scoring, so another bureau's staff, an upper bureau's or a firm calling
    it is refused, with nothing stored; the bureau's own staff may."""
    p, _, _flag = _flagged(world)
    db.session.execute(sa.delete(CollusionFlag).where(CollusionFlag.procurement_id == p.id))
    db.session.execute(sa.delete(IntegrityCheck).where(IntegrityCheck.procurement_id == p.id))
    for outsider in (world.kz_staff, world.region_staff, world.firm_user):
        with pytest.raises(PermissionDenied):
            I.run_checks(p, outsider)
        assert not db.session.new and I.flags_of(p) == []
    assert db.session.execute(sa.select(IntegrityCheck).where(IntegrityCheck.procurement_id == p.id)).first() is None
    I.run_checks(p, world.bz_staff)
    assert _rules(I.flags_of(p)) == ["identical_price"]


def test_a_firm_never_sees_another_bid_or_the_flags(world, login, auth):
    p, bidders, flag = _flagged(world)
    db.session.commit()
    firm_user = bidders["甲公司"][1]
    client = login(firm_user)
    assert client.get(f"/procurements/{p.id}/integrity").status_code == 403
    response = client.post(f"/procurements/{p.id}/integrity/flags/{flag.id}", data={"decision": "not_collusion",
                                                                                    "reason": "我方认为不构成串通投标的理由"})
    assert response.status_code in (400, 403)
    api = client.get(f"/api/v1/procurements/{p.id}/integrity", headers=auth(firm_user.username))
    assert api.status_code == 404 and "乙公司" not in api.get_data(as_text=True)
    assert client.get(f"/api/v1/red-flags", headers=auth(firm_user.username)).status_code == 403
    assert client.get("/integrity/red-flags").status_code == 403
    procurement_page = client.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
    assert "乙公司" not in procurement_page and "一致性" not in procurement_page
    # a bureau outside the purchasing one's tree: refused; the purchasing bureau and its region read it
    assert login(world.kz_staff).get(f"/procurements/{p.id}/integrity").status_code == 403
    assert login(world.region_staff).get(f"/procurements/{p.id}/integrity").status_code == 200
    region_post = login(world.region_staff).post(f"/procurements/{p.id}/integrity/flags/{flag.id}",
                                                 data={"decision": "not_collusion", "reason": "上级财政部门代为处理的理由"})
    assert region_post.status_code == 403
    assert db.session.get(CollusionFlag, flag.id).decision is None


def test_the_panel_records_a_decision_and_shows_errors(world, login):
    p, _, flag = _flagged(world)
    db.session.commit()
    client = login(world.bz_staff)
    page = client.get(f"/procurements/{p.id}").get_data(as_text=True)
    assert f"/procurements/{p.id}/integrity" in page
    panel = client.get(f"/procurements/{p.id}/integrity").get_data(as_text=True)
    assert "第三十七条" in panel and "报价均为" in panel and "未经评审委员会处理" in panel
    bad = client.post(f"/procurements/{p.id}/integrity/flags/{flag.id}", data={"decision": "not_collusion", "reason": "短"})
    assert bad.status_code == 422 and "不少于 10 个字" in bad.get_data(as_text=True)
    good = client.post(f"/procurements/{p.id}/integrity/flags/{flag.id}",
                       data={"decision": "refer", "reason": "报价完全相同，移送财政部门进一步核查。"})
    assert good.status_code == 302
    db.session.expire_all()
    assert db.session.get(CollusionFlag, flag.id).decision == FlagDecision.REFER
    assert "全部提示均已处理" in client.get(f"/procurements/{p.id}/integrity").get_data(as_text=True)
    api = client.get(f"/api/v1/procurements/{p.id}/integrity")  # the API wants a token, not a session
    assert api.status_code == 401
