"""What the system tells each role, audited for wrong figures and leaks: every dashboard number agrees with the
list it links to (same rows, same count, in the viewer's scope)."""
from __future__ import annotations

import re

from evalhub.supervision import services as V
from evalhub.supervision.models import CHECKLIST, Severity
from tests import factories
from tests.test_supervision_views import _case, text


def _card_link(page: str, testid: str) -> str:
    """The address of the link that holds the number ``testid`` on the dashboard."""
    found = re.search(r'<a [^>]*href="([^"]+)"[^>]*>[^<]*<span [^>]*data-testid="%s"' % re.escape(testid), page)
    assert found, testid
    return found.group(1).replace("&amp;", "&")


def _listed(page: str) -> int:
    return int(re.search(r"共 (\d+) 条", page).group(1))


def test_the_open_inspections_on_the_dashboard_are_the_ones_its_link_lists(client, login, world):
    # one case awaiting the firm's answer (a serious finding asks for one), one still being inspected, one closed
    awaiting = _case(world)
    V.add_finding(awaiting, factories.recorder(awaiting), severity=Severity.SERIOUS, description="报告数据与底稿不符")
    inspecting = _case(world, detail="另一条线索")
    closed = _case(world, detail="第三条线索")
    V.record_checklist(closed, factories.recorder(closed), {k: (True, "") for k, _ in CHECKLIST})
    V.close(closed, factories.recorder(closed), "经检查未发现问题，予以办结。")
    _case(world, "kz", firm=world.other_firm, detail="克州线索")  # another prefecture's: in nobody's count here

    page = text(login(world.bz_admin).get("/"))
    assert 'data-testid="inspections-open">2<' in page and 'data-testid="inspections-closed">1<' in page
    for testid, expected in (("inspections-open", {awaiting.id, inspecting.id}), ("inspections-closed", {closed.id})):
        listed = text(client.get(_card_link(page, testid)))
        shown = {i.id for i in (awaiting, inspecting, closed) if f'inspection-row-{i.id}"' in listed}
        assert shown == expected and _listed(listed) == len(expected), testid
