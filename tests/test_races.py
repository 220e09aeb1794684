"""Races and double submissions (issue 11): what a double click, a retried request or several gunicorn
workers at once must not do.

- a review: a draft save racing the submit cannot change it afterwards (the total stays the sum of its item
  scores); a submitted review is immutable (409); a repeated submit is idempotent (one audit event);
- one click storm, one objection; the public complaint limit holds under simultaneous requests and a form
  sent twice is one complaint; one plan per bureau and year with exactly one 201; an API POST repeated with
  the same Idempotency-Key is done once;
- a unique violation that slips past the checks (two requests registering the same firm at once) is a 409
  with a Chinese message, on the API and the web, never a 500.

The stale-read races are replayed deterministically on both databases with two sessions (two app contexts
in one thread: the second commits while the first still holds what it read). The simultaneous ones run
real threads, each with its own session and connection, against PostgreSQL only.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.concurrency import IDEMPOTENCY_HEADER, serialise
from evalhub.core.models import AuditEvent, IdempotencyKey, NamedLock, User
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.credit import services as C
from evalhub.credit.models import CreditObjection, CreditRating
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import EvaluationPlan, PlanItem
from evalhub.registry import services as registry
from evalhub.registry.models import Expert, Firm
from evalhub.review import services as R
from evalhub.review.models import Review, ReviewScore, ReviewStatus
from evalhub.supervision.models import Complaint
from tests import factories
from tests.test_credit_supervision_services import _completed
from tests.test_review_services import _panel

ON_POSTGRESQL = bool(os.environ.get("EVALHUB_TEST_DATABASE_URL"))
postgresql_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="concurrency is tested against PostgreSQL")


# --- helpers ---------------------------------------------------------------------------------------

@pytest.fixture()
def auth(client):
    """auth(username) → headers carrying a fresh Bearer token for that user."""
    cache: dict[str, dict] = {}

    def do(username: str) -> dict:
        if username not in cache:
            response = client.post("/api/v1/tokens", json={"username": username, "password": factories.PASSWORD})
            assert response.status_code == 201, response.get_data(as_text=True)
            cache[username] = {"Authorization": f"Bearer {response.json['token']}"}
        return dict(cache[username])

    return do


def count(model, *where) -> int:
    db.session.rollback()  # what is committed, not what this session may still hold
    return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def events(action: str) -> int:
    return count(AuditEvent, AuditEvent.action == action)


def submitted_events(review_id: int) -> int:
    """review.submitted events of this review (setting up a report panel may have reviewed the plan too)."""
    db.session.rollback()
    payloads = db.session.execute(sa.select(AuditEvent.payload).where(AuditEvent.action == "review.submitted")).scalars()
    return sum(1 for p in payloads if (p or {}).get("review") == review_id)


def text(response) -> str:
    return response.get_data(as_text=True)


def assert_error(response, status: int, *phrases: str) -> dict:
    assert response.status_code == status, text(response)
    error = response.json["error"]
    for phrase in phrases:
        assert phrase in error["message"], error["message"]
    return error


def at_once(n: int, work) -> list:
    """Run ``work(i)`` in ``n`` threads released together; each HTTP request (or ``in_context`` call) has its
    own app context, hence its own session and connection. Returns results, or the exception raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(20)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def in_context(app, fn):
    """fn() in a fresh app context (its own session), committed; rolled back and re-raised on error."""
    with app.app_context():
        try:
            result = fn()
            db.session.commit()
            return result
        except BaseException:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


def _expert_user(invitation) -> User:
    return db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one()


def _draft(invitation, points, opinion="总体较好，建议通过"):
    items = invitation.review.rubric.items
    R.save_review(invitation.review, _expert_user(invitation), scores={i.id: p for i, p in zip(items, points)},
                  comments={i.id: f"理由：{i.name}" for i in items}, opinion=opinion)


def _review_state(review_id: int) -> tuple[ReviewStatus, Decimal | None, Decimal]:
    db.session.rollback()
    review = db.session.get(Review, review_id)
    db.session.refresh(review)
    points = db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(ReviewScore.points), 0))
                                .where(ReviewScore.review_id == review_id)).scalar_one()
    return review.status, review.total, Decimal(str(points)).quantize(Decimal("0.01"))


# === reviews ======================================================================================

