"""What every HTML view does, written once, so that a view reads as: check, call the service, answer.

- sign-in: ``close_to_visitors`` closes every page to anonymous visitors; ``public`` opens one route,
  ``visitors_only`` one for those not signed in;
- load and authorise: ``load``, ``load_child``, ``require``, ``own_bureau``, ``can_in_own_bureau``;
- forms: ``handle_form`` (validate, call the service, commit, flash and redirect — or show the page again
  with the errors and 422), ``form_page`` (the page of a form of its own), ``button`` (a POST that is only a
  CSRF token), and ``submit_form`` beneath them for the few views that need the steps apart;
- downloads: ``send_stored``; Excel imports run as jobs: ``xlsx_import``;
- lists: ``evalhub.core.listing`` (``Listing``; ``paginate``, ``scoped``, ``wants_export`` and
  ``xlsx_response`` are importable from here too).
"""
from __future__ import annotations

import functools
import io
from typing import Any, Callable, Union

from flask import Flask, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from flask_login.config import EXEMPT_METHODS
from flask_wtf import FlaskForm

from evalhub.core import bureau_tree, files, jobs, permissions
from evalhub.core.enums import BUREAU_SIDE
from evalhub.core.errors import ValidationFailed
from evalhub.core.listing import paginate, scoped, wants_export, xlsx_response  # noqa: F401  (the views' names)
from evalhub.extensions import db


