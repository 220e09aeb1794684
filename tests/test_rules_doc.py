"""docs/rules.md lists every bureau setting with its default and source: a setting added without a line
there fails here, so the document a bureau reads stays the rule the code applies."""
from pathlib import Path

from evalhub.core.settings import SETTINGS

RULES = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def test_every_setting_is_documented(app):
    text = RULES.read_text(encoding="utf-8")
    missing = [key for key in SETTINGS if f"`{key}`" not in text]
    assert not missing, f"docs/rules.md does not list: {missing}"
