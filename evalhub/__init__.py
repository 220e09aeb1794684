"""evalhub — third-party performance-evaluation market and supervision for finance bureaus."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, jsonify, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from evalhub.config import PROJECT_ROOT, Config
from evalhub.core.errors import DomainError
from evalhub.extensions import csrf, db, login_manager, migrate


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
        instance_relative_config=True,
        # Production keeps its data outside the code (deploy/evalhub.env.example): /var/lib/evalhub.
        instance_path=os.environ.get("EVALHUB_INSTANCE_PATH") or None,
    )
    instance = Path(app.instance_path)
    app.config.update(Config(instance).as_dict())
    if overrides:
        app.config.update(overrides)
    if app.config.get("PROXY_HOPS"):
        # Behind nginx (deploy/nginx-evalhub.conf): trust its X-Forwarded-For/-Proto for the client address and https.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    from evalhub.core import security

    security.init_app(app)  # CSP, X-Frame-Options, nosniff, Referrer-Policy on every response; HSTS in production
    from evalhub.core import ops

    ops.init_app(app)  # GET /healthz; JSON request log lines when EVALHUB_LOG_JSON=1
    from evalhub.core import inputs

    inputs.init_app(app)  # bounded <int:…> ids on every route, no control characters in query strings
    login_manager.init_app(app)
    login_manager.login_view = "core.login"
    login_manager.login_message = "请先登录。"
    login_manager.login_message_category = "warning"

    _import_models()
    from evalhub.core import jobs

    jobs.configure(app)
    _register_preload(app)  # before the blueprints' hooks (the account gate reads the bureau's settings)
    _register_blueprints(app)
    _register_template_helpers(app)
    _register_error_handlers(app)

    @app.after_request
    def no_store(response):
        # Pages carry personal and sealed data and change as work moves on: never serve them from a cache
        # (the Back button after a background job would otherwise show the page as it was).
        if response.mimetype in ("text/html", "application/json") and not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    from evalhub.cli import register_cli

    register_cli(app)
    if not app.config.get("TESTING"):
        from evalhub.screening.services import load_active_model_at_start

        load_active_model_at_start(app)
    return app


# Each domain, in level order. Importing a domain's modules registers what it adds to the spines below it:
# its models (so metadata and Alembic see the whole schema), its rows and actions in core.permissions, its
# job kinds and hourly tasks in core.jobs, its state-machine requirements and hooks in procurement.workflow,
# its eligibility checks and upload hooks. A lower module never imports a higher one (tests/test_layers.py).
DOMAINS = ("registry", "procurement", "review", "results", "supervision", "credit", "screening", "integrity")


def _import_models() -> None:
    import importlib

    import evalhub.core.models  # noqa: F401
    import evalhub.core.anchoring  # noqa: F401  (registers the daily audit checkpoint)
    for domain in DOMAINS:
        for module in ("models", "permissions", "services", "imports"):
            try:
                importlib.import_module(f"evalhub.{domain}.{module}")
            except ModuleNotFoundError as exc:
                if exc.name != f"evalhub.{domain}.{module}":
                    raise


def _register_preload(app: Flask) -> None:
    from flask_login import current_user

    from evalhub.core import permissions

    @app.before_request
    def preload_scope():
        # A signed-in bureau user's pages all read the bureau, its ancestors (inherited settings) and its
        # subtree (every scoped query): one statement here instead of three lazy loads later.
        if request.endpoint in (None, "static") or request.path.startswith("/api/"):
            return None
        if current_user.is_authenticated:
            permissions.preload(current_user._get_current_object())
        return None


def _register_blueprints(app: Flask) -> None:
    import evalhub.core.account_views  # noqa: F401  (我的账号 and the accounts page, on the core blueprint)
    import evalhub.core.auth_views  # noqa: F401  (TOTP step, 忘记密码, one-time links, the account gate)
    import evalhub.core.audit_views  # noqa: F401  (audit checkpoints, on the core blueprint)
    import evalhub.dashboard  # noqa: F401  (adds the dashboard route to the core blueprint)
    from evalhub.api import bp as api_bp
    from evalhub.core.views import bp as core_bp
    from evalhub.credit.views import bp as credit_bp
    from evalhub.integrity.views import bp as integrity_bp
    from evalhub.procurement.views import bp as procurement_bp
    from evalhub.public.views import bp as public_bp
    from evalhub.registry.views import bp as registry_bp
    from evalhub.results.views import bp as results_bp
    from evalhub.review.views import bp as review_bp
    from evalhub.screening.views import bp as screening_bp
    from evalhub.supervision.views import bp as supervision_bp

    app.register_blueprint(core_bp)
    app.register_blueprint(registry_bp)
    app.register_blueprint(procurement_bp)
    app.register_blueprint(review_bp)
    app.register_blueprint(results_bp)
    app.register_blueprint(credit_bp)
    app.register_blueprint(supervision_bp)
    app.register_blueprint(screening_bp)
    app.register_blueprint(integrity_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(api_bp)


def _register_template_helpers(app: Flask) -> None:
    from flask_login import current_user

    from evalhub.core import permissions
    from evalhub.core.timeutil import format_beijing

    app.jinja_env.filters["bj"] = format_beijing

    def wan(value) -> str:
        """Yuan → 万元 as the bureaus write it."""
        if value is None:
            return ""
        return f"{value / 10000:,.2f}"

    app.jinja_env.filters["wan"] = wan

    @functools.lru_cache(maxsize=256)
    def _url(script_root: str, endpoint: str, filename: str | None) -> str:
        return url_for(endpoint, filename=filename) if filename else url_for(endpoint)

    def nav_url(endpoint: str, filename: str | None = None) -> str:
        """``url_for`` for a link without arguments (the navigation, static files), built once per process:
        base.html has thirty of them on every page. The path depends only on where the app is mounted."""
        if not has_request_context():  # a page rendered by a job or the CLI: as url_for builds it there
            return url_for(endpoint, filename=filename) if filename else url_for(endpoint)
        return _url(request.script_root, endpoint, filename)

    app.jinja_env.globals["nav_url"] = nav_url

    @app.context_processor
    def inject() -> dict:
        # The user behind the proxy, read once: the navigation alone asks ``can`` a dozen times per page.
        user = current_user._get_current_object()
        return {"can": lambda action, obj=None: permissions.can(user, action, obj)}


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    from evalhub.core import concurrency
    from evalhub.core.api import api_error

    concurrency.init_app(app, _wants_json, api_error)  # a unique violation (two requests at once) → 409, not 500

    @app.errorhandler(DomainError)
    def domain_error(err: DomainError):
        db.session.rollback()  # nothing half-written
        if _wants_json():
            return api_error(err.status, err.code, err.message, err.fields)
        return render_template("error.html", status=err.status, message=err.message), err.status

    @app.errorhandler(CSRFError)
    def csrf_error(err: CSRFError):
        return render_template("error.html", status=400, message="表单已过期或缺少安全令牌（CSRF），请刷新页面后重试。"), 400

    messages = {
        400: "请求无效。",
        401: "请先登录。",
        403: "您没有权限访问此页面。",
        404: "页面不存在。",
        405: "不允许的请求方法。",
        409: "当前状态不允许此操作。",
        413: f"上传的文件超过 {app.config['MAX_UPLOAD_MB']} MB 的大小限制。",
        422: "提交的内容有误。",
        429: "请求过于频繁，请稍后再试。",
    }
    codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
             405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "validation_failed",
             429: "too_many_requests"}

    def http_error(err):
        status = getattr(err, "code", 500) or 500
        message = messages.get(status, "服务器内部错误。")
        # The exception's own headers (Allow on a 405, as RFC 9110 requires; WWW-Authenticate …).
        headers = [(k, v) for k, v in err.get_headers() if k.lower() != "content-type"] \
            if hasattr(err, "get_headers") else []
        if _wants_json():
            body, _ = api_error(status, codes.get(status, "error"), message)
            return body, status, headers
        return render_template("error.html", status=status, message=message), status, headers

    for status in messages:
        app.register_error_handler(status, http_error)

    @app.errorhandler(500)
    def server_error(err):
        db.session.rollback()
        if _wants_json():
            return api_error(500, "server_error", "服务器内部错误。")
        return render_template("error.html", status=500, message="服务器内部错误，请稍后再试。"), 500
