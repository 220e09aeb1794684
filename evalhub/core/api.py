"""The JSON API's machinery under /api/v1: the blueprint, Bearer tokens, one error shape, and an OpenAPI 3
document built from the code.

It lives in core so that every domain's ``api.py`` can add its routes with ``@operation(...)`` (which
registers the route on this blueprint and its description in the OpenAPI document at the same time, so the
two cannot drift) without importing anything above it. ``evalhub.api`` adds the token and document routes
and gathers the domains' modules.
"""
from __future__ import annotations

import math
import re
from functools import wraps
from typing import Any, Callable

from apispec import APISpec
from flask import Blueprint, g, jsonify, request

from evalhub.core import accounts
from evalhub.core.concurrency import IDEMPOTENCY_HEADER, IDEMPOTENCY_PARAMETER, run_once
from evalhub.core.errors import DomainError
from evalhub.core.inputs import NAME_MESSAGE, NAME_PATTERN, control_errors, refuse
from evalhub.core.listing import INT_MAX, MAX_PAGE, MAX_PER_PAGE
from evalhub.core.services import user_for_token
from evalhub.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # Bearer-token clients; browser sessions are not accepted on write endpoints

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "fields"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}},
}

_OPERATIONS: list[dict[str, Any]] = []
_SCHEMAS: dict[str, dict] = {"Error": ERROR_SCHEMA}


def api_error(status: int, code: str, message: str, fields: dict | None = None):
    return jsonify({"error": {"code": code, "message": message, "fields": fields or {}}}), status


def schema(name: str, definition: dict) -> dict:
    """Register a component schema; returns a $ref to it."""
    _SCHEMAS[name] = definition
    return {"$ref": f"#/components/schemas/{name}"}


def list_schema(item_ref: dict) -> dict:
    return {"type": "object", "required": ["items", "total", "page"], "properties": {
        "items": {"type": "array", "items": item_ref}, "total": {"type": "integer"},
        "page": {"type": "integer"}, "per_page": {"type": "integer"}}}


def _error_responses(codes: tuple[int, ...]) -> dict:
    text = {400: "请求无效", 401: "未认证或令牌无效", 403: "无权限", 404: "不存在", 409: "状态冲突", 422: "字段校验失败",
            429: "请求过于频繁"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for c in codes}


def operation(rule: str, method: str, *, summary: str, tag: str, response: dict | None = None,
              status: int = 200, body: dict | None = None, params: list[dict] | None = None,
              errors: tuple[int, ...] = (401, 403, 404), auth: bool = True,
              body_content_type: str = "application/json", also: tuple[int, ...] = ()) -> Callable:
    """Register an API route and its OpenAPI description.

    ``body`` is the request body's schema, declared for ``body_content_type`` (e.g. ``multipart/form-data``
    for file uploads). ``also``: other success statuses answered with the same ``response`` (e.g. 200 when a
    POST finds the record it would have created)."""

    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args, **kwargs):
            if auth:
                user = _bearer_user()
                if user is None:
                    return api_error(401, "unauthorized", "缺少或无效的访问令牌（Authorization: Bearer …）。")
                if accounts.token_gate(user) is not None:  # what the web's account gate asks first, the API refuses
                    return api_error(403, "forbidden", accounts.GATE_API_MESSAGE)
                g.api_user = user
            if body:
                check_body(body, body_content_type)  # control characters, maxLength, minimum/maximum … (422)
            if auth and method == "POST" and request.headers.get(IDEMPOTENCY_HEADER) is not None:
                # A repeated POST with the same key gets the first one's answer (core.concurrency).
                return run_once(g.api_user.id, lambda: fn(*args, **kwargs))
            return fn(*args, **kwargs)

        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=wrapper, methods=[method])
        openapi_path = rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        path_params = [{"name": p.split(":")[-1].rstrip(">"), "in": "path", "required": True,
                        "schema": dict(ID)} for p in rule.split("/") if p.startswith("<")]
        # Every operation refuses control characters in its query string with 422 (core.inputs); one with a
        # body also refuses a body out of its schema's bounds (422) or one that is not a JSON object (400).
        documented = set(errors) | ({401} if auth else set()) | {422} | ({400} if body else set())
        if method == "POST" and auth:  # the optional Idempotency-Key: a reused key answers 409 (running) or 422 (other body)
            path_params.append(dict(IDEMPOTENCY_PARAMETER))
            documented |= {409, 422}
        op: dict[str, Any] = {
            "summary": summary, "tags": [tag], "operationId": fn.__name__,
            "parameters": path_params + (params or []),
            "responses": {**{str(s): {"description": "成功", **({"content": {"application/json": {"schema": response}}} if response else {})}
                             for s in (status, *also)},
                          **_error_responses(tuple(sorted(documented)))},
        }
        if body:
            op["requestBody"] = {"required": True, "content": {body_content_type: {"schema": body}}}
        if auth:
            op["security"] = [{"bearerAuth": []}]
        _OPERATIONS.append({"path": "/api/v1" + openapi_path, "method": method.lower(), "operation": op})
        return wrapper

    return decorate


