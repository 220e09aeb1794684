"""Running evalhub for real: ``GET /healthz`` for monitoring, and one JSON log line per request.

``/healthz`` answers 200 with ``{"status": "ok", ...}`` when the database answers and the job queue's
storage is reachable, 503 otherwise (naming what failed, nothing more: it is public). With
``EVALHUB_LOG_JSON=1`` every request writes one JSON line to the ``evalhub.request`` logger: time, request
id, user id, method, route (the URL rule, not the raw path, so ids do not leak into log aggregation),
status and duration in milliseconds.
"""
from __future__ import annotations

import json
import logging
import sys
import time
import uuid

import sqlalchemy as sa
from flask import Blueprint, Flask, g, jsonify, request
from flask_login import current_user

from evalhub.core import jobs
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

bp = Blueprint("ops", __name__)
request_log = logging.getLogger("evalhub.request")


@bp.route("/healthz")
def healthz():
    checks: dict[str, str] = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 — any failure is "not healthy", said in one word
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        jobs.huey.pending_count()  # reaches the queue's storage (Redis or the SQLite file)
        checks["queue"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["queue"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if healthy else "error", "checks": checks}), 200 if healthy else 503


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()},
                          ensure_ascii=False, separators=(",", ":"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    if not app.config.get("LOG_JSON"):
        return
    if not request_log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLineFormatter())
        request_log.addHandler(handler)
        request_log.setLevel(logging.INFO)
        request_log.propagate = False

    @app.before_request
    def _start_clock() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:16]

    @app.after_request
    def _log_request(response):
        started = g.get("request_started")
        # The user's id (not the session id, which carries the session generation too): for an API call the
        # token's account, whatever session cookie came with it (the API does not read the cookie).
        user = g.get("api_user")
        if user is None and not request.path.startswith("/api/") and current_user.is_authenticated:
            user = current_user
        request_log.info({
            "time": utcnow().isoformat(timespec="milliseconds") + "Z",
            "request_id": g.get("request_id"),
            "user_id": user.id if user is not None else None,
            "method": request.method,
            "route": request.url_rule.rule if request.url_rule else None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        })
        response.headers.setdefault("X-Request-ID", g.get("request_id", ""))
        return response
