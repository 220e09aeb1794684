"""双公开 on the public report list: the bureau's publication and the evaluated unit's (issue 15)."""
from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.errors import Conflict
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState
from evalhub.results import services as S
from evalhub.results.models import UnitPublication
from evalhub.review.models import Publication
from tests import factories


def _published(world, unit: str, *, classified: bool = False):
    """A report the bureau published (fixture shortcut: the real walk is review.services.publish)."""
    e = factories.contracted(world, unit=unit)
    stored = files.store("公开版.docx", factories.docx_bytes(factories.report_text() + f"\n{e.id}"), allowed=("docx",))
    publication = Publication(engagement_id=e.id, classified=classified, published_at=datetime(2025, 9, 1, 4, 0),
                              redacted_file_id=None if classified else stored.id)
    e.state = EngagementState.ARCHIVED if classified else EngagementState.PUBLISHED
    db.session.add(publication)
    db.session.flush()
    return e, publication


def test_the_public_list_shows_both_publications(world, client):
    both, p_both = _published(world, "巴州统计局")
    bureau_only, p_bureau = _published(world, "巴州民政局")
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    S.record_unit_publication(both, unit, "https://www.xjbz.gov.cn/tjj/2025/report.html", "2025-09-10")
    db.session.commit()

    html = client.get("/public/reports").get_data(as_text=True)
    assert "财政部门公开" in html and "被评价单位公开" in html
    row = html.split(f'data-testid="public-report-{p_both.id}"', 1)[1].split("</tr>", 1)[0]
    assert "2025-09-01" in row  # the bureau's half
    assert "2025-09-10" in row and 'href="https://www.xjbz.gov.cn/tjj/2025/report.html"' in row  # the unit's half
    assert 'rel="noopener noreferrer nofollow"' in row
    other = html.split(f'data-testid="public-report-{p_bureau.id}"', 1)[1].split("</tr>", 1)[0]
    assert "尚未公开" in other and "xjbz.gov.cn" not in other


def test_a_classified_report_shows_neither_half(world, client):
    secret, _ = _published(world, "巴州统计局", classified=True)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    # recorded before the bureau's decision (the service refuses it after, below)
    db.session.add(UnitPublication(engagement_id=secret.id, url="https://www.xjbz.gov.cn/tjj/secret.html",
                                   published_on=date(2025, 9, 10), recorded_by_id=unit.id))
    db.session.commit()
    html = client.get("/public/reports").get_data(as_text=True)
    assert "secret.html" not in html and secret.name not in html


def test_the_unit_does_not_publish_a_report_the_bureau_withheld(world, login):
    secret, _ = _published(world, "巴州统计局", classified=True)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    db.session.commit()
    with pytest.raises(Conflict, match="不予公开"):
        S.record_unit_publication(secret, unit, "https://www.xjbz.gov.cn/tjj/secret.html", "2025-09-10")
    db.session.rollback()
    client = login(unit)
    page = client.get(f"/results/unit/engagements/{secret.id}").get_data(as_text=True)
    assert 'data-testid="unit-publication-classified"' in page and 'data-testid="record-publication"' not in page
    response = client.post(f"/results/engagements/{secret.id}/unit-publication",
                           data={"url": "https://www.xjbz.gov.cn/tjj/secret.html", "published_on": "2025-09-10"})
    assert response.status_code == 409
    assert db.session.execute(sa.select(UnitPublication)).first() is None
