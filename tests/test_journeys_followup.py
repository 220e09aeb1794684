"""Beside the journeys audit (tests/test_audit_journeys.py): what its fixes promise beyond the audit's own checks —
the API's inspection detail keeps every answer, a responsible unit sees its own finding and nothing else of the
engagement, and a zip of the 资料清单 is still held to the zip-bomb limits."""
from __future__ import annotations

import io
import zipfile
from datetime import timedelta

from evalhub.extensions import db
from tests import factories


def test_the_api_lists_every_answer_of_the_firm_with_its_author(client, world, auth):
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    e = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.GENERAL, description="底稿缺少访谈记录",
                  measures=["责令整改"])
    V.respond(case, world.firm_user, "已补充访谈记录并签字确认，附件已归档。")
    V.add_finding(case, factories.recorder(case), severity=Severity.GENERAL, description="问卷样本量不足",
                  measures=["责令整改"])
    V.respond(case, world.firm_user, "已补发问卷二百份，回收有效问卷一百八十六份。")
    db.session.commit()
    detail = client.get(f"/api/v1/inspections/{case.id}", headers=auth(world.firm_user.username)).json
    assert [r["text"][:6] for r in detail["responses"]] == ["已补充访谈记", "已补发问卷二"]
    assert all(r["by"]["id"] == world.firm_user.id for r in detail["responses"])
    assert detail["firm_response"].startswith("已补发问卷")


def test_a_responsible_unit_reads_its_own_finding_and_nothing_else_of_the_engagement(client, login, world):
    from evalhub.core.timeutil import beijing_today
    from evalhub.results import services as S

    e = factories.accepted(world)  # evaluates 巴州统计局
    from evalhub.results.models import MaterialRequest

    db.session.add(MaterialRequest(engagement_id=e.id, title="内部资金台账", due_on=beijing_today(),
                                   created_by_id=world.firm_user.id))  # listed during its fieldwork
    mzj = factories.unit_user(world, "巴州民政局", "mzj.follow")
    S.add_finding(e, world.firm_user, S.FindingInput(kind="问题", text="民政配套资金未按期拨付", category="过程",
                                                     indicator="资金到位率", responsible_unit_id=world.units["巴州民政局"].id))
    S.add_finding(e, world.firm_user, S.FindingInput(kind="问题", text="统计局绩效目标设置不细化", category="决策",
                                                     indicator="目标明确性", responsible_unit_id=world.units["巴州统计局"].id))
    S.confirm_findings(e, world.bz_staff)
    db.session.commit()
    login(mzj)
    page = client.get(f"/results/unit/engagements/{e.id}").get_data(as_text=True)
    assert "民政配套资金未按期拨付" in page
    assert "统计局绩效目标设置不细化" not in page and "内部资金台账" not in page and 'data-testid="timeline"' not in page
    assert 'data-testid="rectification-docx"' not in page
    assert client.get(f"/results/engagements/{e.id}/rectification.docx").status_code == 403


def test_a_zip_bomb_on_the_materials_form_is_refused_with_a_reason(client, login, world):
    from evalhub.core.timeutil import beijing_today
    from evalhub.results import services as S

    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj.bomb")
    item = S.request_materials(e, world.firm_user, [("凭证", beijing_today() + timedelta(days=10), "")])[0]
    db.session.commit()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("凭证.txt", b"0" * (20 * 1024 * 1024))  # 20 MB of zeros: ~1000:1
    login(unit)
    response = client.post(f"/results/materials/{item.id}/upload", data={
        f"m{item.id}-file": (io.BytesIO(buffer.getvalue()), "凭证.zip")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "压缩炸弹" in response.get_data(as_text=True)
    db.session.refresh(item)
    assert item.file_id is None
