"""Expert and firm accounts (issue 12): an expert's login opened from the expert pool with a one-time
activation link; panel draws that leave out experts who cannot sign in, unless the panel is reviewed offline
(then bureau staff record the answers and enter the scores on the experts' behalf, recorded as such); a
self-registered firm's contact who sees only the application until the firm is admitted; a firm's own
administrator who adds and removes the firm's accounts. Every refusal is proven."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.enums import Role
from evalhub.core.models import AccountLink, ApiToken, AuditEvent, Draw, User
from evalhub.core.services import issue_token
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState as S
from evalhub.registry import services as registry
from evalhub.registry.models import Firm, FirmStatus
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, PanelInvitation, Review, ReviewPanel, ReviewStatus
from tests import factories
from tests.browsers import Browser

NEW_PASSWORD = "Zhuanjia2026x"
LINK = re.compile(r"/account/(activate|reset)/([A-Za-z0-9_-]{20,})")


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def link_in(response) -> tuple[str, str]:
    found = LINK.search(text(response))
    assert found, text(response)[:2000]
    return found.group(1), found.group(2)


def refused(client, login, users, method, url, data=None):
    for user in users:
        login(user)
        response = client.open(url, method=method, data=data or {})
        assert response.status_code == 403, (user.username, method, url, response.status_code)



# --- expert accounts ---------------------------------------------------------------------------------

def test_an_expert_account_is_opened_activated_through_the_link_and_signs_in(client, login, world):
    expert = factories.expert(world.bz, name="开通账号专家", employer="新疆某研究院开通")
    db.session.commit()
    users, events = count(User), factories.audit_events()
    url = f"/experts/{expert.id}/account"
    # another prefecture, a county below, the region above, a firm and an expert: refused, nothing written
    refused(client, login, [world.kz_staff, world.krl_admin, world.region_admin, world.firm_user, world.expert_user],
            "POST", url)
    refused(client, login, [world.kz_staff, world.firm_user], "POST", f"{url}/link")
    assert count(User) == users and factories.audit_events() == events
    login(world.region_admin)  # an upper bureau reads the expert but is not shown the account controls
    page = text(client.get(f"/experts/{expert.id}"))
    assert 'data-testid="expert-account"' not in page

    login(world.bz_staff)
    page = text(client.get(f"/experts/{expert.id}"))
    assert "尚未开通账号" in page and 'data-testid="account-open"' in page
    response = client.post(url)
    assert response.status_code == 200
    purpose, token = link_in(response)
    assert purpose == "activate"
    account = db.session.execute(sa.select(User).where(User.expert_id == expert.id)).scalar_one()
    assert account.role == Role.EXPERT and account.username == f"zj{expert.id:04d}" and account.awaiting_activation
    assert account.username in text(response) and "只显示这一次" in text(response)
    page = text(client.get(f"/experts/{expert.id}"))
    assert token not in page and 'data-testid="account-link"' not in page  # shown once: not on the next visit
    assert "未激活" in page and 'data-testid="account-reissue"' in page
    opened = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "expert.account_opened")).scalar_one()
    assert opened.bureau_id == world.bz.id and opened.actor_id == world.bz_staff.id
    assert client.post(url).status_code == 409  # one account per expert
    assert count(User, User.expert_id == expert.id) == 1

    # not yet activated: the account cannot sign in
    client.post("/logout")
    assert client.post("/login", data={"username": account.username, "password": NEW_PASSWORD}).status_code != 302

    # re-issue: the new link replaces the old one
    login(world.bz_staff)
    response = client.post(f"{url}/link")
    assert response.status_code == 200
    _, fresh = link_in(response)
    assert fresh != token
    client.post("/logout")
    assert client.get(f"/account/activate/{token}").status_code == 410
    assert client.get(f"/account/activate/{fresh}").status_code == 200
    weak = client.post(f"/account/activate/{fresh}", data={"new_password": "short", "confirm": "short"})
    assert weak.status_code == 422 and db.session.get(User, account.id).awaiting_activation
    response = client.post(f"/account/activate/{fresh}", data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and "/login" in response.headers["Location"]

    # the expert signs in and reaches their reviews
    response = client.post("/login", data={"username": account.username, "password": NEW_PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    assert client.get("/reviews").status_code == 200

    login(world.bz_staff)
    db.session.expire_all()
    page = text(client.get(f"/experts/{expert.id}"))
    assert "已激活" in page and "从未登录" not in page.split('data-testid="account-last-login"')[1][:80]
    assert expert.id in registry.expert_ids_with_login([expert.id])
    # once active, a new link is a password reset: an administrator's, not staff's
    assert client.post(f"{url}/link").status_code == 403
    login(world.bz_admin)
    response = client.post(f"{url}/link")
    assert response.status_code == 200 and link_in(response)[0] == "reset"


def test_an_expert_of_no_pool_left_gets_no_account_and_bad_buttons_are_refused(client, login, world):
    expert = factories.expert(world.bz, name="已移出专家")
    registry.change_expert_status(expert, "remove", "不再符合条件", world.bz_admin)
    db.session.commit()
    login(world.bz_staff)
    assert client.post(f"/experts/{expert.id}/account").status_code == 409
    assert client.post(f"/experts/{expert.id}/account/link").status_code == 409  # no account to re-issue for
    assert client.post("/experts/999999/account").status_code == 404
    assert count(User, User.expert_id == expert.id) == 0


# --- panel draws: who can sign in ----------------------------------------------------------------------

def _plan_submitted(world):
    e = factories.contracted(world)
    factories.submit_plan(e)
    db.session.commit()
    return e


def _no_login_experts(world, e):
    """Three experts of the engagement's field who cannot sign in: no account, awaiting activation, disabled."""
    none = factories.expert(e.bureau, name="无账号专家", employer="新疆某研究院无账号", fields=[e.field])
    pending = factories.expert(e.bureau, name="待激活专家", employer="新疆某研究院待激活", fields=[e.field])
    registry.open_expert_account(pending, world.bz_staff)
    disabled = factories.expert(e.bureau, name="已停用专家", employer="新疆某研究院停用", fields=[e.field])
    factories.expert_user(disabled.id).is_enabled = False
    db.session.flush()
    return none, pending, disabled


