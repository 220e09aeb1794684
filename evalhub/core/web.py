"""Small helpers shared by the HTML views: load-and-authorise, form errors, Excel responses, pagination."""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, request, send_file
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.sql import Select

import io

from evalhub.core import permissions
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import XLSX_MIMETYPE
from evalhub.extensions import db


def load(model: type, object_id: int, action: str) -> Any:
    """Fetch a row and check the user may do ``action`` to it: 404 when missing, 403 when refused."""
    obj = db.session.get(model, object_id)
    if obj is None:
        abort(404)
    if not permissions.can(current_user, action, obj):
        abort(403)
    return obj


def require(action: str, obj: Any = None) -> None:
    if not permissions.can(current_user, action, obj):
        abort(403)


def apply_errors(form: FlaskForm, exc: ValidationFailed) -> None:
    """Show a service's field errors next to the form fields; the rest at the top of the form."""
    leftovers = []
    for name, message in exc.fields.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors or []) + [message]
        else:
            leftovers.append(message)
    form.form_errors = list(getattr(form, "form_errors", []) or []) + (leftovers or ([] if exc.fields else [exc.message]))


def paginate(stmt: Select, per_page: int | None = None):
    return db.paginate(stmt, page=request.args.get("page", 1, type=int),
                       per_page=per_page or current_app.config["PAGE_SIZE"], error_out=False, max_per_page=200)


def xlsx_response(data: bytes, filename: str):
    return send_file(io.BytesIO(data), mimetype=XLSX_MIMETYPE, as_attachment=True, download_name=filename)


def wants_export() -> bool:
    return request.args.get("export") == "xlsx"


def show_errors(form: FlaskForm, exc: ValidationFailed) -> None:
    """The service's messages beside their fields, and its whole sentence at the top of the form (the
    per-field messages are sometimes as short as "必填")."""
    apply_errors(form, exc)
    errors = list(getattr(form, "form_errors", []) or [])
    if exc.message not in errors:
        form.form_errors = [exc.message] + errors


def submit_form(form: FlaskForm, call) -> tuple[bool, Any, int]:
    """Validate ``form`` and run the service ``call``: (done, result, HTTP status).

    Bad input answers 4xx with nothing written (422; 429 when rate-limited); success commits. A plain
    DomainError about the input (e.g. too few eligible people for a draw) is shown the same way; conflicts
    and refusals propagate to the app's error handlers (409, 403).
    """
    from evalhub.core.errors import Conflict, DomainError, PermissionDenied

    if not form.validate_on_submit():
        return False, None, 422 if request.method == "POST" else 200
    try:
        result = call()
    except ValidationFailed as exc:
        db.session.rollback()
        show_errors(form, exc)
        return False, None, exc.status
    except (Conflict, PermissionDenied):
        raise
    except DomainError as exc:
        db.session.rollback()
        show_errors(form, ValidationFailed(exc.message))
        return False, None, 422
    db.session.commit()
    return True, result, 200
