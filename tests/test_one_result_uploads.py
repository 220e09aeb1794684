"""Two clicks on an upload give one result: the signed 整改报告, a firm's document and the firm's 资料清单, submitted
twice in a row (a double click that reaches the server after the first committed, a resend, a second tab). The
second is refused with 409 and a Chinese message naming what is on record, before anything is stored — on the
service (so the CLI and jobs too), the web form and the API; a different file, or the same file again once it is no
longer the current one, is recorded as before. The same submitted at once, on PostgreSQL: tests/test_races_one_result.py.
"""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Notification, StoredFile
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import FirmDocument, FirmDocumentKind
from evalhub.results import services as S
from evalhub.results.models import MaterialRequest, RectificationReport
from tests import factories


def _count(model, *where) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def _nothing_staged() -> bool:
    """No blob waits in this transaction's staging folder: the refusal came before ``files.store``."""
    return not db.session.info.get(files._PENDING)


def _written() -> tuple[int, int, int]:
    db.session.flush()
    return _count(StoredFile), _count(AuditEvent), _count(Notification)


# --- the signed 整改报告 --------------------------------------------------------------------------------

@pytest.fixture()
def signing(world):
    world.e = factories.accepted(world)
    world.unit = factories.unit_user(world, "巴州统计局", "tjj.sign")
    world.unit2 = factories.unit_user(world, "巴州统计局", "tjj.sign2")
    factories.confirmed_findings(world, world.e, n=1)
    db.session.commit()
    return world


_SCANS: dict[str, bytes] = {}


def _scan(text: str = "整改报告 已签章") -> files.Upload:
    """The same text, the same bytes (a .docx written twice differs in its zip's timestamps)."""
    if text not in _SCANS:
        _SCANS[text] = factories.docx_bytes(text)
    return files.Upload("整改报告.docx", _SCANS[text])


def test_the_signed_report_uploaded_twice_is_recorded_once(signing):
    w = signing
    first = S.upload_signed_report(w.e, w.unit, _scan())
    db.session.commit()
    before = _written()
    for who in (w.unit, w.unit2):  # a double click, or a colleague with the same scan
        with pytest.raises(Conflict) as refused:
            S.upload_signed_report(w.e, who, _scan())
        assert "整改报告.docx" in refused.value.message and "请勿重复提交" in refused.value.message
        assert _written() == before and _nothing_staged()
        db.session.rollback()
    assert [r.id for r in S.signed_reports(w.e)] == [first.id]


def test_a_corrected_scan_and_the_first_again_after_it_are_new_versions(signing):
    w = signing
    first = S.upload_signed_report(w.e, w.unit, _scan())
    corrected = S.upload_signed_report(w.e, w.unit, _scan("整改报告 已签章（更正）"))
    back = S.upload_signed_report(w.e, w.unit, _scan())  # the first one is not the current one any more
    db.session.commit()
    assert [r.id for r in S.signed_reports(w.e)] == [back.id, corrected.id, first.id]
    assert back.file_id == first.file_id  # one stored file for the same bytes
    with pytest.raises(Conflict):  # now it is the current one again
        S.upload_signed_report(w.e, w.unit, _scan())
    db.session.rollback()


def test_another_engagements_signed_report_is_its_own(signing):
    w = signing
    other = factories.accepted(w)
    db.session.commit()
    S.upload_signed_report(w.e, w.unit, _scan())
    S.upload_signed_report(other, w.unit, _scan())  # the same bytes for another engagement: its own report
    db.session.commit()
    assert _count(RectificationReport) == 2


def test_the_signed_report_twice_on_the_web_and_the_api_answers_409_and_writes_nothing(signing, client, login, auth):
    w = signing
    login(w.unit)
    data = _scan("整改报告 已签章 网页").data

    def web():
        return client.post(f"/results/engagements/{w.e.id}/rectification/signed",
                           data={"file": (io.BytesIO(data), "整改报告.docx")}, content_type="multipart/form-data")

    headers = auth(w.unit2.username)  # its token's issue is audited: before the count
    assert web().status_code == 302
    before = _written()
    again = web()
    assert again.status_code == 409, again.status_code
    assert "请勿重复提交" in again.get_data(as_text=True)
    assert _written() == before and _count(RectificationReport) == 1

    url = f"/api/v1/results/engagements/{w.e.id}/rectification/signed"
    api = client.post(url, data={"file": (io.BytesIO(data), "整改报告.docx")}, content_type="multipart/form-data",
                      headers=headers)
    assert api.status_code == 409, api.get_data(as_text=True)
    assert api.get_json()["error"]["code"] == "conflict" and "请勿重复提交" in api.get_json()["error"]["message"]
    assert _written() == before and _count(RectificationReport) == 1