def public(view: Callable) -> Callable:
    """Mark a route that anyone may open, signed in or not (the login page, a public notice): see close_to_visitors."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def visitors_only(view: Callable) -> Callable:
    """A page for visitors who have not signed in (the login, a firm's application, the public home): open to
    anyone, and a signed-in user is sent to the dashboard instead."""
    @functools.wraps(view)
    def for_visitors(*args: Any, **kwargs: Any):
        if current_user.is_authenticated:
            return redirect(url_for("core.dashboard"))
        return view(*args, **kwargs)

    return public(for_visitors)


# The blueprints with gates of their own: the public site (none), the API (a Bearer token), the health check.
OPEN_BLUEPRINTS = ("public", "api", "ops")


def close_to_visitors(app: Flask) -> None:
    """Every page sends an anonymous visitor to the login page, unless its blueprint is one of ``OPEN_BLUEPRINTS``
    or the route is marked ``@public``.

    Closed by default: a route or a blueprint added tomorrow without a thought for sign-in is closed, not open,
    and the permission check inside the view is a second wall, not the only one (tests/test_signed_in.py walks
    every route)."""
    @app.before_request
    def sign_in_first():
        if request.blueprint in OPEN_BLUEPRINTS or request.method in EXEMPT_METHODS:
            return None
        view = app.view_functions.get(request.endpoint or "")
        if view is None or request.endpoint == "static" or getattr(view, "is_public", False):
            return None
        if current_user.is_authenticated:
            return None
        return app.login_manager.unauthorized()  # type: ignore[attr-defined]


def load(model: type, object_id: int, action: str) -> Any:
    """Fetch a row and check the user may do ``action`` to it: 404 when missing, 403 when refused."""
    obj = db.session.get(model, object_id, options=bureau_tree.with_bureau(model))
    if obj is None:
        abort(404)
    if not permissions.can(current_user, action, obj):
        abort(403)
    return obj


def require(action: str, obj: Any = None) -> None:
    if not permissions.can(current_user, action, obj):
        abort(403)


def bureau_side() -> bool:
    """The signed-in user works on the bureaus' side (a bureau user or the system administrator)."""
    return current_user.role in BUREAU_SIDE


def own_bureau(action: str):
    """The signed-in user's own bureau, when ``action`` is allowed on it: 403 for users without one."""
    bureau = current_user.bureau
    if bureau is None:
        abort(403)
    require(action, bureau)
    return bureau


def can_in_own_bureau(action: str) -> bool:
    """Whether the user may do ``action`` in their own bureau (a button to show); False without one."""
    bureau = current_user.bureau
    return bureau is not None and permissions.can(current_user, action, bureau)


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


def signed_out_by_service(form: FlaskForm):
    """After a refused form: when the service ended this browser's session (a password re-entered wrong once too
    often locks the account and signs it out: core/services.py ``recheck_password``), sign the browser out now and
    show the login page with the service's message. None while the session stands."""
    from flask import session
    from flask_login import logout_user

    if not current_user.is_authenticated or session.get("_user_id") == current_user.get_id():
        return None
    message = (list(getattr(form, "form_errors", None) or []) or ["请重新登录。"])[0]
    logout_user()
    session.clear()
    flash(message, "danger")
    return redirect(url_for("core.login"))


OrFromResult = Union[str, None, Callable[[Any], Any]]


def handle_form(form: FlaskForm, call: Callable[[], Any], *, failed: Callable[[int], Any], to: OrFromResult,
                message: OrFromResult = None, category: str = "success"):
    """A form's whole round trip: ``submit_form``; when done, flash ``message`` and redirect to ``to`` (each a
    value, or a function of the service's result; a message may be ``(text, category)``); otherwise
    ``failed(status)`` shows the page again with the form and its errors (a GET shows it the first time, 200)."""
    done, result, status = submit_form(form, call)
    if not done:
        return failed(status)
    return _done(result, to, message, category)


def detail_form(form: FlaskForm, call: Callable[[], Any], form_key: str, *, render: Callable[..., Any], to: str,
                message: OrFromResult = None, **context: Any):
    """``handle_form`` for one of the forms on a detail page (a firm's, an engagement's): done, back to that
    page (``to``); otherwise ``render(status, **{form_key: form}, **context)`` shows the page again with this
    form and its errors."""
    return handle_form(form, call, message=message, to=to,
                       failed=lambda status: render(status, **{form_key: form}, **context))


def form_page(template: str, **context: Any) -> Callable[[int], Any]:
    """``failed`` for a form with a page of its own: render ``template`` with ``context`` and the status."""
    return lambda status: (render_template(template, **context), status)


def xlsx_import(form: FlaskForm, job: str, title: str, params: dict[str, Any], *, bureau_id: int | None,
                template: str, **context: Any):
    """An Excel import's page (``form.file``): the upload is stored (.xlsx only) and ``job`` queued on it, named
    "``title``：<file name>" with ``params`` and the file's id, then on to the job's page; otherwise ``template``
    again (with ``context``) and the form's errors. The job, not the request, reads the workbook."""
    def queue():
        upload = form.file.data
        stored = files.store(upload.filename, upload.read(), allowed=("xlsx",), actor=current_user)
        return jobs.submit(job, f"{title}：{stored.original_name}", {"file_id": stored.id, **params},
                           actor=current_user, bureau_id=bureau_id)

    return handle_form(form, queue, to=lambda queued: url_for("core.job_detail", job_id=queued.id),
                       failed=form_page(template, form=form, **context))


def load_child(model: type, object_id: int, **parent: Any) -> Any:
    """A row that belongs to one already loaded and authorised (``firm_id=firm.id``): 404 when missing or
    when it belongs to another."""
    obj = db.session.get(model, object_id)
    if obj is None or any(getattr(obj, key) != value for key, value in parent.items()):
        abort(404)
    return obj


def button(call: Callable[[], Any], *, to: OrFromResult, message: OrFromResult = None, category: str = "success",
           form: FlaskForm | None = None):
    """A button's POST (a form carrying only its CSRF token): 400 unless the token is good; then run the
    service ``call``, commit, flash ``message`` and redirect to ``to`` (each a value or a function of the
    result). Conflicts and refusals propagate to the error handlers (409, 403), nothing committed."""
    if not (form if form is not None else FlaskForm()).validate_on_submit():
        abort(400)
    result = call()
    db.session.commit()
    return _done(result, to, message, category)


def _done(result: Any, to: OrFromResult, message: OrFromResult, category: str):
    text = message(result) if callable(message) else message
    if isinstance(text, tuple):  # (message, category) when the outcome decides how it reads
        text, category = text
    if text:
        flash(text, category)
    return redirect(to(result) if callable(to) else to)


def send_stored(record: Any, *, inline: bool = False):
    """A stored file (``core.files``) as a download under its original name and type: 404 when there is
    no file, or when its bytes are missing from the store."""
    if record is None:
        abort(404)
    try:
        data = files.read(record)
    except FileNotFoundError:
        abort(404)
    return send_file(io.BytesIO(data), mimetype=record.content_type, as_attachment=not inline,
                     download_name=record.original_name)