def bearer_token() -> str | None:
    """The token of this request's ``Authorization: Bearer …`` header, if any."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header[7:].strip()


def _bearer_user():
    token = bearer_token()
    if token is None:
        return None
    user = user_for_token(token)
    if user is not None and db.session.dirty:
        db.session.commit()  # last_used_at, when it moved
    return user


def api_user():
    return g.api_user


def request_json() -> Any:
    """The request's JSON, or None when it has none or it is not JSON. JSON nested deeper than the parser's
    recursion limit (``[[[[…``) is a 400, not a RecursionError and a 500."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise DomainError("请求体 JSON 嵌套层数过多。") from None


def json_body() -> dict:
    data = request_json()
    if not isinstance(data, dict):
        raise DomainError("请求体必须是 JSON 对象。")
    return data


# --- the request body at the edge: the schema's bounds are the ones enforced --------------------------------

ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}  # what an id path segment or id field may be


def check_body(body_schema: dict, content_type: str) -> None:
    """Refuse (422, naming each field) a body whose strings carry control characters (``core.inputs``) or whose
    values break the bounds its OpenAPI schema declares: ``maxLength``, ``pattern``, ``minimum``/``maximum``,
    ``maxItems``, at any depth. Types, required fields and choices are left to the operation, which says more
    precisely what it expected; a body that is not JSON is left to ``json_body`` (400)."""
    if content_type == "application/json":
        data = request_json()
    else:  # a form with files: its fields, and the files' names (stored with the file)
        data = request.form.to_dict(flat=True) if request.form else None
        # every file's name, several under one key included (a dict of key → name keeps only the last)
        names = {f"{key}[{n}]" if n else key: f.filename
                 for key in request.files for n, f in enumerate(request.files.getlist(key)) if f.filename}
        if names:
            data = {**names, **(data or {})}
    if data is None:
        return
    errors = control_errors(data)
    _bound_errors(data, body_schema, "", errors)
    refuse(errors)


def _resolve(definition: dict) -> dict:
    while "$ref" in definition:
        definition = _SCHEMAS[definition["$ref"].rsplit("/", 1)[-1]]
    return definition


_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
               "object": (dict,)}


def _is_type(value: Any, type_: str | None) -> bool:
    if type_ is None:
        return True
    if isinstance(value, bool) and type_ != "boolean":
        return False
    return isinstance(value, _JSON_TYPES.get(type_, ()))


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _bound_errors(value: Any, definition: dict, path: str, errors: dict[str, str]) -> None:
    definition = _resolve(definition)
    field = path or "body"
    for part in definition.get("allOf", ()):
        _bound_errors(value, part, path, errors)
    for key in ("oneOf", "anyOf"):
        matching = [d for d in map(_resolve, definition.get(key, ())) if _is_type(value, d.get("type"))]
        if matching:
            _bound_errors(value, matching[0], path, errors)
    if field in errors:
        return
    if isinstance(value, str):
        if "maxLength" in definition and len(value) > definition["maxLength"]:
            errors[field] = f"不能超过 {definition['maxLength']} 个字符"
        elif "pattern" in definition and not re.search(definition["pattern"], value):
            errors[field] = NAME_MESSAGE if definition["pattern"] == NAME_PATTERN else "格式不正确"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            errors[field] = "必须是有限的数字"
        elif "minimum" in definition and value < definition["minimum"]:
            errors[field] = f"不能小于 {_shown(definition['minimum'])}"
        elif "maximum" in definition and value > definition["maximum"]:
            errors[field] = f"不能大于 {_shown(definition['maximum'])}"
    elif isinstance(value, list):
        if "maxItems" in definition and len(value) > definition["maxItems"]:
            errors[field] = f"最多 {definition['maxItems']} 项"
        elif isinstance(definition.get("items"), dict):
            for item in value:
                _bound_errors(item, definition["items"], path, errors)
    elif isinstance(value, dict):
        properties = definition.get("properties", {})
        extra = definition.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                _bound_errors(item, sub, f"{path}.{key}" if path else str(key), errors)


def _whole_number(name: str, default: int) -> int:
    raw = request.args.get(name, "").strip() or str(default)
    if not (raw.isascii() and raw.removeprefix("-").isdigit()):
        raise DomainError("page 和 per_page 必须是整数。")
    return int(raw) if len(raw) <= 12 else MAX_PAGE  # a number too long to mean anything: the far end


def page_args() -> tuple[int, int]:
    """(page, per_page): not integers → 400; out of range → clamped (a page past the end is empty)."""
    page = min(MAX_PAGE, max(1, _whole_number("page", 1)))
    per_page = min(MAX_PER_PAGE, max(1, _whole_number("per_page", 20)))
    return page, per_page


def build_spec() -> dict:
    spec = APISpec(title="evalhub API", version="1.0.0", openapi_version="3.0.3",
                   info={"description": "第三方绩效评价管理平台接口。所有接口使用 Bearer 令牌（POST /api/v1/tokens 获取）。"})
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    for name, definition in _SCHEMAS.items():
        spec.components.schema(name, definition)
    paths: dict[str, dict] = {}
    for entry in _OPERATIONS:
        paths.setdefault(entry["path"], {})[entry["method"]] = entry["operation"]
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