def test_a_repeated_submit_is_idempotent_one_audit_event(world):
    e, panel = _panel(world)
    first = panel.invitations[0]
    user = _expert_user(first)
    _draft(first, [18] * 5)
    R.submit_review(first.review, user)
    db.session.commit()
    submitted_at = first.review.submitted_at
    again = R.submit_review(first.review, user)  # the second press answers "already submitted"
    db.session.commit()
    assert again.status == ReviewStatus.SUBMITTED and again.submitted_at == submitted_at
    assert submitted_events(first.review.id) == 1


def test_a_save_after_the_submit_is_refused_409_on_the_api_and_the_web(client, login, auth, world):
    e, panel = _panel(world)
    first = panel.invitations[0]
    user = _expert_user(first)
    _draft(first, [18] * 5)
    R.submit_review(first.review, user)
    db.session.commit()
    review_id, item = first.review.id, first.review.rubric.items[0]
    with pytest.raises(R.AlreadySubmitted):
        R.save_review(first.review, user, scores={item.id: 1}, comments={item.id: "改"}, opinion="改")
    db.session.rollback()
    response = client.put(f"/api/v1/reviews/{review_id}", json={"scores": {str(item.id): 1}, "opinion": "改"},
                          headers=auth(user.username))
    assert_error(response, 409, "评审意见已提交，不能再修改")
    login(user)
    data = {"action": "save", "opinion": "改"}
    for each in first.review.rubric.items:
        data[f"score_{each.id}"], data[f"comment_{each.id}"] = "1", "改"
    page = client.post(f"/reviews/{review_id}", data=data)
    assert page.status_code == 409 and "评审意见已提交，不能再修改" in text(page)
    assert _review_state(review_id) == (ReviewStatus.SUBMITTED, Decimal("90.00"), Decimal("90.00"))


def test_a_second_submit_answers_as_already_submitted_on_the_api_and_the_web(client, login, auth, world):
    e, panel = _panel(world)
    first, second = panel.invitations[:2]
    for invitation in (first, second):
        _draft(invitation, [18] * 5)
    db.session.commit()
    one, two = _expert_user(first), _expert_user(second)
    url = f"/api/v1/reviews/{first.review.id}/submit"
    assert client.post(url, headers=auth(one.username)).status_code == 200
    again = client.post(url, headers=auth(one.username))
    assert again.status_code == 200 and again.json["status"]["value"] == "submitted"
    assert submitted_events(first.review.id) == 1
    # the web form's "submit" pressed twice: the second is not a 409 and records nothing
    login(two)
    data = {"action": "submit", "opinion": "总体较好，建议通过"}
    for item in second.review.rubric.items:
        data[f"score_{item.id}"], data[f"comment_{item.id}"] = "18", f"理由：{item.name}"
    assert client.post(f"/reviews/{second.review.id}", data=data).status_code == 302
    repeat = client.post(f"/reviews/{second.review.id}", data=data, follow_redirects=True)
    assert repeat.status_code == 200 and "此前已经提交" in text(repeat)
    assert submitted_events(second.review.id) == 1


def test_a_save_that_read_the_draft_before_the_submit_cannot_change_it(app, world):
    """The probe's 74.30 vs 85.10: a draft save that loaded the review before the submit committed."""
    e, panel = _panel(world)
    first = panel.invitations[0]
    _draft(first, [18] * 5)
    db.session.commit()
    review_id, user_id = first.review.id, _expert_user(first).id
    items = [i.id for i in first.review.rubric.items]
    with app.app_context():  # the late save's request: reads the draft …
        review, user = db.session.get(Review, review_id), db.session.get(User, user_id)
        assert review.status == ReviewStatus.DRAFT and len(review.scores) == 5

        def submit():  # … while another worker submits and commits
            R.submit_review(db.session.get(Review, review_id), db.session.get(User, user_id))

        in_context(app, submit)
        with pytest.raises(R.AlreadySubmitted):
            R.save_review(review, user, scores={i: 10 for i in items}, comments={i: "改低" for i in items}, opinion="改")
        db.session.rollback()
        db.session.remove()
    assert _review_state(review_id) == (ReviewStatus.SUBMITTED, Decimal("90.00"), Decimal("90.00"))


