"""Security audit: accounts, sessions and the attacker's view.

Each test states the rule it holds the code to and fails on the current code because of the defect it names.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from evalhub.core import notifications
from evalhub.core.models import User
from evalhub.extensions import db
from tests import factories
from tests.browsers import Browser


# --- password-reset poisoning through the Host header -------------------------------------------------

def test_a_forgot_password_email_links_to_the_configured_site_not_to_the_requests_host(app, world, monkeypatch):
    """OWASP ASVS 2.5 / WSTG-INPV-17 (Host header injection, "password reset poisoning"): a link e-mailed to
    a person is built from the site's configured address (EVALHUB_PUBLIC_URL, which core/notifications.py
    ``absolute_link`` already uses for every other e-mail), never from the Host header of the request.

    Defect: core/accounts.py ``link_url`` builds the reset link with ``url_for(..., _external=True)`` whenever
    a request is at hand, i.e. from the Host header sent by whoever asked "忘记密码". An attacker asks for a
    reset of bz.staff with ``Host: evil.example``; the platform e-mails bz.staff a genuine token pointing at the
    attacker's host; one click hands the attacker the token and the account."""
    sent = []
    monkeypatch.setattr(notifications, "send_mail", lambda to, subject, body: sent.append(body) or True)
    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.cn")
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://jxpj.czt.example.gov.cn")
    world.bz_staff.email = "bz.staff@example.cn"
    db.session.commit()
    response = Browser(app).post("/account/forgot", data={"identifier": "bz.staff"},
                                 headers={"Host": "evil.example"}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 200
    assert len(sent) == 1
    url = re.search(r"https?://\S+/account/reset/\S+", sent[0]).group(0)
    assert url.startswith("https://jxpj.czt.example.gov.cn/account/reset/"), (
        f"the reset e-mail sent to bz.staff links to {url!r}: the attacker's Host header")


@pytest.fixture()
def proxied_app(app, monkeypatch, tmp_path):
    """The app as deploy/evalhub.env.example runs it behind deploy/nginx-evalhub.conf: EVALHUB_PROXY_HOPS=1
    (same test database; CSRF off as in the test app)."""
    from evalhub import create_app
    from evalhub.core import jobs

    monkeypatch.setenv("EVALHUB_PROXY_HOPS", "1")
    monkeypatch.setenv("EVALHUB_INSTANCE_PATH", str(tmp_path))
    other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                        "FILE_STORE": app.config["FILE_STORE"], "MODELS_DIR": app.config["MODELS_DIR"],
                        "SECRET_KEY": "test-secret", "FIELD_KEY": "test-field-key", "WTF_CSRF_ENABLED": False,
                        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "MAIL_SERVER": "smtp.example.cn"})
    assert other.config["PROXY_HOPS"] == 1
    yield other
    jobs.configure(app)


