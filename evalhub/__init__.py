"""evalhub — third-party performance-evaluation market and supervision for finance bureaus."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Iterable

from flask import Flask, has_request_context, render_template, request, url_for
from flask.helpers import get_debug_flag
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape

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
    # Flask turns debug on by itself from FLASK_DEBUG (or `flask run --debug`): in production that would show
    # tracebacks instead of the Chinese error page, and under `flask run` a console that runs Python.
    if app.config["ENV_NAME"] == "production" and (app.debug or get_debug_flag()):
        raise RuntimeError("生产环境（EVALHUB_ENV=production）不能开启 Flask 调试模式（DEBUG）：请删除 FLASK_DEBUG 设置，"
                           "不要使用 flask run --debug。")
    if app.config.get("PROXY_HOPS"):
        # Behind nginx (deploy/nginx-evalhub.conf): trust only the headers it sets — X-Forwarded-For/-Proto for the
        # client address and https; it passes Host itself. Never X-Forwarded-Host: nginx does not set it, so any
        # that arrives was written by the client (it would choose the host of the links we e-mail).
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)

    from evalhub.core import driver  # psycopg's lazy description; pooled connections checked after idle

    db.init_app(app)
    with app.app_context():
        driver.ping_after_idle(db.engine, app.config["DB_PING_AFTER_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    from evalhub.core import security

    security.init_app(app)  # CSP, X-Frame-Options, nosniff, Referrer-Policy on every response; HSTS in production
    from evalhub.core import ops

    ops.init_app(app)  # GET /healthz; JSON request log lines when EVALHUB_LOG_JSON=1
    from evalhub.core import inputs

    inputs.init_app(app)  # bounded <int:…> ids on every route, no control characters in query strings
    from evalhub.core import assets

    assets.init_app(app)  # static URLs carry their content's version; a versioned one is cached for a year
    login_manager.init_app(app)
    login_manager.login_view = "core.login"
    login_manager.login_message = "请先登录。"
    login_manager.login_message_category = "warning"

    _import_models()
    from evalhub.core import jobs
    from evalhub.core.web import close_to_visitors

    jobs.configure(app)
    close_to_visitors(app)  # sign-in first, before any hook reads the account's scope
    _register_preload(app)  # before the blueprints' hooks (the account gate reads the bureau's settings)
    _end_reads_with_commit(app)
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
        # deadlines: a domain's recount of its stored deadlines when a calendar is corrected (core.calendar.on_change)
        for module in ("models", "permissions", "services", "imports", "deadlines"):
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


_WROTE = "evalhub.wrote"  # on a connection: its transaction ran a statement other than a SELECT


def _end_reads_with_commit(app: Flask) -> None:
    """End a PostgreSQL transaction that only read with COMMIT rather than ROLLBACK (the same for the data).
    psycopg forgets its prepared statements at every ROLLBACK, so every page planned each of its statements
    anew; after a COMMIT a statement run five times on a connection is prepared and later pages skip parsing
    and planning it. A transaction that ran anything else (a write, a SAVEPOINT, a CTE), failed, or leaves ORM
    changes unflushed ends as before, rolled back. No ORM after_commit hook runs: only the connection commits."""
    import sqlalchemy as sa

    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        return

    @sa.event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.info[_WROTE] = False

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _note_write(conn, cursor, statement, parameters, context, executemany) -> None:
        if not statement.lstrip()[:7].upper().startswith("SELECT "):
            conn.info[_WROTE] = True

    # Registered after Flask-SQLAlchemy's teardown, so it runs first (Flask calls them in reverse), just before
    # the session is removed: nothing uses the session after it.
    @app.teardown_appcontext
    def _commit_reads(exc) -> None:
        from psycopg.pq import TransactionStatus

        if exc is not None or not db.session.registry.has():
            return
        session = db.session()
        if not session.in_transaction() or session.new or session.dirty or session.deleted:
            return
        conn = session.connection()
        if conn.info.get(_WROTE, True) or conn.in_nested_transaction():
            return
        if conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.INTRANS:
            try:
                conn.commit()
            except Exception:  # noqa: BLE001  (a broken connection: the session's close discards it, as before)
                app.logger.warning("read-only transaction: COMMIT failed", exc_info=True)


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
    from evalhub.core.formatting import points_text, wan
    from evalhub.core.timeutil import format_beijing

    app.jinja_env.filters["bj"] = format_beijing
    app.jinja_env.filters["num"] = points_text
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

    def bureau_options(bureaus: Iterable[Any], chosen: Any = None, label: str = "short_name") -> Markup:
        """The ``<option>``s of a bureau filter, ``chosen`` (an id, or its text as typed) selected, each named by
        ``label`` (``short_name`` falls back to the name). Built here, not by a template loop: the region's 99
        bureaus cost ~1 ms of Jinja, a quarter of that here."""
        chosen = "" if chosen is None else str(chosen)
        return Markup("".join(
            f'<option value="{b.id}"{" selected" if str(b.id) == chosen else ""}>'
            f'{escape(getattr(b, label) or b.name)}</option>' for b in bureaus))

    app.jinja_env.globals["bureau_options"] = bureau_options

    def strict(allowed: frozenset[str]):
        def can(action: str) -> bool:
            if action not in NAV_ACTIONS:  # the cache key would not know it: add it to NAV_ACTIONS
                raise KeyError(f"navigation action {action!r} not in NAV_ACTIONS")
            return action in allowed
        return can

    @functools.lru_cache(maxsize=128)
    def _nav_links(script_root: str, allowed: frozenset[str], unit: bool) -> Markup:
        return Markup(app.jinja_env.get_template("macros/nav_links.html").render(can=strict(allowed), unit=unit))

    def nav_links() -> Markup:
        """base.html's links for what the signed-in user may do: the same HTML for every user with the same
        answers to NAV_ACTIONS, so rendered once per process for each combination (the ``can`` calls, about a
        dozen, still run on every page: the answers are the cache key, so a rule change shows at once)."""
        user = current_user._get_current_object()
        allowed = frozenset(action for action in NAV_ACTIONS if permissions.can(user, action))
        script_root = request.script_root if has_request_context() else ""
        return _nav_links(script_root, allowed, bool(getattr(user, "budget_unit_id", None)))

    app.jinja_env.globals["nav_links"] = nav_links

    @app.context_processor
    def inject() -> dict:
        # The user behind the proxy, read once: the navigation alone asks ``can`` a dozen times per page.
        user = current_user._get_current_object()
        return {"can": lambda action, obj=None: permissions.can(user, action, obj)}


# What templates/macros/nav_links.html asks ``can``: its cache key (``nav_links``).
NAV_ACTIONS = ("firm.list", "expert.list", "plan.list", "marketplace.use", "results.list", "results.unit_home",
               "dashboard.bureau", "screening.view", "redflags.view", "audit.view", "notifications.matrix",
               "user.directory", "notice.media.list")


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
