"""The baseline for bench/web.py: a bare Flask + Flask-SQLAlchemy + Jinja page that reads one row from the
same database (gunicorn bench.bare:app). What evalhub's pages cost beyond this is evalhub's own."""
import os

import sqlalchemy as sa
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["EVALHUB_DATABASE_URL"]
db = SQLAlchemy(app)

PAGE = "<!doctype html><title>bare</title><p>{{ name }}</p>"


@app.route("/")
def one_row():
    name = db.session.execute(sa.text("SELECT name FROM bureau ORDER BY id LIMIT 1")).scalar_one()
    return render_template_string(PAGE, name=name)
