"""Issue 13, admission: a firm enters a bureau's library only with the documents 财预〔2021〕6号 asks for
and a written reason — on every path (service, web, API); the firm hears the decision; experts made
unavailable tell the registered hooks."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import AuditEvent, Notification
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.models import ExpertStatus, Firm, FirmDocument, FirmDocumentKind, FirmStatus, FirmStatusChange
from tests import factories

from tests.factories import PNG, admission_papers


def _count(model) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def _pending(world) -> Firm:
    firm = factories.firm(world.bz, FirmStatus.PENDING)
    db.session.commit()
    return firm


def _applicant(firm: Firm):
    """The pending firm's own account: it uploads its papers (another firm's user may not)."""
    return factories.user(f"applicant{firm.id}", Role.FIRM_USER, firm_id=firm.id)


# --- the service, at its boundary ------------------------------------------------------------------

def test_every_document_and_a_reason_admit(world):
    firm = _pending(world)
    services.change_firm_status(firm, "admit", world.bz_staff, reason="材料齐全，符合入库条件", documents=admission_papers())
    db.session.commit()
    assert firm.status == FirmStatus.ADMITTED and services.missing_admission_documents(firm) == []
    assert firm.status_history[-1].reason == "材料齐全，符合入库条件"


@pytest.mark.parametrize("kind", list(services.ADMISSION_DOCUMENTS))
def test_one_document_missing_refuses_admission_naming_it(world, kind):
    firm = _pending(world)
    applicant = _applicant(firm)
    for k, name, data in admission_papers(skip=(kind,)):
        services.attach_firm_document(firm, k, name, data, applicant)
    db.session.commit()
    changes = _count(FirmStatusChange)
    with pytest.raises(ValidationFailed) as caught:
        services.change_firm_status(firm, "admit", world.bz_staff, reason="材料齐全")
    assert caught.value.fields["documents"] == f"缺少入库材料：{kind.label}。请机构上传后再准予入库。"
    db.session.rollback()
    assert db.session.get(Firm, firm.id).status == FirmStatus.PENDING and _count(FirmStatusChange) == changes


def test_no_documents_lists_them_all(world):
    firm = _pending(world)
    with pytest.raises(ValidationFailed) as caught:
        services.change_firm_status(firm, "admit", world.bz_staff, reason="同意")
    message = caught.value.fields["documents"]
    assert all(kind.label in message for kind in services.ADMISSION_DOCUMENTS)


def test_a_document_of_another_kind_does_not_count(world):
    firm = _pending(world)
    papers = admission_papers(skip=(FirmDocumentKind.CONFIDENTIALITY,))
    papers.append((FirmDocumentKind.OTHER, "保密制度.txt", "保密制度".encode()))
    with pytest.raises(ValidationFailed) as caught:
        services.change_firm_status(firm, "admit", world.bz_staff, reason="同意", documents=papers)
    assert "保密制度" in caught.value.fields["documents"]


@pytest.mark.parametrize("reason", [None, "", "   ", "\u3000\n"])
def test_empty_or_blank_reason_refuses_admission(world, reason):
    firm = _pending(world)
    with pytest.raises(ValidationFailed) as caught:
        services.change_firm_status(firm, "admit", world.bz_staff, reason=reason, documents=admission_papers())
    assert caught.value.fields == {"reason": "“准予入库”必须填写原因"}
    db.session.rollback()
    assert db.session.get(Firm, firm.id).status == FirmStatus.PENDING
    assert _count(FirmDocument) == 0  # documents attached in the refused call are not kept either


# --- the firm hears the decision (notification matrix) ---------------------------------------------

def _inbox(user) -> list[Notification]:
    return list(db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)).scalars())


def test_admission_refusal_and_suspension_reach_the_firm_only(world):
    firm = _pending(world)
    applicant = factories.user("jg.applicant", Role.FIRM_USER, firm_id=firm.id)
    services.change_firm_status(firm, "admit", world.bz_staff, reason="材料齐全", documents=admission_papers())
    services.change_firm_status(firm, "suspend", world.bz_admin, reason="信用评价为 D")
    db.session.commit()
    titles = [n.title for n in _inbox(applicant)]
    assert titles == ["准予入库：巴州", "机构库资格变更：巴州"]
    assert "材料齐全" in _inbox(applicant)[0].body and "暂停。理由：信用评价为 D" in _inbox(applicant)[1].body
    assert _inbox(world.firm_user) == [] and _inbox(world.bz_staff) == []


def test_refusal_is_sent_to_the_applicant(world):
    firm, user = services.register_firm_application(
        factories.firm_input(), world.bz, username="applicant1", password=factories.PASSWORD, display_name="申请人")
    services.change_firm_status(firm, "reject", world.bz_staff, reason="近三年有重大违规")
    db.session.commit()
    [note] = _inbox(user)
    assert note.title == "不予入库：巴州" and note.body == "近三年有重大违规" and note.link == f"/firms/{firm.id}"
    assert _inbox(world.other_firm_user) == []


# --- web and API: the same rule ----------------------------------------------------------------------

def test_web_admission_without_documents_is_422_with_the_list(world, login):
    firm = _pending(world)
    browser = login(world.bz_admin)  # signed in first: the sign-in is an event of its own (user.login)
    events = _count(AuditEvent)
    response = browser.post(f"/firms/{firm.id}/status", data={"action": "admit", "reason": "同意入库"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "缺少入库材料：营业执照、信用记录" in body and "admission-checklist" in body
    assert db.session.get(Firm, firm.id).status == FirmStatus.PENDING and _count(AuditEvent) == events


def test_web_admission_after_uploads_succeeds(world, login):
    firm = _pending(world)
    applicant = login(world.bz_staff)
    for kind, name, data in admission_papers():
        response = applicant.post(f"/firms/{firm.id}/documents",
                                  data={"kind": kind.value, "file": (io.BytesIO(data), name)},
                                  content_type="multipart/form-data")
        assert response.status_code == 302, response.get_data(as_text=True)
    page = applicant.get(f"/firms/{firm.id}").get_data(as_text=True)
    assert "admission-missing" not in page and 'data-testid="admission-doc-no_violation"' in page
    response = applicant.post(f"/firms/{firm.id}/status", data={"action": "admit", "reason": "  "})
    assert response.status_code == 422 and "“准予入库”必须填写原因" in response.get_data(as_text=True)
    response = applicant.post(f"/firms/{firm.id}/status", data={"action": "admit", "reason": "材料齐全"})
    assert response.status_code == 302
    assert db.session.get(Firm, firm.id).status == FirmStatus.ADMITTED


def test_api_admission_without_documents_or_reason_is_422(world, client, auth):
    firm = _pending(world)
    headers = auth(world.bz_admin.username)
    response = client.post(f"/api/v1/firms/{firm.id}/status", json={"action": "admit", "reason": "同意"}, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert "营业执照" in str(response.get_json())
    applicant = _applicant(firm)
    for kind, name, data in admission_papers():
        services.attach_firm_document(firm, kind, name, data, applicant)
    db.session.commit()
    response = client.post(f"/api/v1/firms/{firm.id}/status", json={"action": "admit", "reason": " "}, headers=headers)
    assert response.status_code == 422 and "必须填写原因" in str(response.get_json())
    response = client.post(f"/api/v1/firms/{firm.id}/status", json={"action": "admit", "reason": "同意"}, headers=headers)
    assert response.status_code == 200 and response.get_json()["status"]["value"] == "admitted"


# --- experts made unavailable: the registration point ------------------------------------------------

@pytest.fixture
def heard():
    calls: list[tuple] = []

    def hook(expert, actor, reason):
        calls.append((expert.id, actor.id if actor else None, reason, expert.status))

    services.on_expert_unavailable(hook)
    yield calls
    services._expert_unavailable_hooks.remove(hook)


def test_suspending_or_removing_an_expert_calls_the_hooks(world, heard):
    services.change_expert_status(world.expert, "suspend", "长期不能参加评审", world.bz_admin)
    assert heard == [(world.expert.id, world.bz_admin.id, "长期不能参加评审", ExpertStatus.SUSPENDED)]
    services.change_expert_status(world.expert, "reinstate", "恢复", world.bz_admin)
    assert len(heard) == 1  # coming back is not a loss
    services.change_expert_status(world.expert, "remove", "退休", world.bz_admin)
    assert heard[-1][2:] == ("退休", ExpertStatus.REMOVED)


def test_disabling_an_experts_login_calls_the_hooks(world, heard):
    from evalhub.core.services import set_enabled
    set_enabled(world.expert_user, False, world.sysadmin, "离职")
    assert heard == [(world.expert.id, None, "专家账号已停用", ExpertStatus.ACTIVE)]
    set_enabled(world.bz_staff, False, world.bz_admin, "调岗")  # not an expert: nothing
    assert len(heard) == 1


def test_a_hook_refusing_rolls_the_status_change_back(world):
    def refuse(expert, actor, reason):
        raise ValidationFailed("测试：拒绝")

    services.on_expert_unavailable(refuse)
    try:
        db.session.commit()
        with pytest.raises(ValidationFailed):
            services.change_expert_status(world.expert, "suspend", "测试", world.bz_admin)
        db.session.rollback()
        assert world.expert.status == ExpertStatus.ACTIVE
    finally:
        services._expert_unavailable_hooks.remove(refuse)


def test_the_applicant_uploads_its_documents_through_the_api_and_sees_what_is_missing(world, client, auth):
    firm, user = services.register_firm_application(
        factories.firm_input(), world.bz, username="applicant2", password=factories.PASSWORD, display_name="申请人")
    db.session.commit()
    headers = auth("applicant2")
    detail = client.get(f"/api/v1/firms/{firm.id}", headers=headers).get_json()
    assert [k["value"] for k in detail["missing_admission_documents"]] == [k.value for k in services.ADMISSION_DOCUMENTS]
    for kind, name, data in admission_papers(skip=(FirmDocumentKind.TRAINING,)):
        response = client.post(f"/api/v1/firms/{firm.id}/documents", headers=headers,
                               data={"kind": kind.label, "file": (io.BytesIO(data), name)},
                               content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["kind"]["value"] == kind.value
    detail = client.get(f"/api/v1/firms/{firm.id}", headers=auth(world.bz_staff.username)).get_json()
    assert [k["label"] for k in detail["missing_admission_documents"]] == ["培训制度"]
    assert len(detail["documents"]) == len(services.ADMISSION_DOCUMENTS) - 1


def test_document_upload_api_refusals(world, client, auth):
    firm = _pending(world)
    url = f"/api/v1/firms/{firm.id}/documents"
    paper = {"kind": "licence", "file": (io.BytesIO(PNG), "营业执照.png")}
    # another firm's user and another bureau's staff: the firm is not theirs (404 — not even visible)
    for username in (world.other_firm_user.username, world.kz_staff.username):
        response = client.post(url, headers=auth(username), content_type="multipart/form-data",
                               data={"kind": "licence", "file": (io.BytesIO(PNG), "营业执照.png")})
        assert response.status_code in (403, 404), (username, response.status_code)
    headers = auth(world.bz_staff.username)
    response = client.post(url, headers=headers, content_type="multipart/form-data", data={"kind": "licence"})
    assert response.status_code == 422 and "file" in response.get_json()["error"]["fields"]
    response = client.post(url, headers=headers, content_type="multipart/form-data",
                           data={"kind": "nonsense", "file": (io.BytesIO(PNG), "a.png")})
    assert response.status_code == 422 and "kind" in response.get_json()["error"]["fields"]
    assert _count(FirmDocument) == 0
    assert client.post(url, headers=headers, content_type="multipart/form-data", data=paper).status_code == 201


def test_the_registration_page_names_the_documents(client, world):
    page = client.get("/register/firm").get_data(as_text=True)
    assert all(kind.label in page for kind in services.ADMISSION_DOCUMENTS)
