"""Security headers (issue 11, "Headers"): a strict Content-Security-Policy, X-Frame-Options, nosniff and
Referrer-Policy on every response — pages, the login page, errors, API answers, static files and downloads —
HSTS only where the app is served over HTTPS; and a guard that no template carries inline script or style,
which the policy would block (evalhub/core/security.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from evalhub import create_app
from evalhub.config import PROJECT_ROOT
from evalhub.core import security
from tests import factories

TEMPLATES = PROJECT_ROOT / "templates"

CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def csp_of(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request.path}"
    directives = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value.strip()
    return directives


def assert_security_headers(response) -> None:
    where = f"{response.request.method} {response.request.path} → {response.status_code}"
    csp = csp_of(response)
    for name, value in CSP_DIRECTIVES.items():
        assert csp.get(name) == value, (where, name, csp.get(name))
    for directive, value in csp.items():
        assert "'unsafe-inline'" not in value and "'unsafe-eval'" not in value, (where, directive, value)
    assert response.headers.get("X-Frame-Options") == "DENY", where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "same-origin", where


# --- every kind of response ------------------------------------------------------------------------

def test_login_page_has_every_header(client, world):
    response = client.get("/login")
    assert response.status_code == 200
    assert_security_headers(response)
    assert "Strict-Transport-Security" not in response.headers  # the test app is development, plain HTTP


def test_signed_in_html_pages_have_every_header(world, login):
    client = login(world.bz_admin)
    for path in ["/", "/firms", "/bureaus", f"/firms/{world.firm.id}", "/audit"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "text/html"
        assert_security_headers(response)


def test_redirects_and_error_pages_have_every_header(client, world):
    redirect = client.get("/firms")
    assert redirect.status_code == 302
    assert_security_headers(redirect)
    missing = client.get("/no-such-page")
    assert missing.status_code == 404
    assert_security_headers(missing)


def test_api_responses_have_every_header(client, world):
    token = client.post("/api/v1/tokens", json={"username": "bz.staff", "password": factories.PASSWORD})
    assert token.status_code == 201
    assert_security_headers(token)
    listed = client.get("/api/v1/firms", headers={"Authorization": f"Bearer {token.json['token']}"})
    assert listed.status_code == 200 and listed.mimetype == "application/json"
    assert_security_headers(listed)
    refused = client.get("/api/v1/firms")
    assert refused.status_code == 401 and refused.mimetype == "application/json"
    assert_security_headers(refused)


def test_static_files_have_every_header(client):
    for path in ["/static/evalhub.css", "/static/evalhub.js", "/static/vendor/bootstrap/bootstrap.bundle.min.js"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
        response.close()


def test_file_downloads_are_nosniff(world, login):
    client = login(world.bz_admin)
    for path in ["/audit?export=xlsx", "/imports/firms/template"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "attachment" in response.headers.get("Content-Disposition", ""), path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        assert_security_headers(response)


# --- HSTS only in production -----------------------------------------------------------------------

@pytest.fixture()
def other_app(app, monkeypatch):
    """create_app under a given EVALHUB_* environment; the job queue goes back to the test app afterwards."""
    from evalhub.core import jobs

    def make(env: dict[str, str]):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                           "FILE_STORE": app.config["FILE_STORE"], "MODELS_DIR": app.config["MODELS_DIR"]})

    yield make
    jobs.configure(app)


# What production requires to start (evalhub/config.py): a real secret key and the site's public address.
PRODUCTION = {"EVALHUB_ENV": "production", "EVALHUB_SECRET_KEY": "a-production-secret-" + "5e1d" * 8,
              "EVALHUB_PUBLIC_URL": "https://evalhub.example.gov.cn"}


def test_hsts_in_production(other_app):
    production = other_app(PRODUCTION)
    assert production.config["SESSION_COOKIE_SECURE"] is True
    client = production.test_client()
    for path in ["/login", "/static/evalhub.css", "/api/v1/firms"]:
        response = client.get(path)
        assert response.headers.get("Strict-Transport-Security") == "max-age=31536000", path
        assert_security_headers(response)
        response.close()


def test_no_hsts_when_production_is_declared_plain_http(other_app):
    plain = other_app({**PRODUCTION, "EVALHUB_COOKIE_SECURE": "0"})
    response = plain.test_client().get("/login")
    assert "Strict-Transport-Security" not in response.headers
    assert_security_headers(response)


def test_no_hsts_in_development_or_tests(app, other_app, client):
    assert not security.hsts_enabled(app)
    assert "Strict-Transport-Security" not in client.get("/static/evalhub.css").headers
    development = other_app({"EVALHUB_ENV": "development"})
    assert "Strict-Transport-Security" not in development.test_client().get("/login").headers


# --- no inline script or style, anywhere -----------------------------------------------------------

_SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.I)
_PATTERNS = [
    (re.compile(r"<style\b", re.I), "<style> block (put the rules in static/evalhub.css)"),
    (re.compile(r"(?<![\w\-.:])style\s*=", re.I), "style= attribute (use a class in static/evalhub.css)"),
    (re.compile(r"(?<![\w\-.:])on[a-z]+\s*=\s*[\"'{]", re.I),
     "inline event handler on…= (use data-* and static/evalhub.js)"),
    (re.compile(r"javascript\s*:", re.I), "javascript: URL (use data-* and static/evalhub.js)"),
]
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)


def inline_code(text: str) -> list[tuple[int, str]]:
    """(line, what) for every construct the Content-Security-Policy would block in ``text``."""
    # Jinja comments may talk about these things; blank them without moving the lines.
    text = _JINJA_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    found = []
    for match in _SCRIPT_TAG.finditer(text):
        attrs = match.group(1)
        if re.search(r"\bsrc\s*=", attrs, re.I):
            continue
        if re.search(r"""\btype\s*=\s*["']application/json["']""", attrs, re.I):
            continue  # a data block: never executed, so the policy allows it
        found.append((match.start(), "inline <script> (move it to static/evalhub.js)"))
    for pattern, what in _PATTERNS:
        found.extend((m.start(), what) for m in pattern.finditer(text))
    return [(text.count("\n", 0, pos) + 1, what) for pos, what in sorted(found)]


def test_the_guard_finds_what_it_guards_against():
    sample = "\n".join([
        "<script>alert(1)</script>",
        '<script src="/static/x.js"></script>',
        '<script type="application/json" id="d">{}</script>',
        '<button onclick="go()">',
        '<form class="x" onsubmit=\'return confirm("?")\'>',
        '<a href="javascript:history.back()">',
        '<div style="width: 3em">',
        "<style>p {}</style>",
        '<div data-onclick="x" data-style="y" class="pre-line">',
        "{# style=\"x\" onclick=\"y\" <script> #}",
    ])
    assert [line for line, _ in inline_code(sample)] == [1, 4, 5, 6, 7, 8]


def test_no_template_has_inline_script_or_style():
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) > 50
    problems = [f"templates/{path.relative_to(TEMPLATES)}:{line}: {what}"
                for path in templates for line, what in inline_code(path.read_text(encoding="utf-8"))]
    assert not problems, "the Content-Security-Policy blocks these:\n" + "\n".join(problems)