# --- a firm's documents ---------------------------------------------------------------------------------

def test_a_firm_document_uploaded_twice_is_recorded_once(world):
    firm = world.firm
    first = registry.attach_firm_document(firm, FirmDocumentKind.LICENCE, "营业执照.png", factories.PNG, world.firm_user)
    db.session.commit()
    before = _written()
    with pytest.raises(Conflict) as refused:
        registry.attach_firm_document(firm, "licence", "执照扫描.png", factories.PNG, world.firm_user)
    assert "营业执照" in refused.value.message and "营业执照.png" in refused.value.message
    assert "无需重复上传" in refused.value.message
    assert _written() == before and _nothing_staged()
    db.session.rollback()
    assert [d.id for d in db.session.execute(sa.select(FirmDocument).where(FirmDocument.firm_id == firm.id)).scalars()] \
        == [first.id]


def test_only_one_who_may_edit_the_firm_attaches_its_documents_whatever_the_path(world):
    """The rule is the service's (the web page and the API check it too): another firm's user, or an expert, calling
    it is refused, with nothing stored."""
    before = _written()
    for outsider in (world.other_firm_user, world.expert_user):
        with pytest.raises(PermissionDenied):
            registry.attach_firm_document(world.firm, "licence", "营业执照.png", factories.PNG, outsider)
    assert _written() == before and _nothing_staged()
    db.session.rollback()
    assert _count(FirmDocument, FirmDocument.firm_id == world.firm.id) == 0


def test_a_firm_document_of_another_kind_a_new_file_or_the_first_again_after_it_is_added(world):
    firm, user = world.firm, world.firm_user
    text = "本机构已建立质量控制制度。".encode()
    registry.attach_firm_document(firm, "quality_control", "质量控制制度.txt", text, user)
    registry.attach_firm_document(firm, "other", "质量控制制度.txt", text, user)  # another kind: its own row
    registry.attach_firm_document(firm, "quality_control", "质量控制制度（修订）.txt", "修订版。".encode(), user)
    registry.attach_firm_document(firm, "quality_control", "质量控制制度.txt", text, user)  # back to the first
    registry.attach_firm_document(world.other_firm, "quality_control", "质量控制制度.txt", text, world.other_firm_user)
    db.session.commit()
    assert _count(FirmDocument, FirmDocument.firm_id == firm.id) == 4
    assert _count(FirmDocument, FirmDocument.firm_id == world.other_firm.id) == 1


def test_papers_attached_with_an_admission_keep_the_ones_already_uploaded(world):
    from evalhub.registry.models import FirmStatus

    firm = factories.firm(world.bz, FirmStatus.PENDING)
    papers = factories.admission_papers()
    applicant = factories.user("applicant", Role.FIRM_USER, firm_id=firm.id)
    for kind, name, data in papers[:3]:  # the firm uploaded some; the bureau received all on paper
        registry.attach_firm_document(firm, kind, name, data, applicant)
    db.session.commit()
    registry.change_firm_status(firm, "admit", world.bz_staff, reason="材料齐全", documents=papers)
    db.session.commit()
    assert firm.status == FirmStatus.ADMITTED
    assert _count(FirmDocument, FirmDocument.firm_id == firm.id) == len(papers)


def test_a_firm_document_twice_on_the_web_and_the_api_answers_409_and_writes_nothing(world, client, login, auth):
    firm = world.firm
    login(world.firm_user)
    data = "本机构已建立保密制度。".encode()

    def web():
        return client.post(f"/firms/{firm.id}/documents", data={"kind": "confidentiality",
                                                                 "file": (io.BytesIO(data), "保密制度.txt")},
                           content_type="multipart/form-data")

    headers = auth(world.firm_user.username)  # its token's issue is audited: before the count
    assert web().status_code == 302
    before = _written()
    again = web()
    assert again.status_code == 409 and "无需重复上传" in again.get_data(as_text=True)
    assert _written() == before

    api = client.post(f"/api/v1/firms/{firm.id}/documents", data={"kind": "confidentiality",
                                                                  "file": (io.BytesIO(data), "保密制度.txt")},
                      content_type="multipart/form-data", headers=headers)
    assert api.status_code == 409, api.get_data(as_text=True)
    assert "保密制度.txt" in api.get_json()["error"]["message"]
    assert _written() == before
    assert _count(FirmDocument, FirmDocument.firm_id == firm.id) == 1


# --- the 资料清单 ------------------------------------------------------------------------------------------

@pytest.fixture()
def fieldwork(world):
    world.e = factories.in_fieldwork(world)
    world.unit = factories.unit_user(world, "巴州统计局", "tjj.zl")
    db.session.commit()
    return world


