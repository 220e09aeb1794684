"""Schemathesis over every operation of /api/v1/openapi.json, against the Flask app (WSGI, no server).

Two bounded runs — with a bureau admin's token and with none — over a small world built once for this module
(tests/factories.py: every level of bureau, firms, an expert, an accepted engagement walked through real
reviews, a contracted one and a planned one, a published credit rating with an objection, an open inspection),
so that generated ids reach real rows. Two smaller runs go where the admin's token stops at 403 or sees another
shape: a firm's token over the operations a firm calls (its ratings and objections, its uploads, team, bids,
challenges, findings) and an expert's token over an expert's (the expert's reviews, one of them a draft
on a work plan's panel); in these two a generated id is mapped onto the world's rows of its kind (the firm's
own, another's), so that most calls reach a row rather than a 404. Every response must be
free of 5xx, carry a status code the document declares for the operation, and match the documented schema
and content type. Generation is reproducible (``derandomize``) and bounded (``EVALHUB_FUZZ_EXAMPLES``
examples per operation in the fuzzing phase, plus schemathesis's example and coverage phases).

Huge integers, NUL bytes and overflowing amounts fail only on PostgreSQL: run it there too
(EVALHUB_TEST_DATABASE_URL, see tests/conftest.py).

The document is loaded with ``schemathesis.openapi.from_wsgi`` from an app built at collection (the session
``app`` fixture does not exist yet when pytest collects the parametrised tests); every call goes to the
session's test app (``app=``), whose database holds the world.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from evalhub import create_app
from evalhub.core.inputs import INT_MAX
from evalhub.core.services import issue_token
from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as credit
from evalhub.credit.models import CreditRating
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, Procurement
from evalhub.registry.models import Expert, Firm
from evalhub.review import services as review
from evalhub.review.models import Review
from evalhub.supervision import services as supervision
from evalhub.supervision.models import Trigger
from tests import factories
from tests.conftest import _empty_all_tables

pytestmark = pytest.mark.fuzz

FUZZ_EXAMPLES = int(os.environ.get("EVALHUB_FUZZ_EXAMPLES", "10"))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


def _document_app():
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "fuzz",
                       "FIELD_KEY": "fuzz", "SERVER_NAME": None})


_DOCUMENT_APP = _document_app()
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", _DOCUMENT_APP)
# Without a token every operation but the public ones stops at 401: the coverage phase's negative cases (most
# of a run) would only test the 401 again, so that run generates positive coverage cases only.
schema_without_token = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", _DOCUMENT_APP,
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"generation": {"mode": "positive"}}}}))
# What a firm's and an expert's token reach beyond the admin's: the admin gets 403 on their uploads and answers,
# and sees other shapes of the rows these read (a firm sees no expert, no draft rating, only its own bids). Kept to
# these operations: the suite runs this file at every push, near its time bound.
FIRM_OPERATIONS = ["list_ratings", "get_rating", "create_objection", "list_outcomes", "list_submissions",
                   "create_submission", "name_engagement_team", "list_bids", "create_challenge", "results_create_finding",
                   "upload_firm_document", "get_firm_people"]
EXPERT_OPERATIONS = ["list_reviews", "get_review", "save_review", "submit_review", "list_submissions", "expert_ratings"]
# Their coverage phase is positive too: its negative cases (most of a run) are the edge's checks of the document's
# bounds, the same whoever calls, and the admin run has them; their fuzzing phase still sends both kinds.
schema_firm = schema_without_token.include(operation_id=FIRM_OPERATIONS)
schema_expert = schema_without_token.include(operation_id=EXPERT_OPERATIONS)
# Path ids the firm and expert runs map onto the world's rows of that kind (every row: their own and others').
ID_PARAMETERS = {"engagement_id": Engagement, "rating_id": CreditRating, "procurement_id": Procurement,
                 "firm_id": Firm, "review_id": Review, "expert_id": Expert}
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def fuzz_world(app):
    """The world, built once for all runs; emptied afterwards like every test's data."""
    from evalhub.core import jobs

    jobs.configure(app)
    started = time.monotonic()
    # Built in an app context that is gone before the first call: each request then has its own context and
    # database session, as in production (a request inside a pushed context would share the test's session,
    # and one failed statement on PostgreSQL would abort every later request).
    with app.app_context():
        w = factories.make_world()
        accepted = factories.accepted(w)
        factories.contracted(w)  # the firm may upload its work plan, name its team
        factories.engagement(w)
        # An expert with a draft review: a work plan's panel, one member of which accepted.
        reviewed = factories.contracted(w)
        factories.submit_plan(reviewed)
        invitation = factories.own_panel(reviewed).invitations[0]
        reviewer = factories.expert_user(invitation.expert_id)
        review.respond(invitation, reviewer, accept=True, declaration_signed=True)
        # A published credit rating with an objection waiting for the bureau's answer, and an open inspection.
        credit.compute(w.bz, 2025, w.bz_admin)
        credit.publish(w.bz, 2025, w.bz_admin, today=beijing_today())
        rating = db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == w.firm.id)).scalars().first()
        credit.object_to(rating, w.firm_user, "合同履行得分有误：实施方案实际按期提交，附回执。", today=beijing_today())
        supervision.open_case(w.bz, w.bz_staff, trigger=Trigger.LOW_SCORE, detail="评审得分偏低", engagement=accepted)
        db.session.commit()
        state = SimpleNamespace(token=issue_token(w.bz_admin), bz_admin_id=w.bz_admin.id,
                                firm_token=issue_token(w.firm_user), expert_token=issue_token(reviewer),
                                ids={name: db.session.execute(sa.select(model.id).order_by(model.id)).scalars().all()
                                     for name, model in ID_PARAMETERS.items()})
        # The expert's run: mostly the expert's own rows (one review among seven would leave most calls at 404).
        state.rubric_items = [i.id for i in invitation.review.rubric.items]
        state.expert_ids = {**state.ids, "review_id": [invitation.review.id, min(state.ids["review_id"])],
                            "engagement_id": [reviewed.id, accepted.id],
                            "expert_id": [reviewer.expert_id, w.expert.id]}
        db.session.commit()
        db.session.remove()
    state.calls = Counter()  # (run, "METHOD path", status) → requests
    yield state
    with app.app_context():
        _empty_all_tables()
    _report(state.calls, time.monotonic() - started)


