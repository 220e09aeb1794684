# placeholder, replaced by the registry UI
from flask import Blueprint
bp = Blueprint("registry", __name__)
for _n in ["firm_list", "firm_detail", "firm_register", "expert_list", "expert_detail"]:
    bp.add_url_rule(f"/_stub/{_n}/<path:x>" if "detail" in _n else f"/_stub/{_n}", _n, lambda **kw: "stub")