def _soon(days: int = 10):
    return beijing_today() + timedelta(days=days)


def test_the_same_list_submitted_twice_is_listed_and_told_once(fieldwork):
    w = fieldwork
    items = [("2024 年度项目资金拨付凭证", _soon(), "按月汇总"), ("项目绩效目标申报表", _soon(5), None)]
    S.request_materials(w.e, w.firm_user, items)
    db.session.commit()
    before = _written()
    with pytest.raises(Conflict) as refused:
        S.request_materials(w.e, w.firm_user, items)
    assert "“项目绩效目标申报表”" in refused.value.message and "“2024 年度项目资金拨付凭证”" in refused.value.message
    assert "请勿重复列出" in refused.value.message
    assert _written() == before
    db.session.rollback()
    assert _count(MaterialRequest) == 2
    told = _count(Notification, Notification.user_id == w.unit.id)
    assert told == 1

    with pytest.raises(Conflict):  # a new list naming one still owed
        S.request_materials(w.e, w.firm_user, [("资金管理办法", _soon(), None), ("项目绩效目标申报表", _soon(20), None)])
    db.session.rollback()
    assert _count(MaterialRequest) == 2


def test_a_material_provided_may_be_asked_for_again_and_new_ones_are_listed(fieldwork):
    w = fieldwork
    [item] = S.request_materials(w.e, w.firm_user, [("资金管理办法", _soon(), None)])
    S.upload_material(item, w.unit, files.Upload("办法.docx", factories.docx_bytes("资金管理办法")))
    db.session.commit()
    again = S.request_materials(w.e, w.firm_user, [("资金管理办法", _soon(), "请提供修订后的版本"), ("项目合同", _soon(), None)])
    db.session.commit()
    assert [r.title for r in again] == ["资金管理办法", "项目合同"]
    other = factories.in_fieldwork(w)  # another engagement asks for its own
    db.session.commit()
    S.request_materials(other, w.firm_user, [("项目合同", _soon(), None)])
    db.session.commit()
    assert _count(MaterialRequest) == 4


def test_a_list_naming_one_material_twice_is_refused_beside_the_line(fieldwork):
    w = fieldwork
    with pytest.raises(ValidationFailed) as refused:
        S.request_materials(w.e, w.firm_user, [("项目合同", _soon(), None), (" 项目合同 ", _soon(3), "含补充协议")])
    assert refused.value.fields["title_2"] == "第 2 项资料名称与第 1 项相同，请合并为一项"
    db.session.rollback()
    assert _count(MaterialRequest) == 0


def test_the_same_list_twice_on_the_web_answers_409(fieldwork, client, login):
    w = fieldwork
    login(w.firm_user)
    form = {"title_1": "项目合同", "due_1": _soon().isoformat(), "note_1": "含补充协议"}
    assert client.post(f"/results/engagements/{w.e.id}/materials", data=form).status_code == 302
    before = _written()
    again = client.post(f"/results/engagements/{w.e.id}/materials", data=form)
    assert again.status_code == 409 and "“项目合同”" in again.get_data(as_text=True)
    assert _written() == before and _count(MaterialRequest) == 1
    twice = client.post(f"/results/engagements/{w.e.id}/materials", data={
        "title_1": "资金管理办法", "due_1": _soon().isoformat(), "title_2": "资金管理办法", "due_2": _soon().isoformat()})
    assert twice.status_code == 422 and "与第 1 项相同" in twice.get_data(as_text=True)
    assert _count(MaterialRequest) == 1


def test_a_material_file_uploaded_twice_is_recorded_once_and_another_file_replaces_it(fieldwork):
    w = fieldwork
    [item] = S.request_materials(w.e, w.firm_user, [("资金管理办法", _soon(), None)])
    data = factories.docx_bytes("资金管理办法（2024 年修订）")
    S.upload_material(item, w.unit, files.Upload("办法.docx", data), note="修订版")
    db.session.commit()
    before = _written()
    with pytest.raises(Conflict) as refused:  # a double click: the same file and note again
        S.upload_material(item, w.unit, files.Upload("办法.docx", data), note="修订版")
    assert "“资金管理办法”" in refused.value.message and "请勿重复提交" in refused.value.message
    assert _written() == before and _nothing_staged()
    db.session.rollback()
    uploads = sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.action == "materials.uploaded")
    assert db.session.scalar(uploads) == 1
    S.upload_material(item, w.unit, files.Upload("办法.docx", data), note="修订版，附说明")  # a new note is an answer
    S.upload_material(item, w.unit, files.Upload("办法2.docx", factories.docx_bytes("资金管理办法（更正）")))
    db.session.commit()
    assert db.session.scalar(uploads) == 3 and item.file.original_name == "办法2.docx"
