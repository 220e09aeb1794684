# placeholder, replaced by the procurement UI
from flask import Blueprint
bp = Blueprint("procurement", __name__)