def test_rendered_pages_have_no_inline_script_or_style(world, login, client):
    """Macros and filters could still produce them: scan what is actually sent."""
    pages = {"/login": client.get("/login"), "/public/": client.get("/public/"), "/404": client.get("/no-such-page")}
    signed_in = login(world.bz_admin)
    for path in ["/", "/firms", "/experts", "/bureaus", f"/firms/{world.firm.id}", "/audit", "/draws"]:
        pages[path] = signed_in.get(path)
    for path, response in pages.items():
        assert response.status_code in (200, 404), (path, response.status_code)
        problems = inline_code(response.get_data(as_text=True))
        assert not problems, (path, problems)


def test_static_script_and_styles_are_linked_from_base():
    base = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    assert "filename='evalhub.js'" in base and "filename='evalhub.css'" in base
    assert (Path(security.__file__).parent.parent / "static" / "evalhub.js").is_file()


def test_static_urls_carry_their_version_and_a_versioned_file_is_kept_a_year(app, world, login):
    import hashlib
    import re
    from pathlib import Path

    page = login(world.bz_admin).get("/").get_data(as_text=True)
    client = app.test_client()
    content = (Path(app.static_folder) / "evalhub.js").read_bytes()
    version = hashlib.sha256(content).hexdigest()[:12]
    assert f'src="/static/evalhub.js?v={version}"' in page
    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert "?v=" in url, url  # every style sheet and script of the page
    kept = client.get(f"/static/evalhub.js?v={version}")
    assert kept.status_code == 200 and kept.data == content
    assert kept.cache_control.max_age == 365 * 24 * 3600 and kept.cache_control.public
    assert_security_headers(kept)
    kept.close()
    # without a version, or with another file's (a deployment since), asked again each time as before
    for url in ["/static/evalhub.js", "/static/evalhub.js?v=0123456789ab"]:
        response = client.get(url)
        assert response.status_code == 200 and not response.cache_control.max_age, url
        response.close()
    for n in range(3):  # names that are not files: refused, and not remembered (a request chooses them)
        assert client.get(f"/static/no-such-{n}.js?v=1").status_code == 404
        assert client.get(f"/static/../evalhub/__init__.py?v={n}").status_code == 404
    remembered = app.extensions["evalhub_asset_versions"]
    assert remembered["evalhub.js"] == version and not [name for name in remembered if "no-such" in name or ".." in name]


def test_a_changed_static_file_gets_a_new_url(tmp_path):
    from flask import Flask, url_for

    from evalhub.core import assets

    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "a.js").write_text("one")
    urls = []
    for text in ("one", "two"):  # a deployment: a new process reading the new file
        (folder / "a.js").write_text(text)
        app = Flask("x", static_folder=str(folder))
        assets.init_app(app)
        with app.test_request_context():
            urls.append(url_for("static", filename="a.js"))
            assert url_for("static", filename="missing.js") == "/static/missing.js"
    assert urls[0] != urls[1] and all(u.startswith("/static/a.js?v=") for u in urls)
    app.debug = True
    with app.test_request_context():
        assert url_for("static", filename="a.js") == "/static/a.js"  # development: files change under the server
