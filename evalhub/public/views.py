"""What anyone may read without logging in."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

bp = Blueprint("public", __name__, url_prefix="/public")


@bp.route("/")
def home():
    if current_user.is_authenticated:
        return redirect(url_for("core.dashboard"))
    return render_template("public/home.html")
