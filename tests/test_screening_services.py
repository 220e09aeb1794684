"""Report screening with the database: screened on upload, the queue, the flag card, a targeted case from
a flag, labels from panels and inspections, training, promotion and the version check."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied
from evalhub.extensions import db
from evalhub.review.models import SubmissionKind
from evalhub.screening import learning
from evalhub.screening import services as S
from evalhub.screening.models import ModelStatus, ReportScreening, RiskMethod
from tests import factories
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
    entries = S.queue(world.bz_staff, year=2025, kind=SubmissionKind.REPORT)  # the work plans rank apart
    assert len(entries) == 2 and entries[0].screening.risk >= entries[1].screening.risk
    assert entries[0].rank == 1 and entries[0].flagged
    with pytest.raises(PermissionDenied):
        S.queue(world.firm_user, year=2025)
    with pytest.raises(PermissionDenied):
        S.queue(world.expert_user, year=2025)
    assert S.queue(world.kz_staff, year=2025) == []  # another prefecture's reports are not in its queue


# --- the flag card and the targeted case ------------------------------------------------------------

def _template_pair(world):
    first_text = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    e1, s1 = upload_report(world, first_text, name="饮水安全工程")
    swapped = first_text.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局")
    e2, s2 = upload_report(world, swapped, name="高标准农田建设", unit="巴州民政局")
    return (e1, s1), (e2, s2)


def test_flag_card_puts_the_copied_passage_beside_its_source(world):
    (_e1, s1), (_e2, s2) = _template_pair(world)
    card = S.flag_card(S.screening_for(s2), world.bz_staff)
    assert card["rank"] in (1, 2) and card["total"] == 2
    passage = card["passages"][0]
    assert passage["source"].id == s1.id and passage["relation_label"] == "本机构其他报告"
    assert "高标准农田建设" in passage["text"] or "巴州民政局" in passage["text"]
    assert "饮水安全工程" in passage["source_text"] or "巴州统计局" in passage["source_text"]
    assert "饮水安全工程" in passage["source_names"] and "高标准农田建设" in card["own_names"]
    assert any(f["key"] == "copy_same_firm" and f["value"] == "100%" for f in card["features"])


def test_a_flag_opens_one_targeted_case_with_the_flag_as_trigger(world):
    from evalhub.supervision.models import Inspection, Trigger

    (_e1, _s1), (e2, s2) = _template_pair(world)
    screening = S.screening_for(s2)
    with pytest.raises(PermissionDenied):
        S.open_case(screening, world.kz_staff)  # another prefecture's engagement
    inspection = S.open_case(screening, world.bz_staff)
    assert inspection.trigger == Trigger.SCREENING_FLAG and inspection.engagement_id == e2.id
    assert inspection.opened_by_id == world.bz_staff.id and "近似重复" in inspection.trigger_detail
    with pytest.raises(Conflict):
        S.open_case(screening, world.bz_staff)
    assert db.session.execute(sa.select(sa.func.count(Inspection.id))).scalar_one() == 1


# --- labels ------------------------------------------------------------------------------------------

def _decide_first_round(world, engagement, fraction: float):
    from evalhub.core.enums import Role
    from evalhub.review import services as R
    from evalhub.review.models import InvitationStatus
    from tests import factories

    experts = []
    for i in range(5):
        expert = factories.expert(world.bz, name=f"筛查专家{engagement.id}{i}", employer=f"某大学{engagement.id}{i}")
        experts.append(factories.user(f"se{expert.id}", Role.EXPERT, expert_id=expert.id))
    users = {u.expert_id: u for u in experts + [world.expert_user]}
    panel = factories.witnessed(R.form_panel(engagement, world.bz_staff, size=3))
    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, users[invitation.expert_id], accept=True, declaration_signed=True)
    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.ACCEPTED:
            review = invitation.review
            items = review.rubric.items
            R.save_review(review, users[invitation.expert_id],
                          scores={i.id: (i.max_points * Decimal(str(fraction))).quantize(Decimal("0.1")) for i in items},
                          comments={i.id: "意见" for i in items}, opinion="意见")
            R.submit_review(review, users[invitation.expert_id])
    return panel


def test_labels_come_from_first_round_panels_and_inspections(world):
    from evalhub.supervision import services as V

    (e1, s1), (e2, s2) = _template_pair(world)
    panel = _decide_first_round(world, e1, 0.8)
    assert panel.passed is False
    frame = S.labelled_frame()
    assert list(frame["label"]) == [1] and list(frame["source"]) == ["panel"]

    case = S.open_case(S.screening_for(s2), world.bz_staff)
    V.record_checklist(case, factories.recorder(case), {k: (k != "report_original", "套用模板") for k, _ in V.CHECKLIST})
    assert len(S.labelled_frame()) == 1  # an open case is not a label yet
    V.close(case, factories.recorder(case), "报告套用本机构其他报告的模板，已移交信用评价扣分。")
    frame = S.labelled_frame()
    assert dict(zip(frame["source"], frame["label"])) == {"panel": 1, "inspection": 1}
    assert not frame["random"].any()  # a targeted case is not an unbiased label


# --- training, model card, promotion, the version check --------------------------------------------

def _synthetic_frame(n=160, seed=3):
    import numpy as np
    import pandas as pd

    from evalhub.screening.features import FEATURE_KEYS

    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.35
    rows = {k: rng.normal(0, 1, n) for k in FEATURE_KEYS}
    rows["copy_same_firm"] = np.clip(0.15 + 0.4 * label + rng.normal(0, 0.15, n), 0, 1)
    rows["generic_advice_share"] = np.clip(0.2 + 0.3 * label + rng.normal(0, 0.2, n), 0, 1)
    rows["length_chars"] = rng.normal(4000, 800, n)
    frame = pd.DataFrame(rows)
    frame["label"] = label.astype(int)
    frame["at"] = pd.date_range("2024-03-01", periods=n, freq="D")
    frame["source"] = "panel"
    frame["random"] = False
    frame["screening_id"] = range(n)
    return frame


def test_training_registers_a_candidate_with_its_card_and_promotion_activates_it(world, app, monkeypatch):
    from pathlib import Path

    _template_pair(world)
    monkeypatch.setattr(S, "labelled_frame", lambda: _synthetic_frame())
    with pytest.raises(PermissionDenied):
        S.train_model(world.bz_admin)  # a prefecture's admin: models are the region's
    model = S.train_model(world.region_admin)
    assert model.status == ModelStatus.CANDIDATE
    directory = Path(app.config["MODELS_DIR"])
    card = json.loads((directory / model.artefact.replace(".joblib", ".json")).read_text(encoding="utf-8"))
    assert card["version"] == model.version and card["labels"]["total"] == 160
    assert {"roc_auc", "average_precision", "precision_at_budget"} <= set(card["metrics"])
    assert "scikit-learn" in card["versions"] and (directory / model.artefact.replace(".joblib", ".md")).exists()
    # Not active until promoted: uploads keep the rule score.
    assert S.active_model() == (None, None)
    with pytest.raises(PermissionDenied):
        S.promote(model, world.bz_admin)
    rescored = S.promote(model, world.region_admin)
    assert rescored == 4 and model.status == ModelStatus.ACTIVE  # both reports and their approved work plans
    rows = db.session.execute(sa.select(ReportScreening).where(ReportScreening.kind == SubmissionKind.REPORT)).scalars().all()
    assert all(r.method == RiskMethod.MODEL and r.model_version == model.version for r in rows)
    with pytest.raises(Conflict):
        S.promote(model, world.region_admin)
    second = S.train_model(world.region_admin)
    S.promote(second, world.region_admin)
    assert model.status == ModelStatus.RETIRED and second.status == ModelStatus.ACTIVE


def test_a_model_from_another_scikit_learn_is_refused_with_a_clear_message(world, app, monkeypatch):
    from pathlib import Path

    monkeypatch.setattr(S, "labelled_frame", lambda: _synthetic_frame())
    model = S.train_model(world.region_admin)
    path = Path(app.config["MODELS_DIR"]) / model.artefact.replace(".joblib", ".json")
    card = json.loads(path.read_text(encoding="utf-8"))
    card["versions"]["scikit-learn"] = "0.24.2"
    path.write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(learning.IncompatibleModel, match="scikit-learn 0.24.2"):
        learning.load(Path(app.config["MODELS_DIR"]), model.artefact)
    with pytest.raises(Conflict, match="重新训练"):
        S.promote(model, world.region_admin)
    assert model.status == ModelStatus.CANDIDATE


def test_too_few_labels_keep_the_rule_score(world):
    _template_pair(world)
    with pytest.raises(learning.NotEnoughLabels, match="规则评分"):
        S.train_model(world.region_admin)


def test_a_firm_never_sees_a_score(world):
    from evalhub.core import permissions

    _e, s = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    row = S.screening_for(s)
    assert not permissions.can(world.firm_user, "screening.card", row)
    assert not permissions.can(world.firm_user, "screening.view")
    assert not permissions.can(world.expert_user, "screening.view")
    assert permissions.scope(world.firm_user, sa.select(ReportScreening), ReportScreening).whereclause is not None
    assert db.session.execute(permissions.scope(world.firm_user, sa.select(ReportScreening), ReportScreening)).all() == []
    with pytest.raises(PermissionDenied):
        S.screen_text("进一步加强管理。", world.firm_user)


def test_cli_train_prints_the_metrics_and_rescreen_counts(world, app, monkeypatch):
    _template_pair(world)
    db.session.commit()
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["evalhub", "screening", "train"])
    assert refused.exit_code == 2 and "规则评分" in refused.output
    monkeypatch.setattr(S, "labelled_frame", lambda: _synthetic_frame())
    result = runner.invoke(args=["evalhub", "screening", "train"])
    assert result.exit_code == 0, result.output
    assert "待启用" in result.output and "ROC-AUC" in result.output and "最佳单一特征" in result.output
    assert S.active_model() == (None, None)  # training never activates
    result = runner.invoke(args=["evalhub", "screening", "rescreen", "--year", "2025"])
    assert result.exit_code == 0 and "已重新筛查 4 份" in result.output  # two reports, two work plans


def test_the_app_refuses_an_incompatible_active_model_at_start_and_says_why(world, app, monkeypatch, caplog):
    from pathlib import Path

    monkeypatch.setattr(S, "labelled_frame", lambda: _synthetic_frame())
    model = S.train_model(world.region_admin)
    S.promote(model, world.region_admin)
    db.session.commit()
    path = Path(app.config["MODELS_DIR"]) / model.artefact.replace(".joblib", ".json")
    card = json.loads(path.read_text(encoding="utf-8"))
    card["versions"]["scikit-learn"] = "1.0.2"
    path.write_text(json.dumps(card), encoding="utf-8")
    S.forget_cache()  # a new process
    with caplog.at_level("ERROR"):
        S.load_active_model_at_start(app)
    assert "报告筛查模型不可用" in caplog.text and "scikit-learn 1.0.2" in caplog.text
    model_obj, problem = S.active_model()
    assert model_obj is None and "重新训练" in problem
    _e, s = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    assert S.screening_for(s).method == RiskMethod.RULE  # uploads fall back to the rule score


# --- screening in the background worker (issue 16) --------------------------------------------------

@pytest.fixture()
def in_worker(app, monkeypatch):
    """Uploads are screened by the worker after they commit (as in production), not inside the upload."""
    monkeypatch.setitem(app.config, "SCREENING_IN_WORKER", True)


def test_an_upload_returns_before_screening_and_the_worker_screens_it_after_commit(world, in_worker):
    from evalhub.core.enums import JobStatus
    from evalhub.core.models import Job

    first = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    _e1, s1 = upload_report(world, first, name="饮水安全工程")
    # inside the upload's transaction: nothing screened yet, one job queued for the worker (no actor: the
    # firm never learns its upload is screened)
    assert S.screening_for(s1) is None
    job = S.pending_screening(s1)
    assert job is not None and job.status == JobStatus.QUEUED and job.created_by_id is None
    db.session.commit()  # the upload commits → the job runs (immediate mode: now, in its own session)
    db.session.expire_all()
    row1 = S.screening_for(s1)
    assert row1 is not None and S.pending_screening(s1) is None
    assert db.session.get(Job, job.id).status == JobStatus.SUCCEEDED

    swapped = first.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局")
    _e2, s2 = upload_report(world, swapped, name="高标准农田建设", unit="巴州民政局")
    db.session.commit()
    row2 = S.screening_for(s2)
    assert row2.features["near_duplicate"] == 1.0 and row2.details["most_similar"]["doc_id"] == s1.id


def test_a_rolled_back_upload_queues_nothing(world, in_worker):
    from evalhub.core.models import Job

    _e, submission = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    db.session.rollback()
    db.session.commit()
    assert db.session.execute(sa.select(Job).where(Job.kind == S.SCREEN_JOB)).first() is None


def test_the_status_page_shows_screening_then_the_card(world, in_worker, login, monkeypatch):
    from evalhub.core import jobs

    ran = []
    monkeypatch.setattr(jobs, "_run_job_task", ran.append)  # the worker has not picked the job up yet
    _e, submission = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    db.session.commit()
    assert len(ran) == 2  # the work plan's and the report's screenings, queued as each upload committed
    page = login(world.bz_staff).get(f"/screening/submission/{submission.id}")
    assert page.status_code == 200 and "筛查中" in page.get_data(as_text=True)
    assert '<meta http-equiv="refresh"' in page.get_data(as_text=True)
    queue = login(world.bz_staff).get("/screening/queue").get_data(as_text=True)
    assert 'data-testid="screening-pending"' in queue and f"/screening/submission/{submission.id}" in queue
    assert f"/screening/submission/{submission.id}" not in login(world.kz_staff).get("/screening/queue").get_data(as_text=True)
    # the firm, and another prefecture's bureau, may not ask
    assert login(world.firm_user).get(f"/screening/submission/{submission.id}").status_code == 403
    assert login(world.kz_staff).get(f"/screening/submission/{submission.id}").status_code == 403
    for job_id in ran:  # the worker runs them
        jobs.run_job(job_id)
    done = login(world.bz_staff).get(f"/screening/submission/{submission.id}")
    assert done.status_code == 302 and f"/screening/{S.screening_for(submission).id}" in done.headers["Location"]


def test_rescreen_in_bulk_writes_the_shared_index_once_per_text(world, app):
    from evalhub.screening.models import IndexBand, IndexedDocument, IndexKeyCount, IndexPosting

    for n in range(3):
        upload_report(world, report_text(f"项目{n}", "巴州统计局", world.firm.name, specific=bool(n % 2)), name=f"项目{n}")
    db.session.commit()
    for table in (IndexedDocument, IndexPosting, IndexKeyCount, IndexBand):  # as after the upgrade: index empty
        db.session.execute(sa.delete(table))
    stored = db.session.execute(sa.select(sa.func.count()).select_from(ReportScreening)).scalar_one()
    assert stored == 6  # three work plans and three reports
    result = app.test_cli_runner().invoke(args=["evalhub", "screening", "index"])
    assert result.exit_code == 0 and "已写入共享索引 6 份" in result.output, result.output
    assert S.index_missing() == 0
    assert S.rescreen() == 6
    ids = db.session.execute(sa.select(IndexedDocument.doc_id)).scalars().all()
    assert sorted(ids) == sorted(db.session.execute(sa.select(ReportScreening.submission_id)).scalars().all())


def test_the_peers_features_are_kept_only_for_a_batch_and_give_the_same_reference(world):
    """Screening a text compares it with its peers' stored features (``peer_reference``). A batch (a year's
    rescreen, the demo's archive) keeps them per screening and version, so each is read once; outside a batch
    nothing is kept (a web or job worker holds no copy of the year's features), and both give the same answer."""
    from tests.statements import recorded

    for n in range(3):
        upload_report(world, report_text(f"项目{n}", "巴州统计局", world.firm.name, specific=bool(n % 2)), name=f"项目{n}")
    db.session.commit()
    ids = db.session.execute(sa.select(ReportScreening.id, ReportScreening.screened_at)).all()
    plain = S._features_of(ids)
    assert S._peer_features.memory is None and len(plain) == len(ids)
    with S.peer_features_kept():
        with recorded() as first:
            kept = S._features_of(ids)
        with recorded() as again:
            assert S._features_of(ids) == kept == plain
        assert any("features" in s for s in first) and not any("features" in s for s in again)
    assert S._peer_features.memory is None
