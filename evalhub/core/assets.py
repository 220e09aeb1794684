"""Static files named with their content's version (``/static/evalhub.js?v=<sha256 prefix>``).

Every ``url_for('static', …)`` carries the version, and a request whose ``v`` is the file's version as it is
now is served with a year's ``max-age``: a browser asks for the style sheets, scripts and fonts once, not again
on every page (seven conditional requests a page before), and a deployment that changes a file changes its URL,
so nobody keeps last week's script (nginx kept them 7 days whatever changed, deploy/nginx-evalhub.conf). A
request without ``v``, or with a stale one, is served as before (revalidated each time). In debug mode files
change under a running server: no version, no long caching.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, request
from werkzeug.security import safe_join

YEAR = 365 * 24 * 3600


def init_app(app: Flask) -> None:
    versions: dict[str, str] = {}  # only files that exist: a name asked for in a request is not kept otherwise
    app.extensions["evalhub_asset_versions"] = versions

    def version(filename: str) -> str | None:
        if filename not in versions:
            path = safe_join(str(app.static_folder), filename)
            try:
                content = Path(path).read_bytes() if path else None
            except OSError:  # no such file: its URL as ever (a 404 when asked)
                content = None
            if content is None:
                return None
            versions[filename] = hashlib.sha256(content).hexdigest()[:12]
        return versions[filename]

    @app.url_defaults
    def versioned(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values and not app.debug:
            v = version(values.get("filename") or "")
            if v:
                values["v"] = v

    default_max_age = app.get_send_file_max_age

    def max_age(filename: str | None) -> int | None:
        asked = request.args.get("v")
        if filename and asked and not app.debug and asked == version(filename):
            return YEAR
        return default_max_age(filename)

    app.get_send_file_max_age = max_age  # type: ignore[method-assign]  # Flask's hook for send_static_file
