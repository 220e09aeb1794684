"""A double click sends a form once (static/evalhub.js).

The services give one result for two presses (a second 回避关系 with the same terms is refused with a 409 naming
the first), but the browser shows the answer to the last request it sent: without the guard, the clerk whose first
press registered the relation would see "出错了（409）" instead of "回避关系已登记". The guard lets one POST go while
the page waits; a dismissed confirmation sends nothing and leaves the form armed.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.extensions import db
from evalhub.registry.models import FirmRelation
from tests.e2e.helpers import log_in

pytestmark = pytest.mark.e2e


def test_a_double_click_on_a_form_sends_it_once_and_shows_the_first_answer(page, world):
    firm_id, unit_id = world.firm.id, world.units["巴州统计局"].id
    log_in(page, "bz.admin")
    page.goto(f"/firms/{firm_id}/relations/new")
    page.select_option("select[name=kind]", index=1)
    page.select_option("select[name=budget_unit_id]", str(unit_id))
    page.fill("input[name=start_date]", "2025-01-01")
    page.fill("textarea[name=note]", "该机构曾为此单位提供财务咨询")
    # the server's answer held back until both presses are made (a double click's second press comes some 100 ms
    # after the first, on a busy day before the answer)
    held = []
    page.route("**/relations/new", lambda route: held.append(route) if route.request.method == "POST"
               else route.continue_())
    page.evaluate("""async () => {
        const form = document.querySelector("textarea[name=note]").form;
        const pause = () => new Promise(done => setTimeout(done, 300));
        form.requestSubmit();
        await pause();
        form.requestSubmit();
        await pause();
    }""")
    posts = len(held)
    with page.expect_navigation():
        for route in held:
            try:
                route.continue_()
            except Exception:  # a request the browser has given up (replaced by the second press's)
                pass
    assert posts == 1
    assert "回避关系已登记" in page.inner_text("body")
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count()).select_from(FirmRelation).where(
        FirmRelation.firm_id == firm_id)).scalar_one() == 1
