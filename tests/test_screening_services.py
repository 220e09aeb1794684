"""Report screening with the database: screened on upload, the queue, the flag card, a targeted case from
a flag, labels from panels and inspections, training, promotion and the version check."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied
from evalhub.extensions import db
from evalhub.review.models import SubmissionKind
from evalhub.screening import learning
from evalhub.screening import services as S
from evalhub.screening.models import ModelStatus, ReportScreening, RiskMethod
from tests.screening_support import report_text, upload_report


def test_upload_is_screened_and_a_template_with_names_swapped_is_found(world):
    first_text = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    e1, s1 = upload_report(world, first_text, name="饮水安全工程")
    row1 = S.screening_for(s1)
    assert row1 is not None and row1.kind == SubmissionKind.REPORT and row1.method == RiskMethod.RULE
    assert row1.features["copy_same_firm"] == 0.0  # nothing stored before it

    swapped = first_text.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局")
    e2, s2 = upload_report(world, swapped, name="高标准农田建设", unit="巴州民政局")
    row2 = S.screening_for(s2)
    assert row2.features["copy_same_firm"] >= 0.9
    assert row2.features["near_duplicate"] == 1.0
    assert row2.details["most_similar"]["doc_id"] == s1.id
    assert row2.passages and row2.passages[0]["source_doc_id"] == s1.id
    assert any("近似重复" in r["text"] for r in row2.reasons)


def test_queue_ranks_by_risk_and_the_firm_sees_nothing(world):
    upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=True), name="饮水安全工程")
    upload_report(world, report_text("高标准农田", "巴州民政局", world.firm.name, specific=False), name="高标准农田",
                  unit="巴州民政局")
    entries = S.queue(world.bz_staff, year=2025)
    assert len(entries) == 2 and entries[0].screening.risk >= entries[1].screening.risk
    assert entries[0].rank == 1 and entries[0].flagged
    with pytest.raises(PermissionDenied):
        S.queue(world.firm_user, year=2025)
    with pytest.raises(PermissionDenied):
        S.queue(world.expert_user, year=2025)
    assert S.queue(world.kz_staff, year=2025) == []  # another prefecture's reports are not in its queue
