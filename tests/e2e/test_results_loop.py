"""The parts of the 闭环 a budget unit does besides rectification, in the browser (the road from an accepted
report to a closed rectification and a confirmed application row is tests/e2e/test_rectification.py):

1. 资料清单: firm1 lists what it needs during fieldwork; the unit (tjj) sees it on its engagement page and
   uploads the file; firm1 sees the upload.
2. A self-evaluation review returned under 90: the unit hands in its 自评报告; the panel is drawn and scores it
   85 (services: the witnessed draw and the experts' reviews); bz.staff sends the letter on the panel page; the
   unit reads "退回整改" with the letter and hands in the rectified version; bz.staff sees it waiting for a panel.

Shortcuts outside the browser: the engagement in fieldwork, the unit's account, the experts, the draw's
witnesses and the experts' scores (factories, core.draws.run_witnessed, review services).
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.core import draws
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.registry.models import Expert
from evalhub.results.models import MaterialRequest
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, SelfEvaluation, SelfEvaluationStatus
from tests import factories
from tests.e2e.helpers import Sessions, upload

pytestmark = pytest.mark.e2e


def _score(panel, total: str) -> None:
    for invitation in list(panel.invitations):
        member = factories.expert_user(invitation.expert_id)
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, member, accept=True, declaration_signed=True)
    for invitation in list(panel.invitations):
        member = factories.expert_user(invitation.expert_id)
        items = invitation.review.rubric.items
        points = {i.id: i.max_points for i in items}
        largest = max(items, key=lambda i: i.max_points)
        points[largest.id] -= sum(points.values()) - Decimal(total)
        R.save_review(invitation.review, member, scores=points,
                      comments={i.id: "指标完成值缺少佐证。" for i in items}, opinion="自评结论依据不足。")
        R.submit_review(invitation.review, member)


def test_materials_and_a_self_evaluation_returned_under_90(world, browser, live_server):
    e = factories.in_fieldwork(world)
    factories.unit_user(world, "巴州统计局", "tjj")
    for other in db.session.execute(sa.select(Expert)).scalars():
        other.available = False
    for n in range(3):
        factories.expert_user(factories.expert(world.bz, name=f"自评评审专家{n}", employer=f"新疆某高校{n}").id)
    db.session.commit()
    e_id = e.id
    due = (beijing_today() + timedelta(days=7)).isoformat()

    sessions = Sessions(browser, live_server)
    try:
        # 1. the 资料清单
        firm = sessions.page("firm1")
        firm.goto(f"/engagements/{e_id}")
        with firm.expect_navigation():
            firm.get_by_test_id("materials-link").click()
        firm.locator("#title_1").fill("项目资金拨付凭证")
        firm.locator("#due_1").fill(due)
        with firm.expect_navigation():
            firm.get_by_test_id("request-materials").click()
        expect(firm.get_by_test_id("materials")).to_contain_text("待提供")
        item_id = db.session.execute(sa.select(MaterialRequest.id)).scalar_one()

        unit = sessions.page("tjj")
        unit.goto(f"/results/unit/engagements/{e_id}")
        expect(unit.get_by_test_id("materials")).to_contain_text("项目资金拨付凭证")
        unit.locator(f"#m{item_id}-file").set_input_files(upload("拨付凭证.docx", factories.docx_bytes("拨付凭证")))
        with unit.expect_navigation():
            unit.get_by_test_id(f"upload-material-{item_id}").click()
        expect(unit.get_by_test_id("materials")).to_contain_text("已提供")

        firm.goto(f"/results/engagements/{e_id}/materials")
        expect(firm.get_by_test_id("materials")).to_contain_text("拨付凭证.docx")

        # 2. the self-evaluation, returned under 90
        unit.goto("/results/unit")
        with unit.expect_navigation():
            unit.get_by_test_id("self-evaluations-link").click()
        with unit.expect_navigation():
            unit.get_by_test_id("new-self-evaluation").click()
        unit.locator("#year").fill("2025")
        unit.locator("#name").fill("中央财政统计能力建设补助资金")
        unit.locator("#funds").fill("1860000")
        unit.locator("#file").set_input_files(upload("自评报告.docx", factories.docx_bytes("自评报告 第一版")))
        with unit.expect_navigation():
            unit.get_by_test_id("submit-self-evaluation").click()
        expect(unit.get_by_test_id("se-status")).to_contain_text("待组织评审")

        db.session.expire_all()
        se = db.session.execute(sa.select(SelfEvaluation)).scalar_one()
        panel = draws.run_witnessed(R.form_panel(se, world.bz_staff))
        _score(panel, "85")
        db.session.commit()
        panel_id, se_id = panel.id, se.id

        bureau = sessions.page("bz.staff")
        bureau.goto(f"/reviews/panels/{panel_id}")
        expect(bureau.get_by_test_id("panel-status")).to_contain_text("未通过")
        with bureau.expect_navigation():
            bureau.get_by_test_id("send-letter").click()
        db.session.expire_all()
        assert db.session.get(SelfEvaluation, se_id).status == SelfEvaluationStatus.RETURNED

        unit.goto(f"/results/self-evaluations/{se_id}")
        expect(unit.get_by_test_id("outcome-1")).to_have_text("退回整改")
        expect(unit.get_by_test_id("letter-1")).to_contain_text("低于 90")
        expect(unit.locator("body")).not_to_contain_text("自评评审专家")  # never an expert's name
        unit.locator("#file").set_input_files(upload("自评报告（整改后）.docx", factories.docx_bytes("自评报告 第二版")))
        unit.locator("#note").fill("已补充指标完成值佐证。")
        with unit.expect_navigation():
            unit.get_by_test_id("resubmit").click()
        expect(unit.get_by_test_id("se-version-2")).to_be_visible()

        bureau.goto("/results/self-evaluations")
        expect(bureau.get_by_test_id(f"se-row-{se_id}")).to_contain_text("待组织评审")
        bureau.goto(f"/results/self-evaluations/{se_id}")
        expect(bureau.get_by_test_id("form-panel")).to_be_visible()
    finally:
        sessions.close()