def _report(calls: Counter, seconds: float) -> None:
    """What the runs explored (shown with ``pytest -s``): requests per run, operations, statuses."""
    for run in sorted({k[0] for k in calls}):
        mine = {k: n for k, n in calls.items() if k[0] == run}
        statuses = Counter()
        for (_, _, status), n in mine.items():
            statuses[status] += n
        per_operation = Counter()
        for (_, label, _), n in mine.items():
            per_operation[label] += n
        print(f"\nschemathesis {run}: {sum(mine.values())} requests over {len(per_operation)} operations; "
              f"statuses {dict(sorted(statuses.items()))}; most: "
              + ", ".join(f"{label} {n}" for label, n in per_operation.most_common(4)))
    print(f"schemathesis: {seconds:.1f} s for all runs")


def _renew_token(app, fuzz_world) -> None:
    from evalhub.core.models import User

    with app.app_context():
        fuzz_world.token = issue_token(db.session.get(User, fuzz_world.bz_admin_id))
        db.session.commit()


@schema.parametrize()
@FUZZ
def test_api_with_a_bureau_token(case, app, fuzz_world):
    response = case.call_and_validate(app=app, headers={"Authorization": f"Bearer {fuzz_world.token}"}, checks=CHECKS)
    fuzz_world.calls["bureau token", case.operation.label, response.status_code] += 1
    if case.method == "DELETE" and case.path == "/api/v1/tokens/current" and response.status_code == 204:
        _renew_token(app, fuzz_world)  # the run revoked its own token: carry on with a new one


@schema_without_token.parametrize()
@FUZZ
def test_api_without_a_token(case, app, fuzz_world):
    response = case.call_and_validate(app=app, checks=CHECKS)
    fuzz_world.calls["no token", case.operation.label, response.status_code] += 1


def _onto_rows(case, ids_of: dict[str, list[int]]) -> None:
    """A generated id within the ids' range becomes one of ``ids_of``'s rows of its kind (the rest stay as
    generated: out of range, not a number)."""
    for name, value in (case.path_parameters or {}).items():
        ids = ids_of.get(name)
        if ids and isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT_MAX:
            case.path_parameters[name] = ids[value % len(ids)]


def _onto_items(case, items: list[int]) -> None:
    """A draft's scores and comments keyed by generated strings become keyed by the rubric's items (otherwise
    every draft stops at "no such item" and its values are never read)."""
    body = case.body if (case.method, case.path) == ("PUT", "/api/v1/reviews/{review_id}") else None
    if isinstance(body, dict):
        for name in ("scores", "comments"):
            if isinstance(body.get(name), dict):
                body[name] = {str(items[sum(map(ord, key)) % len(items)]): value for key, value in body[name].items()}


@schema_firm.parametrize()
@FUZZ
def test_api_with_a_firm_token(case, app, fuzz_world):
    _onto_rows(case, fuzz_world.ids)
    response = case.call_and_validate(app=app, headers={"Authorization": f"Bearer {fuzz_world.firm_token}"},
                                      checks=CHECKS)
    fuzz_world.calls["firm token", case.operation.label, response.status_code] += 1


@schema_expert.parametrize()
@FUZZ
def test_api_with_an_expert_token(case, app, fuzz_world):
    _onto_rows(case, fuzz_world.expert_ids)
    _onto_items(case, fuzz_world.rubric_items)
    response = case.call_and_validate(app=app, headers={"Authorization": f"Bearer {fuzz_world.expert_token}"},
                                      checks=CHECKS)
    fuzz_world.calls["expert token", case.operation.label, response.status_code] += 1