def test_an_online_draw_excludes_experts_who_cannot_sign_in_with_the_reason(world):
    e = _plan_submitted(world)
    able = factories.panel_experts(e, 3)
    cannot = _no_login_experts(world, e)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    assert not panel.offline
    reasons = {x["id"]: x["reasons"] for x in panel.draw.exclusions}
    for expert in cannot:
        assert "未开通账号或未激活，不能在线评审" in reasons[expert.id], expert.name
        assert expert.id not in panel.draw.result_ids
    for expert in able + [world.expert]:
        assert R.NO_LOGIN not in reasons.get(expert.id, [])
    assert draws.verify(panel.draw).ok
    # a replacement draw (an expert declines) leaves them out as well
    invitation = panel.invitations[0]
    replacement = factories.witnessed(R.respond(invitation, factories.expert_user(invitation.expert_id), accept=False,
                                                reason="出差"))[0]
    redraw = db.session.get(Draw, replacement.draw_id)
    redraw_reasons = {x["id"]: x["reasons"] for x in redraw.exclusions}
    assert all(R.NO_LOGIN in redraw_reasons[x.id] for x in cannot)
    assert replacement.expert_id not in {x.id for x in cannot}
    db.session.commit()


def test_an_online_panel_is_answered_and_scored_by_the_experts_themselves(client, login, world):
    e = _plan_submitted(world)
    panel = factories.own_panel(e, world.bz_staff)
    db.session.commit()
    invitation = panel.invitations[0]
    login(world.bz_staff)  # the bureau may not answer or score for an expert of an online panel
    assert client.post(f"/reviews/invitations/{invitation.id}/offline",
                       data={"action": "accept", "declaration": "y"}).status_code == 409
    R.respond(invitation, factories.expert_user(invitation.expert_id), accept=True, declaration_signed=True)
    db.session.commit()
    assert client.get(f"/reviews/{invitation.review.id}").status_code == 403
    assert invitation.recorded_by_id is None


# --- offline review ------------------------------------------------------------------------------------

def _points(review: Review, fraction: str = "0.9") -> list[Decimal]:
    return [(i.max_points * Decimal(fraction)).quantize(Decimal("0.5")) for i in review.rubric.items]


def _review_data(review: Review, points, action="submit") -> dict:
    data = {"opinion": "专家线下评审意见：总体可行", "action": action}
    for item, p in zip(review.rubric.items, points):
        data[f"score_{item.id}"] = str(p)
        data[f"comment_{item.id}"] = f"纸质评审表：{item.name}"
    return data


