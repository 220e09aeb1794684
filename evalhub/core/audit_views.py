"""The audit checkpoints page: list, take one now, download one as a file to keep outside the system.

Its routes sit on the core blueprint (endpoints ``core.audit_checkpoints`` …) beside the audit log; the app
factory imports this module before registering that blueprint."""
from __future__ import annotations

import io

import sqlalchemy as sa
from flask import flash, redirect, render_template, send_file, url_for
from flask_login import current_user

from evalhub.core import anchoring
from evalhub.core.forms import ActionForm
from evalhub.core.models import AuditCheckpoint
from evalhub.core.views import bp
from evalhub.core.web import button, paginate, require
from evalhub.extensions import db



@bp.route("/audit/checkpoints")
def audit_checkpoints():
    require("audit.checkpoints")
    page = paginate(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()))
    return render_template("core/audit_checkpoints.html", page=page, form=ActionForm(),
                           statuses=anchoring.signature_statuses(page.items), sources=anchoring.SOURCES,
                           key_id=anchoring.key_id())


@bp.route("/audit/checkpoints", methods=["POST"])
def audit_checkpoint_create():
    require("audit.checkpoints")
    back = url_for("core.audit_checkpoints")
    try:
        return button(lambda: anchoring.create_checkpoint(source="manual", actor=current_user._get_current_object()),
                      to=back, message=_checkpoint_message, form=ActionForm())
    except anchoring.ChainBroken as exc:
        db.session.rollback()
        flash(exc.message, "danger")
        return redirect(back)


def _checkpoint_message(result) -> tuple[str, str]:
    checkpoint, created = result
    if created:
        return f"已生成检查点 #{checkpoint.id}（截至事件 #{checkpoint.last_event_id}），请下载保存在本系统之外。", "success"
    return f"自检查点 #{checkpoint.id} 以来审计链没有新事件，无需重复生成；请下载保存该检查点。", "info"


@bp.route("/audit/checkpoints/<int:checkpoint_id>.json")
def audit_checkpoint_download(checkpoint_id: int):
    require("audit.checkpoints")
    checkpoint = db.get_or_404(AuditCheckpoint, checkpoint_id)
    body = anchoring.dumps(anchoring.document(checkpoint)).encode("utf-8")
    return send_file(io.BytesIO(body), mimetype="application/json", as_attachment=True,
                     download_name=anchoring.filename(checkpoint))