def test_a_submit_that_read_the_scores_before_a_save_totals_what_was_saved(app, world):
    e, panel = _panel(world)
    first = panel.invitations[0]
    _draft(first, [18] * 5)
    db.session.commit()
    review_id, user_id = first.review.id, _expert_user(first).id
    items = [i.id for i in first.review.rubric.items]
    with app.app_context():  # the submit's request has read the scores (18 each) …
        review, user = db.session.get(Review, review_id), db.session.get(User, user_id)
        assert sum(s.points for s in review.scores) == Decimal("90")

        def save():  # … when the expert's last draft save (15 each) commits
            R.save_review(db.session.get(Review, review_id), db.session.get(User, user_id),
                          scores={i: 15 for i in items}, comments={i: "再斟酌" for i in items}, opinion="修改后意见")

        in_context(app, save)
        R.submit_review(review, user)
        db.session.commit()
        db.session.remove()
    assert _review_state(review_id) == (ReviewStatus.SUBMITTED, Decimal("75.00"), Decimal("75.00"))


@postgresql_only
def test_a_save_in_flight_makes_the_submit_wait_and_the_total_is_of_the_saved_scores(app, world):
    e, panel = _panel(world)
    first = panel.invitations[0]
    _draft(first, [18] * 5)
    db.session.commit()
    review_id, user_id = first.review.id, _expert_user(first).id
    items = [i.id for i in first.review.rubric.items]
    saved = threading.Event()

    def work(i):
        with app.app_context():
            try:
                review, user = db.session.get(Review, review_id), db.session.get(User, user_id)
                review.scores  # noqa: B018 - both requests have read the review first
                if i == 0:
                    R.save_review(review, user, scores={i: 15 for i in items}, comments={i: "改" for i in items},
                                  opinion="修改后意见")
                    db.session.flush()
                    saved.set()
                    time.sleep(0.5)  # the save's transaction is still open when the submit arrives
                else:
                    saved.wait(10)
                    R.submit_review(review, user)
                db.session.commit()
                return "ok"
            except Exception as exc:
                db.session.rollback()
                return repr(exc)
            finally:
                db.session.remove()

    assert at_once(2, work) == ["ok", "ok"]
    assert _review_state(review_id) == (ReviewStatus.SUBMITTED, Decimal("75.00"), Decimal("75.00"))


@postgresql_only
def test_a_storm_of_saves_and_submits_leaves_one_submission_whose_total_is_its_scores(app, world):
    e, panel = _panel(world)
    first = panel.invitations[0]
    _draft(first, [18] * 5)
    db.session.commit()
    review_id, user_id = first.review.id, _expert_user(first).id
    items = [i.id for i in first.review.rubric.items]

    def work(i):
        with app.app_context():
            try:
                review, user = db.session.get(Review, review_id), db.session.get(User, user_id)
                review.scores  # noqa: B018
                if i % 2:
                    R.submit_review(review, user)
                else:
                    R.save_review(review, user, scores={item: 10 + i for item in items},
                                  comments={item: f"第 {i} 次保存" for item in items}, opinion=f"第 {i} 次")
                db.session.commit()
                return "ok"
            except R.AlreadySubmitted:
                db.session.rollback()
                return "409"
            except Exception as exc:
                db.session.rollback()
                return repr(exc)
            finally:
                db.session.remove()

    outcomes = at_once(8, work)
    assert set(outcomes) <= {"ok", "409"}, outcomes
    status, total, points = _review_state(review_id)
    assert status == ReviewStatus.SUBMITTED and total == points
    assert submitted_events(review_id) == 1


@postgresql_only
def test_simultaneous_submits_of_one_review_record_one_event(app, world):
    e, panel = _panel(world)
    first = panel.invitations[0]
    _draft(first, [18] * 5)
    db.session.commit()
    review_id, user_id = first.review.id, _expert_user(first).id

    def work(i):
        with app.app_context():
            try:
                review, user = db.session.get(Review, review_id), db.session.get(User, user_id)
                review.status  # noqa: B018 - every worker has loaded the draft
                R.submit_review(review, user)
                db.session.commit()
                return review.status
            except Exception as exc:
                db.session.rollback()
                return repr(exc)
            finally:
                db.session.remove()

    assert at_once(4, work) == [ReviewStatus.SUBMITTED] * 4
    assert submitted_events(review_id) == 1


# === credit objections ============================================================================

def _published_rating(world) -> CreditRating:
    C.ensure_national_calendar()
    _completed(world)
    C.compute(world.bz, 2025, world.bz_admin)
    C.publish(world.bz, 2025, world.bz_admin)  # today: the objection period is open
    db.session.commit()
    return db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == world.firm.id)).scalar_one()