def test_an_offline_panel_draws_experts_without_accounts_and_staff_enter_their_scores(client, login, world):
    e = _plan_submitted(world)
    world.expert.available = False  # the pool: only experts who cannot sign in
    offline_experts = [factories.expert(e.bureau, name=f"线下专家{i}", employer=f"新疆某研究院线下{i}", fields=[e.field])
                       for i in range(3)]
    db.session.commit()
    url = f"/engagements/{e.id}/panel"
    before = count(Draw)
    login(world.bz_staff)
    online = client.post(url, data={"size": "3"})  # online: nobody left who can sign in
    assert online.status_code == 422 and "符合条件的候选不足" in text(online)
    assert count(ReviewPanel) == 0 and count(Draw) == before and e.state == S.PLAN_SUBMITTED
    refused(client, login, [world.kz_staff, world.firm_user, world.expert_user], "POST", url,
            {"size": "3", "offline": "y"})
    login(world.bz_staff)
    response = client.post(url, data={"size": "3", "offline": "y"})
    assert response.status_code == 302
    factories.witness_pending()  # the announced draw, witnessed and revealed
    db.session.commit()
    panel = db.session.execute(sa.select(ReviewPanel)).scalar_one()
    assert panel.offline and sorted(panel.draw.result_ids) == sorted(x.id for x in offline_experts)
    assert all(R.NO_LOGIN not in x["reasons"] for x in panel.draw.exclusions)
    assert "线下评审" in panel.draw.purpose
    page = text(client.get(f"/reviews/panels/{panel.id}"))
    assert 'data-testid="offline-badge"' in page and f'data-testid="offline-answer-{panel.invitations[0].id}"' in page

    # recording the answers: the panel's bureau only; acceptance needs the paper declaration
    first = panel.invitations[0]
    answer = f"/reviews/invitations/{first.id}/offline"
    refused(client, login, [world.kz_staff, world.krl_admin, world.firm_user, world.expert_user], "POST", answer,
            {"action": "accept", "declaration": "y"})
    login(world.bz_staff)
    assert client.post(answer, data={"declaration": "y"}).status_code == 400  # neither accept nor decline
    missing = client.post(answer, data={"action": "accept"})
    assert missing.status_code == 422 and "纸质无利益冲突声明" in text(missing)
    no_reason = client.post(answer, data={"action": "decline", "reason": ""})
    assert no_reason.status_code == 422 and "请填写专家拒绝的原因" in text(no_reason)
    db.session.expire_all()
    assert first.status == InvitationStatus.INVITED and first.recorded_by_id is None and count(Review) == 0
    for invitation in panel.invitations:
        response = client.post(f"/reviews/invitations/{invitation.id}/offline", data={"action": "accept", "declaration": "y"})
        assert response.status_code == 302
    db.session.expire_all()
    for invitation in panel.invitations:
        assert invitation.status == InvitationStatus.ACCEPTED and invitation.recorded_by_id == world.bz_staff.id
        assert "纸质声明" in invitation.declaration and world.bz_staff.username in invitation.declaration
    assert count(AuditEvent, AuditEvent.action == "panel.invitation_accepted",
                 AuditEvent.actor_id == world.bz_staff.id) == 3
    assert client.post(answer, data={"action": "accept", "declaration": "y"}).status_code == 409  # answered already

    # entering the scores on the experts' behalf
    reviews = [i.review for i in panel.invitations]
    review = reviews[0]
    refused(client, login, [world.kz_staff, world.firm_user, world.expert_user], "GET", f"/reviews/{review.id}")
    refused(client, login, [world.kz_staff, world.expert_user], "POST", f"/reviews/{review.id}",
            _review_data(review, _points(review)))
    login(world.bz_staff)
    page = text(client.get(f"/reviews/{review.id}"))
    assert 'data-testid="on-behalf"' in page and review.invitation.expert.name in page
    bad = _review_data(review, _points(review))
    bad[f"score_{review.rubric.items[0].id}"] = "999"
    response = client.post(f"/reviews/{review.id}", data=bad)
    assert response.status_code == 422 and "得分应在" in text(response)
    db.session.expire_all()
    assert review.status == ReviewStatus.DRAFT and not review.scores
    for r in reviews:
        response = client.post(f"/reviews/{r.id}", data=_review_data(r, _points(r)))
        assert response.status_code == 302, text(response)[:1000]
    db.session.expire_all()
    for r in reviews:
        assert r.status == ReviewStatus.SUBMITTED and r.entered_by_id == world.bz_staff.id
        assert r.entered_at is not None and "代为录入" in r.offline_note and "线下评审" in r.offline_note
    events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "review.submitted")).scalars().all()
    assert len(events) == 3 and all(ev.payload.get("offline") and ev.actor_id == world.bz_staff.id for ev in events)
    assert all("线下评审" in ev.summary for ev in events)
    # the outcome is computed as usual
    assert panel.decided_at is not None and panel.passed
    assert panel.score == R.panel_score([r.total for r in reviews], 5)
    assert e.state == S.FIELDWORK
    page = text(client.get(f"/reviews/panels/{panel.id}"))
    assert f'data-testid="offline-note-{review.id}"' in page and "代为录入" in page
    assert f'data-testid="recorded-by-{first.id}"' in page


