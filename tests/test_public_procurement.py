"""The public procurement pages (no login): procurement notices, result notices, each bureau's admitted-firm
library, the OCDS package — only what was published, no sealed bid, no expert's name."""
from __future__ import annotations

from datetime import timedelta

from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import ProcurementMethod as M, ProcurementStatus
from evalhub.registry.models import FirmStatus
from tests import factories
from tests.test_procurement_law import _awarded, _bidder, _bid, _open


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_the_home_page_links_every_public_list(client, world):
    page = _text(client.get("/public/"))
    for url in ("/public/procurements", "/public/notices", "/public/firms", "/public/reports"):
        assert f'href="{url}"' in page


def test_the_home_page_lists_what_is_open_and_the_latest_announcements_from_the_lists_own_statements(client, world):
    """A visitor sees on the front page the procurements open for bids now (with their deadline) and the latest result
    notices; a procurement past its deadline, awaiting approval or cancelled is not among the open ones."""
    open_one = _open(world)
    open_one.title = "正在投标的磋商"
    closed = _open(world)
    closed.title, closed.bid_deadline = "已截止的磋商", utcnow() - timedelta(hours=1)
    cancelled = _open(world)
    cancelled.title, cancelled.status = "已取消的磋商", ProcurementStatus.CANCELLED
    awarded, _ = _awarded(world)
    db.session.commit()

    page = _text(client.get("/public/"))
    open_card = page.split('data-testid="home-open-procurements"')[1].split('data-testid="home-result-notices"')[0]
    assert "正在接受投标的采购公告（1 项）" in open_card and "正在投标的磋商" in open_card
    assert f'href="/public/procurements/{open_one.id}"' in open_card and "响应截止" in open_card
    assert "已截止的磋商" not in open_card and "已取消的磋商" not in page
    notices_card = page.split('data-testid="home-result-notices"')[1]
    assert f'href="/public/notices/{awarded.notice.id}"' in notices_card and "成交：甲" in notices_card


def test_an_open_consultation_is_announced_without_its_bids(client, world):
    p = _open(world)
    _, user, staff = _bidder(world, "甲投标人")
    _bid(p, user, staff, "40")
    db.session.commit()
    listing = _text(client.get("/public/procurements"))
    assert p.title in listing
    page = _text(client.get(f"/public/procurements/{p.id}"))
    assert "最高限价" in page and "甲投标人" not in page and "40.00" not in page
    package = client.get(f"/public/procurements/{p.id}/ocds.json")
    assert package.status_code == 200 and "attachment" in package.headers["Content-Disposition"]
    release = package.json["releases"][0]
    assert "bids" not in release and "tenderers" not in release["tender"]
    assert release["tender"]["tenderPeriod"]["startDate"] and release["tender"]["tenderPeriod"]["endDate"]


def test_pending_and_cancelled_procurements_are_not_shown(client, world):
    e = factories.engagement(world)
    pending = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
        method=M.SINGLE_SOURCE, title="待审批的单一来源", ceiling_price_wan="10", single_source_firm_id=world.firm.id,
        justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff))
    cancelled = _open(world)
    cancelled.title = "已取消的磋商"
    cancelled.status = ProcurementStatus.CANCELLED
    db.session.commit()
    listing = _text(client.get("/public/procurements"))
    assert "待审批的单一来源" not in listing and "已取消的磋商" not in listing
    assert client.get(f"/public/procurements/{pending.id}").status_code == 404
    assert client.get(f"/public/procurements/{cancelled.id}").status_code == 404
    assert client.get(f"/public/procurements/{cancelled.id}/ocds.json").status_code == 404


def test_the_committee_is_not_public_before_the_result(client, world):
    """第六十二条: 评审专家名单在评审结果确定前应当保密 — the public procurement page names no member while scoring."""
    p = _open(world)
    bidders = {n: _bidder(world, n) for n in "甲乙"}
    for name, price in [("甲", "40"), ("乙", "45")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    db.session.commit()
    page = _text(client.get(f"/public/procurements/{p.id}"))
    assert p.title in page and "评委" not in page


def test_a_result_notice_is_public_with_its_challenge_period_and_the_committee_named(client, world):
    """The result notice names the evaluation committee (政府采购法实施条例 第四十三条; 财政部令第87号 第六十九条
    "评审专家名单"), whose names were secret until the result (第六十二条)."""
    p, bidders = _awarded(world)
    notice = p.notice
    listing = _text(client.get("/public/notices"))
    assert p.title in listing and notice.challenge_until.strftime("%Y-%m-%d") in listing
    page = _text(client.get(f"/public/notices/{notice.id}"))
    assert "甲" in page and "质疑期" in page
    assert "评审委员会成员：" + "、".join(m.name for m in p.committee) in page
    release = client.get(f"/public/procurements/{p.id}/ocds.json").json["releases"][0]
    assert release["awards"][0]["documents"][0]["documentType"] == "awardNotice"
    assert "bids" not in release and release["tender"]["numberOfTenderers"] == 3
    assert all(m.name not in client.get(f"/public/procurements/{p.id}/ocds.json").get_data(as_text=True)
               for m in p.committee)


def test_a_revoked_notice_stays_marked_revoked(client, world):
    from tests.test_procurement_law import EVIDENCE

    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，技术分计算确有错误。", "reevaluate")
    db.session.commit()
    page = _text(client.get(f"/public/notices/{p.notices[0].id}"))
    # the public reads why in fixed words; the answer, addressed to the challenger (94号令 第十五条), stays private
    assert "已撤销" in page and "质疑成立，撤销成交结果，重新评审" in page and "技术分计算确有错误" not in page
    package = client.get(f"/public/procurements/{p.id}/ocds.json").json
    assert package["releases"][0]["awards"][0]["status"] == "cancelled"
    from tests.test_procurement_services import OCDS_DIR, _ocds_validator

    if OCDS_DIR.exists():  # the public package, revoked award included, is valid OCDS 1.1
        assert [e.message for e in _ocds_validator().iter_errors(package)] == []


def test_the_firm_library_shows_admitted_firms_only(client, world):
    factories.firm(world.bz, FirmStatus.PENDING, name="待审核的机构")
    factories.firm(world.bz, FirmStatus.SUSPENDED, name="暂停的机构")
    db.session.commit()
    page = _text(client.get(f"/public/firms?bureau={world.bz.id}"))
    assert world.firm.name in page and world.other_firm.name not in page
    assert "待审核的机构" not in page and "暂停的机构" not in page
    assert world.other_firm.name in _text(client.get("/public/firms"))


def test_public_pages_need_no_login_and_refuse_unknown_ids(client, world):
    for url in ("/public/procurements/999999", "/public/notices/999999", "/public/procurements/999999/ocds.json"):
        assert client.get(url).status_code == 404
    assert client.get("/public/notices?bureau=abc").status_code in (200, 400)


def test_a_deadline_passed_procurement_still_shows_no_bids_until_opened(client, world):
    p = _open(world)
    _, user, staff = _bidder(world, "乙投标人")
    _bid(p, user, staff, "41")
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert "乙投标人" not in _text(client.get(f"/public/procurements/{p.id}"))