OBJECTION = "合同履行得分有误：方案实际按期提交，回执见附件。"


def test_the_same_objection_filed_twice_is_one_objection(world):
    rating = _published_rating(world)
    first = C.object_to(rating, world.firm_user, OBJECTION)
    db.session.commit()
    again = C.object_to(rating, world.firm_user, "  " + OBJECTION + "\n")
    db.session.commit()
    assert again.id == first.id and count(CreditObjection) == 1 and events("credit.objection") == 1
    other = C.object_to(rating, world.firm_user, "另一项异议：监督检查扣分所依据的问题已整改完毕。")
    db.session.commit()
    assert other.id != first.id and count(CreditObjection) == 2


def test_a_double_click_on_the_objection_form_and_the_api_files_one(client, login, auth, world):
    rating = _published_rating(world)
    login(world.firm_user)
    for _ in range(2):
        assert client.post(f"/credit/ratings/{rating.id}/objections", data={"text": OBJECTION}).status_code == 302
    assert count(CreditObjection) == 1
    url = f"/api/v1/ratings/{rating.id}/objections"
    ids = {client.post(url, json={"text": OBJECTION + "（补充）"}, headers=auth("firm1")).json["id"] for _ in range(2)}
    assert len(ids) == 1 and count(CreditObjection) == 2


@postgresql_only
def test_a_click_storm_of_objections_files_one(client, auth, world):
    rating = _published_rating(world)
    headers, url = auth("firm1"), f"/api/v1/ratings/{rating.id}/objections"
    client_for = [client.application.test_client() for _ in range(10)]
    responses = at_once(10, lambda i: client_for[i].post(url, json={"text": OBJECTION}, headers=headers))
    assert [getattr(r, "status_code", r) for r in responses] == [201] * 10, responses
    assert len({r.json["id"] for r in responses}) == 1
    assert count(CreditObjection) == 1 and events("credit.objection") == 1


# === public complaints ============================================================================

def _complaint_form(world, n: int, **kw) -> dict:
    data = {"bureau_id": str(world.bz.id), "firm_name": world.firm.name, "engagement_reference": "",
            "text": f"第 {n} 件投诉：评价机构在现场评价中未按规定核查原始凭证，结论依据不足。",
            "complainant_name": "", "complainant_contact": ""}
    data.update(kw)
    return data