def test_behind_nginx_a_client_supplied_x_forwarded_host_does_not_choose_the_host_of_emailed_links(
        proxied_app, world, monkeypatch):
    """OWASP ASVS 14.5 / WSTG-INPV-17: only headers the trusted proxy sets may be believed. The documented
    proxy (deploy/nginx-evalhub.conf) sets Host, X-Forwarded-For and X-Forwarded-Proto — never
    X-Forwarded-Host — so whatever X-Forwarded-Host reaches the app was written by the client.

    Defect: evalhub/__init__.py ``create_app`` wraps the app in ``ProxyFix(..., x_host=hops)``, so with
    EVALHUB_PROXY_HOPS=1 the client's own ``X-Forwarded-Host`` becomes ``request.host``. nginx passes it
    through untouched; a "忘记密码" request carrying ``X-Forwarded-Host: evil.example`` makes the platform
    e-mail the victim a genuine reset token on the attacker's host, even though nginx sent the real Host."""
    sent = []
    monkeypatch.setattr(notifications, "send_mail", lambda to, subject, body: sent.append(body) or True)
    world.bz_staff.email = "bz.staff@example.cn"
    db.session.commit()
    client = proxied_app.test_client()
    with proxied_app.app_context():
        response = client.post("/account/forgot", data={"identifier": "bz.staff"},
                               headers={"Host": "evalhub.example.gov.cn",  # what nginx sends ($host)
                                        "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                                        "X-Forwarded-Host": "evil.example"})  # the client's, passed through
        db.session.remove()
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert len(sent) == 1
    url = re.search(r"https?://\S+/account/reset/\S+", sent[0]).group(0)
    assert urlsplit(url).hostname == "evalhub.example.gov.cn", (
        f"the reset e-mail links to {url!r}: the host came from the client's X-Forwarded-Host")


# --- public self-registration without any limit --------------------------------------------------------

def _registration(world, n: int) -> dict:
    return {"name": f"批量注册测试咨询有限公司{n}", "uscc": factories.uscc(), "legal_form": "limited_company",
            "kind": "consultancy", "address": f"新疆库尔勒市石化大道 {n} 号", "legal_representative": "赵六",
            "contact_name": "钱七", "contact_phone": f"0996-21{n:05d}", "fields": ["finance"],
            "declares_no_major_violation": "y", "bureau_id": str(world.lt.id), "username": f"bulk{n:03d}",
            "display_name": "钱七", "password": "Long-enough-1", "password_confirm": "Long-enough-1"}


def test_firm_self_registration_is_limited_per_source_like_the_other_public_forms(app, world):
    """OWASP ASVS 11.1.4 (anti-automation on business functions) / 等级保护 2.0 入侵防范: every form that lets an
    anonymous visitor write is limited per source address — "忘记密码" (RESET_REQUESTS_PER_HOUR, 5), the complaint
    form (supervision.complaints_per_hour), the complaint lookup (20/hour) — through ``core/accounts.py``
    ``count_hit``.

    Defect: the public firm registration (registry/views.py ``firm_register`` → registry/services.py
    ``register_firm_application``) counts nothing: one address opens firm applications and signed-in accounts
    without end (each one a firm row, an account, audit events and a task in the bureau's admission queue).
    Here 21 applications from one address within a minute are all accepted; none is refused with 429."""
    statuses = []
    for n in range(21):
        response = Browser(app).post("/register/firm", data=_registration(world, n),
                                     environ_base={"REMOTE_ADDR": "198.51.100.23"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[0] == 302, statuses  # a first application is welcome
    opened = db.session.execute(sa.select(sa.func.count(User.id)).where(User.username.like("bulk%"))).scalar_one()
    assert 429 in statuses, f"{opened} firm accounts opened from one address in a row: statuses {statuses}"


# --- a bureau administrator taking over a fellow administrator ----------------------------------------

def test_a_bureau_admin_cannot_take_over_a_fellow_admin_of_the_same_bureau(app, world):
    """Separation of administrators (等级保护 2.0 访问控制: 授予管理用户所需的最小权限，实现管理用户的权限分离;
    core/permissions.py: a bureau administrator creates "never another administrator of its own bureau", and
    changing a role "is the same right as creating that bureau's administrator").

    Defect: core/permissions.py ``administers`` (the right behind ``user.administer``) lets a bureau
    administrator look after *every* account of its own bureau, fellow administrators included. bz.admin cannot
    create or re-role a second 巴州 administrator (403), yet gets a password-reset link for that administrator's
    account shown on screen (core/account_views.py ``user_reset_link`` → core/accounts.py ``admin_reset_link``)
    and may clear their second factor (``user_totp_reset``): set the password through the link and sign in as
    the peer — every later action in the audit log under the peer's name."""
    from evalhub.core.enums import Role

    peer = factories.user("bz.admin2", Role.BUREAU_ADMIN, bureau_id=world.bz.id)
    db.session.commit()
    admin = Browser(app).sign_in("bz.admin")
    # the right to create or re-role a peer administrator is refused …
    assert admin.post(f"/users/{peer.id}/role", data={"role": "bureau_staff", "reason": "试探"}).status_code == 403
    # … but the way into the peer's account is not
    response = admin.post(f"/users/{peer.id}/reset-link", data={})
    links = re.findall(r'value="(http[^"]+/account/(?:reset|activate)/[^"]+)"', response.get_data(as_text=True))
    assert response.status_code in (403, 404) and not links, (
        f"bz.admin was shown a reset link into fellow administrator bz.admin2's account: {links}")


# --- production configuration --------------------------------------------------------------------------

def test_production_refuses_the_example_files_placeholder_secret_key(app, monkeypatch, tmp_path):
    """等级保护 2.0 / OWASP ASVS 6.4.1, 14.1 (no default secrets in production): evalhub/config.py already refuses to
    start in production without EVALHUB_SECRET_KEY ("生产环境必须配置会话密钥"), because whoever knows the key signs
    session cookies.

    Defect: ``Config.__init__`` accepts any non-empty value, including the placeholder ``CHANGE-ME`` that
    deploy/evalhub.env.example ships and that an operator who copies the file without editing it runs with. The
    key is then public: a session cookie ``{"_user_id": "1:1"}`` signed with it (generations start at 1) is the
    first system administrator, without a password or a second factor. The placeholder (and FIELD_KEY's, which
    falls back to it) must be refused like a missing key."""
    from evalhub import create_app
    from evalhub.core import jobs

    example = (factories.__file__.rsplit("/tests/", 1)[0] + "/deploy/evalhub.env.example")
    placeholder = re.search(r"^EVALHUB_SECRET_KEY=(.*)$", open(example, encoding="utf-8").read(), re.M).group(1)
    assert placeholder == "CHANGE-ME"
    monkeypatch.setenv("EVALHUB_ENV", "production")
    monkeypatch.setenv("EVALHUB_SECRET_KEY", placeholder)
    monkeypatch.setenv("EVALHUB_FIELD_KEY", placeholder)
    monkeypatch.setenv("EVALHUB_INSTANCE_PATH", str(tmp_path))
    # otherwise complete, so that the refusal is the key's (production also requires the public address)
    monkeypatch.setenv("EVALHUB_PUBLIC_URL", "https://evalhub.example.gov.cn")
    try:
        with pytest.raises(RuntimeError, match="EVALHUB_SECRET_KEY"):
            create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                        "FILE_STORE": app.config["FILE_STORE"], "MODELS_DIR": app.config["MODELS_DIR"]})
    finally:
        jobs.configure(app)


# --- one-time links outliving the organisation's exclusion -----------------------------------------------

def test_an_activation_link_issued_before_the_firm_was_blacklisted_no_longer_opens_the_account(app, world):
    """docs/rules.md (Accounts): "No new activation or reset link for a removed expert or a rejected, removed or
    blacklisted firm (as for opening an account), on every path" — a blacklisted firm gets no account opened.

    Defect: the rule is asked only when a link is *issued* (core/accounts.py ``issue_link`` →
    ``_link_refused``); ``check_link`` / ``use_link`` never ask it again, and blacklisting (registry/services.py
    ``change_firm_status``) leaves the firm's unused links alive. The bureau opens the firm's first account (a
    7-day activation link e-mailed to the firm's contact), blacklists the firm the next day — and the link still
    activates the account, which then signs in: exactly the account opening the rule forbids."""
    from evalhub.registry import services as registry

    firm = factories.firm(world.bz, name="拟列入黑名单评价咨询有限公司")
    user, token = registry.open_firm_account(firm, world.bz_staff)
    db.session.commit()
    registry.change_firm_status(firm, "blacklist", world.bz_admin, reason="出具虚假评价报告，列入黑名单")
    db.session.commit()
    # the rule itself holds for a new link …
    from evalhub.core import accounts
    from evalhub.core.errors import Conflict
    with pytest.raises(Conflict):
        accounts.issue_link(user, accounts.LinkPurpose.ACTIVATION, world.bz_staff)
    db.session.rollback()
    # … but the link issued the day before still opens the account
    strong = "Tianshan-2025!"
    response = Browser(app).post(f"/account/activate/{token}", data={"new_password": strong, "confirm": strong})
    signed_in = Browser(app).post("/login", data={"username": user.username, "password": strong})
    assert response.status_code != 302 and signed_in.status_code != 302, (
        f"the blacklisted firm's account {user.username} was activated (HTTP {response.status_code}) and "
        f"signed in (HTTP {signed_in.status_code}) through a link issued before the blacklisting")
