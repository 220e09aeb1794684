"""The JSON API's machinery under /api/v1: the blueprint, Bearer tokens, one error shape, and an OpenAPI 3
document built from the code.

It lives in core so that every domain's ``api.py`` can add its routes with ``@operation(...)`` (which
registers the route on this blueprint and its description in the OpenAPI document at the same time, so the
two cannot drift) without importing anything above it. ``evalhub.api`` adds the token and document routes
and gathers the domains' modules.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from apispec import APISpec
from flask import Blueprint, g, jsonify, request
from flask_login import current_user

from evalhub.core.errors import DomainError
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
    text = {400: "请求无效", 401: "未认证或令牌无效", 403: "无权限", 404: "不存在", 409: "状态冲突", 422: "字段校验失败"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for c in codes}


def operation(rule: str, method: str, *, summary: str, tag: str, response: dict | None = None,
              status: int = 200, body: dict | None = None, params: list[dict] | None = None,
              errors: tuple[int, ...] = (401, 403, 404), auth: bool = True,
              body_content_type: str = "application/json") -> Callable:
    """Register an API route and its OpenAPI description.

    ``body`` is the request body's schema, declared for ``body_content_type`` (e.g. ``multipart/form-data``
    for file uploads)."""

    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args, **kwargs):
            if auth:
                user = _bearer_user()
                if user is None:
                    return api_error(401, "unauthorized", "缺少或无效的访问令牌（Authorization: Bearer …）。")
                g.api_user = user
            return fn(*args, **kwargs)

        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=wrapper, methods=[method])
        openapi_path = rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        path_params = [{"name": p.split(":")[-1].rstrip(">"), "in": "path", "required": True,
                        "schema": {"type": "integer"}} for p in rule.split("/") if p.startswith("<")]
        op: dict[str, Any] = {
            "summary": summary, "tags": [tag], "operationId": fn.__name__,
            "parameters": path_params + (params or []),
            "responses": {str(status): {"description": "成功", **({"content": {"application/json": {"schema": response}}} if response else {})},
                          **_error_responses(tuple(sorted(set(errors) | ({401} if auth else set()))))},
        }
        if body:
            op["requestBody"] = {"required": True, "content": {body_content_type: {"schema": body}}}
        if auth:
            op["security"] = [{"bearerAuth": []}]
        _OPERATIONS.append({"path": "/api/v1" + openapi_path, "method": method.lower(), "operation": op})
        return wrapper

    return decorate


def _bearer_user():
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    user = user_for_token(header[7:].strip())
    if user is not None:
        db.session.commit()  # last_used_at
    return user


def api_user():
    return g.api_user


def json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise DomainError("请求体必须是 JSON 对象。")
    return data


def page_args() -> tuple[int, int]:
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(200, max(1, int(request.args.get("per_page", 20))))
    except ValueError:
        raise DomainError("page 和 per_page 必须是整数。")
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