# --- firm accounts -------------------------------------------------------------------------------------

def _register(client, world, username="applicant1") -> tuple[Firm, User]:
    data = {"name": f"自行申请账号测试有限公司{username}", "uscc": factories.uscc(), "legal_form": "limited_company",
            "kind": "consultancy", "address": "新疆库尔勒市石化大道 9 号", "legal_representative": "赵六",
            "contact_name": "钱七", "contact_phone": "0996-2111112", "fields": ["finance"],
            "declares_no_major_violation": "y", "bureau_id": str(world.lt.id), "username": username,
            "display_name": "钱七", "password": "Long-enough-1", "password_confirm": "Long-enough-1"}
    client.post("/logout")
    response = client.post("/register/firm", data=data)
    assert response.status_code == 302, text(response)[:1000]
    firm = db.session.execute(sa.select(Firm).where(Firm.name == data["name"])).scalar_one()
    user = db.session.execute(sa.select(User).where(User.username == username)).scalar_one()
    return firm, user


CLOSED_TO_APPLICANTS = ["/workspace", "/market", "/engagements", "/credit/mine", "/inspections", "/reviews"]


def test_a_self_registered_contact_sees_only_the_application_until_admitted(app, client, world):
    firm, user = _register(client, world)
    assert firm.status == FirmStatus.PENDING and user.is_firm_admin and user.firm_id == firm.id
    browser = Browser(app).sign_in("applicant1", "Long-enough-1")
    home = browser.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith(f"/firms/{firm.id}")
    for url in (f"/firms/{firm.id}", f"/firms/{firm.id}/edit", f"/firms/{firm.id}/staff/new",
                f"/firms/{firm.id}/relations/new", "/account", "/inbox"):
        assert browser.get(url).status_code == 200, url
    page = text(browser.get(f"/firms/{firm.id}"))
    assert 'data-testid="nav-market"' not in page and 'data-testid="firm-users-link"' not in page
    for url in CLOSED_TO_APPLICANTS + [f"/firms/{firm.id}/users", f"/firms/{world.firm.id}"]:
        assert browser.get(url).status_code == 403, url
    assert browser.post(f"/firms/{firm.id}/users", data={"username": "x.y", "display_name": "某人"}).status_code == 403
    # the API answers the same: the application, nothing else
    token = browser.post("/api/v1/tokens", json={"username": "applicant1", "password": "Long-enough-1"}).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert browser.get(f"/api/v1/firms/{firm.id}", headers=headers).status_code == 200
    assert browser.get("/api/v1/engagements", headers=headers).status_code == 403

    # admitted: the account is a firm's account like any other
    registry.change_firm_status(firm, "admit", world.lt_admin, reason="材料齐全", documents=factories.admission_papers())
    db.session.commit()
    for url in CLOSED_TO_APPLICANTS[:4] + [f"/firms/{firm.id}/users"]:
        assert browser.get(url).status_code == 200, url
    assert browser.get("/api/v1/engagements", headers=headers).status_code == 200
    # rejected firms' contacts are back to the application only, which they may complete to apply again
    firm2, _ = _register(client, world, "applicant2")
    registry.change_firm_status(firm2, "reject", world.lt_admin, reason="材料不全")
    db.session.commit()
    rejected = Browser(app).sign_in("applicant2", "Long-enough-1")
    assert rejected.get(f"/firms/{firm2.id}").status_code == 200
    assert rejected.get("/workspace").status_code == 403 and rejected.get(f"/firms/{firm2.id}/edit").status_code == 200