def test_the_sixth_complaint_in_an_hour_is_refused(client, world):
    client.post("/logout")
    statuses = [client.post("/public/complaints", data=_complaint_form(world, n),
                            environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code for n in range(6)]
    assert statuses == [200] * 5 + [429] and count(Complaint) == 5


def test_the_complaint_form_sent_twice_is_one_complaint(client, world):
    client.post("/logout")
    page = text(client.get("/public/complaints"))
    token = page.split('name="form_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert len(token) >= 16
    data = _complaint_form(world, 1, form_token=token)
    first = client.post("/public/complaints", data=data, environ_base={"REMOTE_ADDR": "203.0.113.6"})
    second = client.post("/public/complaints", data=data, environ_base={"REMOTE_ADDR": "203.0.113.6"})
    assert first.status_code == second.status_code == 200
    reference = db.session.execute(sa.select(Complaint.reference)).scalar_one()
    assert reference in text(first) and reference in text(second)
    assert count(Complaint) == 1 and events("complaint.received") == 1
    # the same form brought back and changed is a new complaint, not swallowed
    changed = client.post("/public/complaints", data={**data, "text": data["text"] + "补充：另有一处问题。"},
                          environ_base={"REMOTE_ADDR": "203.0.113.6"})
    assert changed.status_code == 200 and count(Complaint) == 2


@postgresql_only
def test_simultaneous_complaints_from_one_source_stop_at_the_limit(client, world):
    set_setting(world.bz, "supervision.complaints_per_hour", 5, world.bz_admin)
    db.session.commit()
    clients = [client.application.test_client() for _ in range(10)]
    forms = [_complaint_form(world, i) for i in range(10)]  # read in this thread, where the world's rows live
    responses = at_once(10, lambda i: clients[i].post("/public/complaints", data=forms[i],
                                                       environ_base={"REMOTE_ADDR": "203.0.113.7"}))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [429] * 5, statuses
    assert count(Complaint) == 5


# === plans and the Idempotency-Key ================================================================

def _item(world, **kw) -> dict:
    return {"name": "巴州统计局第五次全国经济普查项目", "object_type": "project", "budget_kind": "一般公共预算",
            "field": "统计", "amount_wan": "300", "budget_unit_id": world.units["巴州统计局"].id,
            "reason": "资金量大、社会关注度高", **kw}


def test_one_plan_per_bureau_and_year_and_one_201(client, auth, world):
    headers = auth("bz.staff")
    first = client.post("/api/v1/plans", json={"year": 2027}, headers=headers)
    second = client.post("/api/v1/plans", json={"year": 2027}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200) and first.json["id"] == second.json["id"]
    assert count(EvaluationPlan) == 1 and events("plan.created") == 1


def test_a_post_repeated_with_the_same_idempotency_key_is_done_once(client, auth, world):
    headers = auth("bz.staff")
    plan = client.post("/api/v1/plans", json={"year": 2027}, headers={**headers, IDEMPOTENCY_HEADER: "plan-2027-a"})
    again = client.post("/api/v1/plans", json={"year": 2027}, headers={**headers, IDEMPOTENCY_HEADER: "plan-2027-a"})
    assert plan.status_code == again.status_code == 201 and again.json == plan.json
    assert again.headers.get("Idempotent-Replayed") == "true" and count(EvaluationPlan) == 1
    url = f"/api/v1/plans/{plan.json['id']}/items"
    keyed = {**headers, IDEMPOTENCY_HEADER: "0b8f6c1e-item-1"}
    responses = [client.post(url, json=_item(world), headers=keyed) for _ in range(3)]
    assert [r.status_code for r in responses] == [201] * 3 and len({r.json["id"] for r in responses}) == 1
    assert count(PlanItem) == 1
    # the same key for a different request is refused; without a key each POST is a new item
    assert_error(client.post(url, json=_item(world, amount_wan="301"), headers=keyed), 422, "Idempotency-Key")
    # (another object: the same name and unit again is refused, keyed or not — a plan lists an object once)
    assert client.post(url, json=_item(world, name="另一评价对象"), headers=headers).status_code == 201
    assert count(PlanItem) == 2
    assert count(IdempotencyKey) == 2  # the plan's and the item's
    # a refused request gives its key back, so a corrected retry runs
    bad_key = {**headers, IDEMPOTENCY_HEADER: "retry-me"}
    assert client.post(url, json=_item(world, amount_wan="-1"), headers=bad_key).status_code == 422
    assert client.post(url, json=_item(world, amount_wan="-1"), headers=bad_key).status_code == 422
    assert client.post(url, json=_item(world, amount_wan="-1", name="改正后"), headers=bad_key).status_code == 422
    assert_error(client.post(url, json=_item(world), headers={**headers, IDEMPOTENCY_HEADER: "has space"}), 422)
    assert count(PlanItem) == 2


def test_the_idempotency_key_is_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").json
    post = spec["paths"]["/api/v1/plans"]["post"]
    assert any(p["name"] == IDEMPOTENCY_HEADER and p["in"] == "header" for p in post["parameters"])
    assert "422" in post["responses"] and "409" in post["responses"]


def test_stale_keys_and_locks_are_pruned(world):
    from evalhub.core import concurrency

    serialise("test:prune")
    db.session.add(IdempotencyKey(user_id=world.bz_staff.id, key="old", fingerprint="0" * 64,
                                  created_at=utcnow() - timedelta(days=2), status=201, body="{}"))
    db.session.commit()
    # every lock is stale two days on: this test's, and those the fixture's commits took (the kept counts'
    # recounts serialise on a lock each)
    locks = count(NamedLock)
    assert locks >= 1
    assert concurrency.prune(now=utcnow() + timedelta(days=2)) == (1, locks)
    db.session.commit()
    assert count(IdempotencyKey) == 0 and count(NamedLock) == 0


@postgresql_only
def test_simultaneous_plan_creation_gives_one_plan_and_one_201(client, auth, world):
    headers = auth("bz.staff")
    clients = [client.application.test_client() for _ in range(3)]
    responses = at_once(3, lambda i: clients[i].post("/api/v1/plans", json={"year": 2028}, headers=headers))
    assert sorted(r.status_code for r in responses) == [200, 200, 201], [text(r) for r in responses]
    assert len({r.json["id"] for r in responses}) == 1
    assert count(EvaluationPlan) == 1 and events("plan.created") == 1


@postgresql_only
def test_simultaneous_posts_with_one_idempotency_key_create_one_item(client, auth, world):
    plan = P.get_or_create_plan(world.bz, 2028, world.bz_staff)
    db.session.commit()
    headers = {**auth("bz.staff"), IDEMPOTENCY_HEADER: "storm-1"}
    clients = [client.application.test_client() for _ in range(5)]
    url, item = f"/api/v1/plans/{plan.id}/items", _item(world)
    responses = at_once(5, lambda i: clients[i].post(url, json=item, headers=headers))
    assert [r.status_code for r in responses] == [201] * 5, [text(r) for r in responses]
    assert len({r.json["id"] for r in responses}) == 1 and count(PlanItem) == 1


# === unique violations → 409 ======================================================================

def _register_meanwhile(app, monkeypatch, check: str, make) -> None:
    """Replay the race deterministically: right after the service's uniqueness check passed, "another
    request" (another session) registers the same natural key and commits."""
    real, raced = getattr(registry, check), []

    def racing(*args, **kwargs):
        result = real(*args, **kwargs)
        if not raced:
            raced.append(True)
            in_context(app, make)
        return result

    monkeypatch.setattr(registry, check, racing)


def _firm_payload(uscc: str) -> dict:
    return {"name": "新疆天山绩效评价咨询有限公司", "uscc": uscc, "legal_form": "limited_company", "kind": "会计师事务所",
            "address": "新疆库尔勒市石化大道 8 号", "legal_representative": "赵六", "contact_name": "钱七",
            "contact_phone": "0996-2888888", "fields": ["finance"]}


def test_a_firm_registered_meanwhile_is_a_409_with_a_chinese_message(app, client, login, auth, world, monkeypatch):
    uscc = factories.uscc()
    bz_id = world.bz.id
    _register_meanwhile(app, monkeypatch, "clean_firm", lambda: registry.create_firm(
        factories.firm_input(uscc=uscc, name="抢先登记的机构"), db.session.get(type(world.bz), bz_id), None))
    response = client.post("/api/v1/firms", json=_firm_payload(uscc), headers=auth("bz.staff"))
    assert_error(response, 409, "统一社会信用代码的机构已经登记")
    assert response.json["error"]["code"] == "conflict"
    assert count(Firm, Firm.uscc == uscc) == 1
    # the web form: a Chinese page with 409, not a 500
    monkeypatch.undo()
    uscc2 = factories.uscc()
    _register_meanwhile(app, monkeypatch, "clean_firm", lambda: registry.create_firm(
        factories.firm_input(uscc=uscc2, name="又一家抢先登记的机构"), db.session.get(type(world.bz), bz_id), None))
    login(world.bz_staff)
    page = client.post("/firms/new", data={**_firm_payload(uscc2), "kind": "consultancy", "fields": ["finance"],
                                           "declares_no_major_violation": "y"})
    assert page.status_code == 409 and "统一社会信用代码的机构已经登记" in text(page), text(page)[-3000:]
    assert count(Firm, Firm.uscc == uscc2) == 1


def test_an_expert_registered_meanwhile_is_a_409_with_a_chinese_message(app, client, auth, world, monkeypatch):
    id_number = factories.id_number(birth="19750612")
    bz_id = world.bz.id
    _register_meanwhile(app, monkeypatch, "clean_expert", lambda: registry.create_expert(
        factories.expert_input(id_number=id_number, birth_year=1975), db.session.get(type(world.bz), bz_id), None))
    payload = {"name": "马专家", "id_number": id_number, "employer": "巴州审计局", "title": "副高级", "degree": "master",
               "years_in_field": 12, "birth_year": 1975, "fields": ["accounting"]}
    response = client.post("/api/v1/experts", json=payload, headers=auth("bz.staff"))
    assert_error(response, 409, "该身份证号码的专家已在专家库中")
    assert count(Expert) == 2  # the world's expert and the one registered meanwhile


@postgresql_only
def test_simultaneous_registrations_of_one_firm_never_answer_500(client, auth, world):
    headers, payload = auth("bz.staff"), _firm_payload(factories.uscc())
    clients = [client.application.test_client() for _ in range(6)]
    responses = at_once(6, lambda i: clients[i].post("/api/v1/firms", json=payload, headers=headers))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and set(statuses) <= {201, 409, 422}, [text(r) for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert "已经登记" in r.json["error"]["message"]
    assert count(Firm, Firm.uscc == payload["uscc"]) == 1
