"""The JSON API under /api/v1: the token and OpenAPI document routes, and every domain's routes.

The machinery (blueprint, ``@operation``, error shape, schema registry) is ``evalhub.core.api``; each domain
adds its own routes in its ``api.py``. This package sits at the top level and only gathers them.
"""
from __future__ import annotations

from flask import jsonify, request

from evalhub.core import accounts
from evalhub.core.api import api_error, api_user, bearer_token, bp, build_spec, json_body, operation, schema
from evalhub.core.services import authenticate, issue_token, revoke_token, token_row
from evalhub.extensions import db

import evalhub.credit.api  # noqa: E402,F401  (each adds its routes to the API blueprint)
import evalhub.integrity.api  # noqa: E402,F401
import evalhub.procurement.api  # noqa: E402,F401
import evalhub.registry.api  # noqa: E402,F401
import evalhub.review.api  # noqa: E402,F401
import evalhub.results.api  # noqa: E402,F401
import evalhub.screening.api  # noqa: E402,F401
import evalhub.supervision.api  # noqa: E402,F401

__all__ = ["bp", "api_error"]

# --- tokens and the document itself ----------------------------------------------------------------

TOKEN_REQUEST = schema("TokenRequest", {"type": "object", "required": ["username", "password"], "properties": {
    "username": {"type": "string", "maxLength": 64}, "password": {"type": "string", "maxLength": 256},
    "totp": {"type": "string", "maxLength": 10, "description": "已启用两步验证的账户：验证器当前显示的 6 位动态验证码"}}})
TOKEN_RESPONSE = schema("TokenResponse", {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}})


@operation("/tokens", "POST", summary="用用户名和密码换取访问令牌", tag="认证", response=TOKEN_RESPONSE, status=201,
           body=TOKEN_REQUEST, errors=(400, 401, 403, 429), auth=False)
def create_token():
    data = json_body()
    result = authenticate(str(data.get("username", "")), str(data.get("password", "")), request.remote_addr, via="api")
    if result.pending is not None:  # the account has a second factor: the code is checked like a password
        if not str(data.get("totp") or "").strip():
            return api_error(401, "totp_required", "该账户已启用两步验证：请在请求中提供 totp（验证器当前显示的 6 位动态验证码）。")
        result = accounts.verify_totp_login(result.pending, str(data.get("totp")), request.remote_addr, via="api")
    if result.limited:  # the address's failures (a password or a code), not the account's
        return api_error(429, "too_many_requests", result.error)
    if result.user is None:
        return api_error(401, "unauthorized", result.error or "用户名或密码错误。")
    if accounts.gate(result.user) is not None:
        return api_error(403, "forbidden", accounts.GATE_API_MESSAGE)
    token = issue_token(result.user)
    db.session.commit()
    return jsonify({"token": token}), 201


@operation("/tokens/current", "DELETE", summary="撤销本次请求所用的访问令牌（退出 API 登录）", tag="认证",
           status=204, errors=(409,))
def revoke_current_token():
    row = token_row(bearer_token() or "")
    revoke_token(row, api_user())  # the wrapper accepted this token, so the row exists and is live
    db.session.commit()
    return "", 204


@operation("/openapi.json", "GET", summary="本接口的 OpenAPI 3 描述文档", tag="文档",
           response={"type": "object", "description": "OpenAPI 3.0 文档"}, errors=(), auth=False)
def openapi_document():
    return jsonify(build_spec())