def test_a_firm_admin_adds_and_removes_the_firms_users(app, client, login, world):
    admin = world.firm_user
    admin.is_firm_admin = True
    member = factories.user("firm1.member", Role.FIRM_USER, firm_id=world.firm.id)
    other_admin = world.other_firm_user
    other_admin.is_firm_admin = True
    db.session.commit()
    url = f"/firms/{world.firm.id}/users"
    add = {"username": "firm1.new", "display_name": "张会计", "email": "", "phone": ""}
    # not the firm's administrator: its ordinary user, another firm's administrator, the bureau, an expert
    refused(client, login, [member, other_admin, world.bz_staff, world.bz_admin, world.expert_user], "GET", url)
    refused(client, login, [member, other_admin, world.bz_admin], "POST", url, add)
    refused(client, login, [member, other_admin, world.bz_admin], "POST", f"{url}/{member.id}/remove", {"reason": "离职"})
    assert count(User, User.username == "firm1.new") == 0 and member.is_enabled
    login(member)
    assert 'data-testid="firm-users-link"' not in text(client.get(f"/firms/{world.firm.id}"))

    login(admin)
    assert 'data-testid="firm-users-link"' in text(client.get(f"/firms/{world.firm.id}"))
    page = text(client.get(url))
    assert member.username in page and admin.username in page
    users, events = count(User), factories.audit_events()
    for bad, message in [({**add, "username": ""}, "请填写用户名"), ({**add, "username": member.username}, "该用户名已被使用"),
                         ({**add, "display_name": ""}, "请填写姓名"), ({**add, "email": "不是邮箱"}, "电子邮箱格式不正确")]:
        response = client.post(url, data=bad)
        assert response.status_code == 422 and message in text(response), message
    assert count(User) == users and factories.audit_events() == events
    response = client.post(url, data={**add, "firm_admin": "y"})
    assert response.status_code == 200
    purpose, token = link_in(response)
    new = db.session.execute(sa.select(User).where(User.username == "firm1.new")).scalar_one()
    assert purpose == "activate" and new.role == Role.FIRM_USER and new.firm_id == world.firm.id
    assert new.awaiting_activation and new.is_firm_admin
    assert db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "firm.user_added")).scalar_one().actor_id == admin.id
    client.post("/logout")
    assert client.post(f"/account/activate/{token}",
                       data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 302

    # removing: the member's browser session and API token end at once; a reason is required
    elsewhere = Browser(app).sign_in(member.username)
    assert elsewhere.get("/workspace").status_code == 200
    api_token = issue_token(member)
    db.session.commit()
    login(admin)
    remove = f"{url}/{member.id}/remove"
    response = client.post(remove, data={"reason": ""})
    assert response.status_code == 422 and "请填写移除原因" in text(response)
    db.session.expire_all()
    assert member.is_enabled and not elsewhere.signed_out()
    assert client.post(f"{url}/{admin.id}/remove", data={"reason": "自己"}).status_code == 409  # not oneself
    assert client.post(f"{url}/{other_admin.id}/remove", data={"reason": "别家"}).status_code == 404  # not this firm's
    response = client.post(remove, data={"reason": "已离职"})
    assert response.status_code == 302
    db.session.expire_all()
    assert not member.is_enabled and elsewhere.signed_out()
    assert db.session.execute(sa.select(ApiToken).where(ApiToken.user_id == member.id)).scalar_one().revoked_at
    assert client.get("/api/v1/firms", headers={"Authorization": f"Bearer {api_token}"}).status_code == 401
    assert Browser(app).post("/login", data={"username": member.username,
                                             "password": factories.PASSWORD}).status_code != 302
    removed = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "firm.user_removed")).scalar_one()
    assert removed.actor_id == admin.id and "已离职" in removed.summary
    assert db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "user.disabled",
                                                          AuditEvent.object_id == member.id)).scalar_one()
    assert client.post(remove, data={"reason": "再次"}).status_code == 409  # removed already
    assert "已移除" in text(client.get(url))
    # a pending activation link of a removed account no longer works
    added = registry.add_firm_user(world.firm, admin, username="firm1.temp", display_name="临时")[0]
    db.session.commit()
    registry.remove_firm_user(world.firm, added, admin, "录入错误")
    db.session.commit()
    link = db.session.execute(sa.select(AccountLink).where(AccountLink.user_id == added.id)).scalar_one()
    assert link.used_at is None and not db.session.get(User, added.id).is_enabled
