"""The JSON API under /api/v1: the token and OpenAPI document routes, and every domain's routes.

The machinery (blueprint, ``@operation``, error shape, schema registry) is ``evalhub.core.api``; each domain
adds its own routes in its ``api.py``. This package sits at the top level and only gathers them.
"""
from __future__ import annotations

from flask import jsonify

from evalhub.core.api import api_error, bp, build_spec, json_body, operation, schema
from evalhub.core.services import authenticate, issue_token
from evalhub.extensions import db

import evalhub.credit.api  # noqa: E402,F401  (each adds its routes to the API blueprint)
import evalhub.procurement.api  # noqa: E402,F401
import evalhub.registry.api  # noqa: E402,F401
import evalhub.review.api  # noqa: E402,F401
import evalhub.screening.api  # noqa: E402,F401
import evalhub.supervision.api  # noqa: E402,F401

__all__ = ["bp", "api_error"]

# --- tokens and the document itself ----------------------------------------------------------------

TOKEN_REQUEST = schema("TokenRequest", {"type": "object", "required": ["username", "password"], "properties": {
    "username": {"type": "string"}, "password": {"type": "string"}}})
TOKEN_RESPONSE = schema("TokenResponse", {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}})


@operation("/tokens", "POST", summary="用用户名和密码换取访问令牌", tag="认证", response=TOKEN_RESPONSE, status=201,
           body=TOKEN_REQUEST, errors=(400, 401), auth=False)
def create_token():
    data = json_body()
    result = authenticate(str(data.get("username", "")), str(data.get("password", "")))
    if result.user is None:
        return api_error(401, "unauthorized", result.error or "用户名或密码错误。")
    token = issue_token(result.user)
    db.session.commit()
    return jsonify({"token": token}), 201


@operation("/openapi.json", "GET", summary="本接口的 OpenAPI 3 描述文档", tag="文档",
           response={"type": "object", "description": "OpenAPI 3.0 文档"}, errors=(), auth=False)
def openapi_document():
    return jsonify(build_spec())
