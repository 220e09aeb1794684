"""Report screening pages: the bureau queue, the flag card, models and training."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("screening", __name__)
