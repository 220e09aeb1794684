"""HTTP security headers on every response: pages, API answers, static files and downloads.

One ``after_request`` rather than flask-talisman: what we need is a handful of constant headers, and
Talisman's defaults would have to be switched off one by one (it forces HTTPS redirects trusting a
client-supplied ``X-Forwarded-Proto``, rewrites ``SESSION_COOKIE_SECURE``/``SAMESITE`` in the app config
on every request, and sends HSTS by the request's scheme rather than by how we are deployed). Here the
policy is readable in one place and tested in tests/test_security_headers.py.

The Content-Security-Policy is strict: scripts and styles only from our own origin, so templates carry
no inline ``<script>`` (JSON data blocks ``<script type="application/json">`` are not executed and are
fine), no ``on…=`` handlers, no ``javascript:`` URLs and no ``style=`` attributes or ``<style>`` blocks.
Behaviour lives in static/evalhub.js (driven by ``data-*`` attributes), looks in static/evalhub.css.
A guard test scans every template for those patterns.
"""
from __future__ import annotations

from flask import Flask, Response

# img-src allows data: for the small SVG icons inside Bootstrap's CSS (select arrows, check marks,
# the navbar toggler) and the empty favicon in base.html.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Full URL to our own pages (Flask-WTF's strict referrer check on HTTPS needs it), nothing to others:
    # our URLs name engagements, firms and inspections.
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# One year. No includeSubDomains/preload: the app is usually one host under a bureau's domain, whose
# other hosts are not ours to commit to HTTPS.
HSTS = "max-age=31536000"


def hsts_enabled(app: Flask) -> bool:
    """HSTS only where we are served over HTTPS: production, i.e. secure session cookies (EVALHUB_ENV=
    production turns them on unless EVALHUB_COOKIE_SECURE=0 says the site is plain HTTP). Never in
    development or tests, where a pinned localhost would break every other local HTTP service."""
    return bool(app.config.get("SESSION_COOKIE_SECURE"))


def init_app(app: Flask) -> None:
    always = list(HEADERS.items())
    with_hsts = always + [("Strict-Transport-Security", HSTS)]

    @app.after_request
    def security_headers(response: Response) -> Response:
        # Only the headers a view has not set (none does today: a view that knows better keeps its value), in
        # one pass over the response's headers rather than one per header (this runs on every response).
        present = {name.lower() for name in response.headers.keys()}
        response.headers.extend([(name, value) for name, value in (with_hsts if hsts_enabled(app) else always)
                                 if name.lower() not in present])
        return response
