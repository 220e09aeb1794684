"""Every page turns an anonymous visitor to the login page, unless it is one of the few routes opened on purpose
with ``@public`` or its blueprint has a gate of its own (core.web.close_to_visitors: closed by default).

The list of open routes is written out here, so that opening one more is a decision a reviewer sees.
"""
from __future__ import annotations

import re

from evalhub.core.web import OPEN_BLUEPRINTS, close_to_visitors, public

# The pages anyone may open on the signed-in blueprints: signing in and its recovery links, the public pages
# a bureau publishes (a witnessed draw, the ratings, the complaint box) and a firm's application to join.
OPEN_ON_PURPOSE = {
    "core.login",
    "core.login_totp",
    "core.account_forgot",
    "core.account_activate",
    "core.account_reset",
    "core.draw_public",
    "credit.public_ratings",
    "credit.public_firm",
    "registry.firm_register",
    "supervision.public_complaint",
    "supervision.public_complaint_lookup",
    "supervision.public_inspections",
    "supervision.public_criticisms",
}
# Blueprints without the gate: the public site, the API (its own Bearer token gate), the health check.
UNGATED = {"public", "api", "ops"}
assert set(OPEN_BLUEPRINTS) == UNGATED


def _path(rule) -> str:
    path = rule.rule
    for name, converter in rule._converters.items():
        value = "1" if re.fullmatch(converter.regex, "1") else "x"  # ids (core.inputs.IdConverter), else a token
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
    return path


def _rules(app):
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0] if "." in rule.endpoint else None
        if blueprint is None or blueprint in UNGATED:
            continue
        yield rule


def test_every_route_of_the_signed_in_blueprints_asks_an_anonymous_visitor_to_sign_in(app, client):
    checked = 0
    for rule in _rules(app):
        if rule.endpoint in OPEN_ON_PURPOSE:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_path(rule), method=method)
            assert response.status_code == 302, (method, rule.rule, response.status_code)
            assert response.headers["Location"].startswith("/login?next="), (method, rule.rule)
            checked += 1
    assert checked > 200  # the walk reached the whole application, not an empty map


def test_the_routes_open_on_purpose_are_exactly_the_listed_ones_and_answer_without_a_sign_in(app, client):
    marked = {rule.endpoint for rule in _rules(app) if getattr(app.view_functions[rule.endpoint], "is_public", False)}
    assert marked == OPEN_ON_PURPOSE
    for rule in _rules(app):
        if rule.endpoint in OPEN_ON_PURPOSE and "GET" in rule.methods:
            response = client.get(_path(rule))
            assert "/login?next=" not in response.headers.get("Location", ""), rule.rule


def test_a_new_blueprint_is_closed_until_its_routes_are_marked_public():
    from flask import Blueprint, Flask
    from flask_login import LoginManager

    app = Flask(__name__)
    app.secret_key = "x"
    manager = LoginManager(app)
    manager.login_view = "b.opened"
    manager.user_loader(lambda _id: None)
    close_to_visitors(app)
    bp = Blueprint("b", __name__)

    @bp.route("/closed")
    def closed():
        return "closed"

    @bp.route("/opened")
    @public
    def opened():
        return "opened"

    app.register_blueprint(bp)
    client = app.test_client()
    response = client.get("/closed")
    assert response.status_code == 302 and response.headers["Location"].startswith("/opened?next=")
    assert client.get("/opened").get_data(as_text=True) == "opened"
    assert client.get("/nowhere").status_code == 404  # an unknown address is not found, not a login
