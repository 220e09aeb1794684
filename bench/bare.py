"""The baseline for bench/web.py: a bare Flask + Flask-SQLAlchemy + Jinja page that reads one row from the
same database (gunicorn bench.bare:app). What evalhub's pages cost beyond this is evalhub's own."""
import os

import sqlalchemy as sa
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy

PAGE = "<!doctype html><title>bare</title><p>{{ name }}</p>"


def make_app(url: str) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy(app)

    @app.route("/")
    def one_row():
        name = db.session.execute(sa.text("SELECT name FROM bureau ORDER BY id LIMIT 1")).scalar_one()
        return render_template_string(PAGE, name=name)

    app.extensions["bare_db"] = db
    return app


# gunicorn's entry point; bench/web.py builds its own per database with make_app
app = make_app(os.environ["EVALHUB_DATABASE_URL"]) if "EVALHUB_DATABASE_URL" in os.environ else None
