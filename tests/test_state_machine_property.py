"""A stateful property test of the rules nobody may walk around (issue 11).

Hypothesis drives random sequences of calls by random roles over a small world and checks, after every
step, what must always hold:

- no engagement is accepted without a passed report outcome (the latest report's panel at or above the
  pass mark, its result recorded) — or by the admin's deduction path once every round is used, with the
  deduction recorded;
- no engagement is published while an inspection of its work is open, unless an admin waived it with a
  reason that the timeline and the audit event carry;
- no firm holds more of a bureau's key evaluations in a year than the cap (firm.max_key_evaluations);
- a firm never receives an individual score (an expert's marks, a screening risk), an expert's name or
  account, or another firm's bid in any response body;
- every state change has its audit event.

The calls are the API's (Flask test client, Bearer tokens from POST /api/v1/tokens): transitions, uploads,
reads, an expert's draft and submission. The steps the API does not offer (drawing a panel, answering an
invitation, sending the letter, publishing with the redacted file, the deduction, inspections, single-source
and random-draw procurement, the contract) call the service the web page calls, as the chosen user, with its
permission checks. ``advance`` takes the legitimate next step of an engagement (so sequences get deep
enough to matter); every other rule is a random role trying a random thing.

The world: 巴州 with three engagements (one contracted to firm1, two planned), firm1 and firm3 in 巴州's
library, firm2 in 克州's; 巴州's admin and staff, 克州's admin; six experts; one report round (so a failed
report reaches the deduction path within a sequence), panels of three, the cap at two. Bounded for CI: 60 sequences of
up to 30 steps, the database restored to the world between sequences (tests/conftest.py ``save_database``: a
file copy on SQLite, a copy of the tables on PostgreSQL); what was explored is printed.
EVALHUB_PROPERTY_SEQUENCES / _STEPS hunt longer locally.
"""
from __future__ import annotations

import io
import json
import os
import re
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import sqlalchemy as sa
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from evalhub.core import files
from evalhub.core.enums import Role
from evalhub.core.errors import DomainError
from evalhub.core.models import AuditEvent, User
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.procurement import services as P, workflow
from evalhub.procurement.models import (
    Engagement, EngagementState as S, EngagementTransition, Procurement, ProcurementMethod, ProcurementStatus,
)
from evalhub.registry.models import Expert, FirmStatus
from evalhub.review import services as R
from evalhub.review.models import (
    EvaluationResult, InvitationStatus, PanelInvitation, PanelStatus, ReviewPanel, SubmissionKind,
)
from evalhub.supervision import services as V
from evalhub.supervision.models import CHECKLIST, Inspection, InspectionStatus
from tests import factories
from tests.conftest import _empty_all_tables, drop_saved_database, restore_database, save_database

SEQUENCES = int(os.environ.get("EVALHUB_PROPERTY_SEQUENCES", "60"))
STEPS = int(os.environ.get("EVALHUB_PROPERTY_STEPS", "30"))
CAP = 2  # firm.max_key_evaluations for 巴州: firm1 holds one and may be proposed for both others at once

# What the run explored, printed at the end of the test.
CALLS: Counter = Counter()      # call → times
STATUSES: Counter = Counter()   # (call, HTTP status) → times
REACHED: Counter = Counter()    # engagement state → sequences in which some engagement reached it

BUREAU_ROLES = ["bz_admin", "bz_staff", "kz_admin"]
FIRM_ROLES = ["firm1", "firm3", "firm2"]
ROLES = BUREAU_ROLES + FIRM_ROLES + ["expert"]
ACTORS = ROLES + ["bz_admin", "bz_staff", "firm1", "firm1"]  # those who may act on 巴州's engagements, twice as often
USERNAMES = {"bz_admin": "bz.admin", "bz_staff": "bz.staff", "kz_admin": "kz.admin",
             "firm1": "firm1", "firm2": "firm2", "firm3": "firm3"}
ACTIONS = sorted(workflow.TRANSITIONS) + ["teleport"]
WHICH = st.sampled_from([0, 0, 0, 1, 2])  # mostly the contracted engagement, whose road is longest
OVERRIDE = "检查事项与报告结论无关，经局务会研究同意先行公开"
# Keys that carry individual scores or identities; none may reach a firm.
FIRM_FORBIDDEN_KEYS = {"experts", "others", "risk", "risk_score", "reviews", "scores"}
RISK_TEXT = re.compile(r"风险\s*\d")

PLAN_DOC = factories.docx_bytes("实施方案\n一、评价思路\n二、指标体系\n三、组织与进度")
REPORT_DOC = factories.docx_bytes(factories.report_text())
REDACTED_DOC = factories.docx_bytes(factories.report_text() + "\n（脱密公开版）")
INDICATORS = json.dumps([{"category": i.category, "name": i.name, "weight": i.weight, "score": i.score}
                         for i in factories.report_indicators()], ensure_ascii=False)

_RUN = SimpleNamespace(app=None, client=None, world=None, snapshot=None)


# --- the world, built once and restored before every sequence ---------------------------------------

def _build_world() -> SimpleNamespace:
    w = factories.make_world()
    for key, value in (("firm.max_key_evaluations", CAP), ("review.max_rounds", 1),
                       ("review.report_panel_size", 3), ("review.same_firm_per_year", 20),
                       ("review.load_cap", 10)):
        set_setting(w.bz, key, value, w.bz_admin)
    firm3 = factories.firm(w.bz, FirmStatus.ADMITTED, name="巴州第三评价事务所")
    firm3_user = factories.user("firm3", Role.FIRM_USER, firm_id=firm3.id)
    from evalhub.registry.services import StaffInput, add_staff

    leads = {key: add_staff(firm, StaffInput(name=f"{firm.name[:2]}主评人", id_number=factories.id_number(),
                                             role="项目负责人", years_experience=10), user).id
             for key, firm, user in (("firm1", w.firm, w.firm_user), ("firm3", firm3, firm3_user))}
    for i in range(5):
        x = factories.expert(w.bz, name=f"池评审{'甲乙丙丁戊'[i]}", employer=f"新疆某研究院{i}")
        factories.user(f"pool{i}", Role.EXPERT, expert_id=x.id)
    e1 = factories.contracted(w)
    e2 = factories.engagement(w, unit="巴州民政局")
    e3 = factories.engagement(w, unit="巴州民政局")
    for name, content in (("work_plan.docx", PLAN_DOC), ("report.docx", REPORT_DOC), ("公开版.docx", REDACTED_DOC)):
        files.store(name, content, allowed=("docx",), actor=None)  # text extracted once, not in every sequence
    db.session.commit()
    experts = db.session.execute(sa.select(User).where(User.expert_id.is_not(None)).order_by(User.id)).scalars().all()
    world = SimpleNamespace(
        engagements=[e1.id, e2.id, e3.id], bureau_id=w.bz.id,
        firms={"firm1": w.firm.id, "firm3": firm3.id, "firm2": w.other_firm.id}, leads=leads,
        users={role: db.session.execute(sa.select(User.id).where(User.username == name)).scalar_one()
               for role, name in USERNAMES.items()},
        experts=[u.username for u in experts],
        # What must never reach a firm: every expert's name and account.
        secrets=[x.name for x in db.session.execute(sa.select(Expert)).scalars()] + [u.username for u in experts],
        tokens={})
    for username in list(USERNAMES.values()) + world.experts:  # the API's own way to a token
        response = _RUN.client.post("/api/v1/tokens", json={"username": username, "password": factories.PASSWORD})
        assert response.status_code == 201, response.get_data(as_text=True)
        world.tokens[username] = response.json["token"]
    return world


def _fresh_world() -> SimpleNamespace:
    if _RUN.snapshot is not None:  # the database put back as it was right after the world was built
        restore_database(_RUN.snapshot)
        return _RUN.world
    db.session.remove()
    _empty_all_tables()
    world = _build_world()
    _RUN.snapshot, _RUN.world = save_database("property_world"), world
    return world


# --- the machine ------------------------------------------------------------------------------------

class Rules(RuleBasedStateMachine):
    """One sequence: the world as built, then random calls; the invariants run after every step."""

    def __init__(self):
        super().__init__()
        self.w = _fresh_world()
        self.client = _RUN.client
        self.reached: set[str] = set()

    def teardown(self):
        db.session.rollback()
        notes = db.session.execute(sa.select(EngagementTransition.note).where(
            EngagementTransition.action == "publish")).scalars().all()
        if any("管理员豁免" in (n or "") for n in notes):
            self.reached.add("waived")
        for state in self.reached:
            REACHED[state] += 1
        db.session.remove()

    # helpers ------------------------------------------------------------------------------------------

    def _username(self, role: str, expert: int = 0) -> str:
        return self.w.experts[expert % len(self.w.experts)] if role == "expert" else USERNAMES[role]

    def _user(self, role: str, expert: int = 0) -> User:
        db.session.rollback()
        return db.session.execute(sa.select(User).where(User.username == self._username(role, expert))).scalar_one()

    def _engagement(self, which: int) -> Engagement:
        db.session.rollback()
        return db.session.get(Engagement, self.w.engagements[which])

    def _call(self, name: str, username: str, method: str, url: str, **kw):
        """An API call; a firm's response body is searched for what it must never hold."""
        response = getattr(self.client, method)(url, headers={"Authorization": f"Bearer {self.w.tokens[username]}"}, **kw)
        CALLS[name] += 1
        STATUSES[(name, response.status_code)] += 1
        assert response.status_code < 500, f"{method.upper()} {url} as {username}: {response.get_data(as_text=True)[:2000]}"
        firm = next((role for role, name in USERNAMES.items() if name == username and role in FIRM_ROLES), None)
        if firm is not None:
            self._nothing_secret_for(firm, url, response)
        return response

    def _service(self, name: str, fn) -> bool:
        """A service step (what a web page does); a refusal is rolled back and counted by its status."""
        CALLS[name] += 1
        try:
            fn()
        except DomainError as exc:
            db.session.rollback()
            status = getattr(exc, "status", 500)
            STATUSES[(name, status)] += 1
            assert status < 500, exc
            return False
        db.session.commit()
        STATUSES[(name, 200)] += 1
        return True

    def _nothing_secret_for(self, firm: str, url: str, response) -> None:
        body = response.get_data(as_text=True)
        for secret in self.w.secrets:
            assert secret not in body, f"{firm} reads the expert {secret!r} in {url}: {body[:1500]}"
        assert not RISK_TEXT.search(body), f"{firm} reads a screening risk in {url}: {body[:1500]}"
        if not response.is_json:
            return
        own = self.w.firms[firm]

        def walk(node, where):
            if isinstance(node, dict):
                leaked = FIRM_FORBIDDEN_KEYS & set(node)
                assert not leaked, f"{firm} receives {sorted(leaked)} at {url}{where}: {body[:1500]}"
                if "procurement_id" in node and isinstance(node.get("firm"), dict):  # a bid
                    assert node["firm"].get("id") == own, f"{firm} receives another firm's bid at {url}: {node}"
                for key, value in node.items():
                    walk(value, f"{where}.{key}")
            elif isinstance(node, list):
                for item in node:
                    walk(item, where)

        walk(response.json, "")

    # the steps an engagement legitimately takes -----------------------------------------------------

    def _upload(self, username: str, which: int, kind: str, good: bool = True):
        data = {"kind": kind, "note": "按合同提交"}
        if kind == "report":
            data.update(indicators=INDICATORS, concluded_total="92", concluded_grade="优")
        content = (PLAN_DOC if kind == "work_plan" else REPORT_DOC) if good else "只是文本，不是 Word 文件".encode()
        data["file"] = (io.BytesIO(content), f"{kind}.docx")
        return self._call("api: POST submissions", username, "post",
                          f"/api/v1/engagements/{self.w.engagements[which]}/submissions",
                          data=data, content_type="multipart/form-data")

    def _panel_reviews(self, panel_id: int, level: str, via_api: bool = True) -> None:
        """Every seated expert accepts (service) and files a review at ``level`` of each item's points (API;
        with "mixed" the first expert marks low and the others high, which fails both pass marks)."""
        invitations = db.session.execute(sa.select(PanelInvitation).where(PanelInvitation.panel_id == panel_id)
                                         .order_by(PanelInvitation.id)).scalars().all()
        for invitation in invitations:
            if invitation.status == InvitationStatus.INVITED:
                member = db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one()
                self._service("svc: expert answers invitation", lambda: R.respond(
                    invitation, member, accept=True, declaration_signed=True))
        seated = db.session.execute(sa.select(PanelInvitation).where(
            PanelInvitation.panel_id == panel_id, PanelInvitation.status == InvitationStatus.ACCEPTED)
            .order_by(PanelInvitation.id)).scalars().all()
        for n, invitation in enumerate(seated):
            review = invitation.review
            if review is None or review.status.value != "draft":
                continue
            member = db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one()
            mark = ("0.5" if n == 0 else "0.95") if level == "mixed" else level
            if via_api:
                self._file_review(member.username, review.id, [(i.id, i.max_points) for i in review.rubric.items], mark, True)
                continue
            items = review.rubric.items  # the history before the sequence: the services, not counted
            R.save_review(review, member, scores={i.id: (i.max_points * Decimal(mark)).quantize(Decimal("0.5")) for i in items},
                          comments={i.id: "评分理由充分" for i in items}, opinion="总体意见")
            R.submit_review(review, member)
            db.session.commit()

    def _expert_reviews(self, username: str, level: str, submit: bool) -> None:
        """An expert finds a draft through the API (their list, then the review) and works on it."""
        listing = self._call("api: GET reviews", username, "get", "/api/v1/reviews?status=accepted&per_page=50")
        drafts = [r for r in listing.json.get("items", []) if r["id"] and r["status"] and r["status"]["value"] == "draft"] \
            if listing.status_code == 200 else []
        if not drafts:
            return
        detail = self._call("api: GET review", username, "get", f"/api/v1/reviews/{drafts[0]['id']}")
        self._file_review(username, drafts[0]["id"], [(i["id"], i["max_points"]) for i in detail.json["items"]],
                          level, submit)

    def _file_review(self, username: str, review_id: int, items, level: str, submit: bool) -> None:
        scores = {str(item): float((Decimal(str(points)) * Decimal(level)).quantize(Decimal("0.5"))) for item, points in items}
        self._call("api: PUT review", username, "put", f"/api/v1/reviews/{review_id}",
                   json={"scores": scores, "comments": {k: "评分理由充分" for k in scores}, "opinion": "总体意见"})
        if submit:
            self._call("api: POST review submit", username, "post", f"/api/v1/reviews/{review_id}/submit")

    def _latest_panel(self, e: Engagement):
        return db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == e.id)
                                  .order_by(ReviewPanel.id.desc())).scalars().first()

    def _propose(self, user: User, e: Engagement, firm: str):
        return factories.witnessed(P.open_procurement(e, P.ProcurementInput(
            method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=self.w.firms[firm],
            justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。",
            rerun_reason="上一轮采购未能成交" if e.state == S.FAILED_PROCUREMENT else None), user))

    def _sign(self, user: User, e: Engagement):
        day = date(2025, 3, 1)
        if e.current_procurement is not None and e.current_procurement.notice is not None:
            factories.past_challenge_period(e.current_procurement)  # the contract waits for the challenge period
        return P.sign_contract(e, P.ContractInput(
            amount_wan="18", signed_on=day, start_date=day, end_date=day + timedelta(days=300),
            plan_due=day + timedelta(days=30), report_due=day + timedelta(days=240), deliverables="实施方案、评价报告"), user)

    def _advance(self, which: int, level: str, firm: str, publisher: str, override: bool, via_api: bool = True) -> None:
        e = self._engagement(which)
        state = e.state
        staff, admin = self._user("bz_staff"), self._user("bz_admin")
        e = self._engagement(which)
        if state in (S.PLANNED, S.FAILED_PROCUREMENT):
            self._service("svc: propose single source", lambda: self._propose(staff, e, firm))
        elif state == S.PROCURING:
            procurement = e.current_procurement
            if procurement is not None and procurement.status == ProcurementStatus.PENDING_APPROVAL:
                self._service("svc: approve single source", lambda: P.approve_single_source(procurement, admin, "18"))
            else:
                self._service("svc: sign contract", lambda: self._sign(staff, e))
        elif state in (S.CONTRACTED, S.PLAN_RETURNED):
            self._upload("firm1" if e.firm_id == self.w.firms["firm1"] else "firm3", which, "work_plan")
        elif state in (S.FIELDWORK, S.REPORT_RETURNED):
            if state == S.REPORT_RETURNED and R.rounds_exhausted(e):
                self._service("svc: accept with deduction", lambda: R.accept_with_deduction(e, admin, "5", "整改轮次已用完仍未通过，扣 5 分验收"))
            else:
                firm = "firm1" if e.firm_id == self.w.firms["firm1"] else "firm3"
                if not self._call("api: GET team", firm, "get", f"/api/v1/engagements/{e.id}/team").json["members"]:
                    # A report is handed in under a named 主评人 (the API refuses it before): the firm names one.
                    self._call("api: POST team", firm, "post", f"/api/v1/engagements/{e.id}/team",
                               json={"lead_staff_id": self.w.leads[firm]})
                self._upload(firm, which, "report")
        elif state in (S.PLAN_SUBMITTED, S.REPORT_SUBMITTED):
            self._service("svc: form panel", lambda: factories.witnessed(R.form_panel(e, staff, size=3)))
        elif state in (S.PLAN_IN_REVIEW, S.REPORT_IN_REVIEW):
            panel = self._latest_panel(e)
            if panel is None:  # only if something let the engagement into review without a panel
                return
            if panel.status == PanelStatus.REVIEWING:
                self._panel_reviews(panel.id, level, via_api)
            elif panel.status == PanelStatus.DECIDED:
                self._service("svc: send letter", lambda: R.send_letter(panel, staff, (panel.letter or "") + "\n请按意见整改。"))
        elif state == S.ACCEPTED:
            user = self._user(publisher)
            e = self._engagement(which)
            self._service("svc: publish" + (" with override" if override else ""), lambda: R.publish(
                e, user, filename="公开版.docx", data=REDACTED_DOC, override=OVERRIDE if override else None))
        elif state == S.PUBLISHED:
            self._call("api: POST transitions", "bz.staff", "post", f"/api/v1/engagements/{e.id}/transitions",
                       json={"action": "archive"})

    @initialize(depth=st.integers(0, 9), level=st.sampled_from(["0.95", "0.95", "0.5", "mixed"]),
                inspected=st.booleans())
    def start_somewhere_on_the_road(self, depth, level, inspected):
        """The contracted engagement takes up to nine legitimate steps first (as far as accepted, or through
        returned rounds), so sequences start at every stage of its road instead of all at the beginning;
        in half of them an inspection of its work is then open."""
        for _ in range(depth):
            self._advance(0, level, "firm1", "bz_staff", False, via_api=False)
        if inspected:
            admin, e = self._user("bz_admin"), self._engagement(0)
            self._service("svc: open inspection", lambda: V.open_case(
                e.bureau, admin, trigger="other", detail="群众反映问卷数据存疑", engagement=e))

    # ``advance`` is listed four times so that about a third of the steps move an engagement forward.
    _ADVANCE = dict(which=WHICH, level=st.sampled_from(["0.95", "0.95", "0.5", "mixed"]),
                    firm=st.sampled_from(["firm1", "firm1", "firm3"]),
                    publisher=st.sampled_from(["bz_staff", "bz_admin", "bz_admin"]),
                    override=st.booleans())

    @rule(**_ADVANCE)
    def advance(self, which, level, firm, publisher, override):
        self._advance(which, level, firm, publisher, override)

    @rule(**_ADVANCE)
    def advance_again(self, which, level, firm, publisher, override):
        self._advance(which, level, firm, publisher, override)

    @rule(**_ADVANCE)
    def advance_once_more(self, which, level, firm, publisher, override):
        self._advance(which, level, firm, publisher, override)

    @rule(**_ADVANCE)
    def advance_further(self, which, level, firm, publisher, override):
        self._advance(which, level, firm, publisher, override)

    # anyone trying anything -------------------------------------------------------------------------

    @rule(role=st.sampled_from(ACTORS), which=WHICH, action=st.sampled_from(ACTIONS),
          note=st.sampled_from([None, "", "按意见办理"]), expert=st.integers(0, 9))
    def api_transition(self, role, which, action, note, expert):
        body = {"action": action} if note is None else {"action": action, "note": note}
        self._call("api: POST transitions", self._username(role, expert), "post",
                   f"/api/v1/engagements/{self.w.engagements[which]}/transitions", json=body)

    @rule(which=WHICH, pick=st.integers(0, 5), admin=st.booleans(), note=st.sampled_from(["直接变更", None]))
    def api_shortcut(self, which, pick, admin, note):
        """The bare next step, by the one who may take it: exactly what the gates must refuse (the API used
        to let firm and bureau walk plan → report → accepted → published with no file, panel or result)."""
        e = self._engagement(which)
        steps = [t for t in workflow.TRANSITIONS.values() if e.state in t.sources and t.action != "cancel"]
        if not steps:
            return
        step = steps[pick % len(steps)]
        if step.actor == workflow.FIRM:
            username = "firm1" if e.firm_id == self.w.firms["firm1"] else "firm3"
        else:
            username = "bz.admin" if admin or step.actor == workflow.BUREAU_ADMIN else "bz.staff"
        self._call("api: POST transitions (the bare next step)", username, "post",
                   f"/api/v1/engagements/{e.id}/transitions",
                   json={"action": step.action} if note is None else {"action": step.action, "note": note})

    @rule(role=st.sampled_from(["firm1", "firm1", "firm3", "firm2", "bz_staff"]), which=WHICH,
          kind=st.sampled_from(["work_plan", "report"]), good=st.booleans())
    def api_upload(self, role, which, kind, good):
        self._upload(USERNAMES[role], which, kind, good)

    @rule(role=st.sampled_from(ROLES), which=WHICH, expert=st.integers(0, 9),
          what=st.sampled_from(["detail", "outcomes", "submissions", "list", "inspection", "procurement", "bids"]))
    def api_read(self, role, which, what, expert):
        eid = self.w.engagements[which]
        db.session.rollback()
        url = {"detail": f"/api/v1/engagements/{eid}", "outcomes": f"/api/v1/engagements/{eid}/outcomes",
               "submissions": f"/api/v1/engagements/{eid}/submissions", "list": "/api/v1/engagements?per_page=50"}.get(what)
        if what == "inspection":
            found = db.session.execute(sa.select(Inspection.id).where(Inspection.engagement_id == eid)
                                       .order_by(Inspection.id.desc())).scalars().first()
            url = f"/api/v1/inspections/{found}" if found else "/api/v1/inspections"
        elif what in ("procurement", "bids"):
            found = db.session.execute(sa.select(Procurement.id).where(Procurement.engagement_id == eid)
                                       .order_by(Procurement.id.desc())).scalars().first()
            url = (f"/api/v1/procurements/{found}" + ("/bids" if what == "bids" else "")) if found \
                else f"/api/v1/engagements/{eid}"
        self._call(f"api: GET {what}", self._username(role, expert), "get", url)

    @rule(expert=st.integers(0, 9), accept=st.sampled_from([True, True, False]),
          level=st.sampled_from(["0.95", "0.5"]), submit=st.booleans())
    def expert_acts(self, expert, accept, level, submit):
        """One expert answers their oldest invitation, or works on a draft (API)."""
        user = self._user("expert", expert)
        invitation = db.session.execute(sa.select(PanelInvitation).where(
            PanelInvitation.expert_id == user.expert_id, PanelInvitation.status == InvitationStatus.INVITED)
            .order_by(PanelInvitation.id)).scalars().first()
        if invitation is not None:
            self._service("svc: expert answers invitation", lambda: R.respond(
                invitation, user, accept=accept, declaration_signed=True, reason=None if accept else "时间冲突"))
        else:
            self._expert_reviews(user.username, level, submit)

    @rule(role=st.sampled_from(BUREAU_ROLES), which=WHICH, override=st.sampled_from([None, None, "", OVERRIDE]),
          deduction=st.booleans())
    def bureau_closes_out(self, role, which, override, deduction):
        """Someone at a bureau tries to publish (maybe overriding) or to accept with a deduction."""
        user, e = self._user(role), self._engagement(which)
        if deduction:
            self._service("svc: accept with deduction", lambda: R.accept_with_deduction(e, user, "5", "扣分验收"))
        else:
            self._service("svc: publish" + (" with override" if override else ""), lambda: R.publish(
                e, user, filename="公开版.docx", data=REDACTED_DOC, override=override))

    @rule(role=st.sampled_from(BUREAU_ROLES), which=WHICH, screening=st.booleans(),
          close=st.sampled_from([False, False, True]))
    def inspection(self, role, which, screening, close):
        """An inspection of the engagement is opened (a screening flag or another lead), or the oldest open
        one is closed with its checklist done."""
        user, e = self._user(role), self._engagement(which)
        if close:
            found = db.session.execute(sa.select(Inspection).where(Inspection.status != InspectionStatus.CLOSED)
                                       .order_by(Inspection.id)).scalars().first()
            if found is not None:
                def close_it():  # by the role's user when independent of the engagement, else by one who is
                    who = user if V.recording_refusal(found, user) is None else factories.recorder(found)
                    V.record_checklist(found, who, {code: (True, "") for code, _ in CHECKLIST})
                    V.close(found, who, "经核查，线索不实，予以办结。", substantiated=False)

                self._service("svc: close inspection", close_it)
            return
        if e.firm_id is None:
            return
        detail = "报告质量筛查提示：风险 0.91，2025 年第 1/3 名。" if screening else "群众反映问卷数据存疑"
        self._service("svc: open inspection", lambda: V.open_case(
            e.bureau, user, trigger="screening_flag" if screening else "other", detail=detail, engagement=e))

    @rule(role=st.sampled_from(BUREAU_ROLES), which=st.sampled_from([1, 2]), firm=st.sampled_from(FIRM_ROLES),
          step=st.sampled_from(["propose", "approve", "draw", "sign"]))
    def procurement(self, role, which, firm, step):
        """Single-source proposals and approvals, random draws and contracts for the planned engagements,
        by anyone at a bureau: the yearly cap must hold however they interleave."""
        user, e = self._user(role), self._engagement(which)
        if step == "propose":
            self._service("svc: propose single source", lambda: self._propose(user, e, firm))
        elif step == "approve":
            procurement = e.current_procurement
            if procurement is not None:
                self._service("svc: approve single source", lambda: P.approve_single_source(procurement, user, "18"))
        elif step == "draw":
            self._service("svc: random draw", lambda: factories.witnessed(P.open_procurement(e, P.ProcurementInput(
                method=ProcurementMethod.RANDOM_DRAW, title="", ceiling_price_wan="20",
                rerun_reason="上一轮采购未能成交" if e.state == S.FAILED_PROCUREMENT else None), user)))
        else:
            self._service("svc: sign contract", lambda: self._sign(user, e))

    # what must hold after every step ----------------------------------------------------------------

    @invariant()
    def the_rules_hold(self):
        db.session.rollback()
        engagements = db.session.execute(sa.select(Engagement)).scalars().all()
        for e in engagements:
            self.reached.add(e.state.value)
            if e.state in (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED):
                self._accepted_with_a_passed_outcome(e)
        self._published_only_with_inspections_closed_or_waived()
        self._no_firm_over_the_cap()
        transitions = db.session.execute(sa.select(sa.func.count(EngagementTransition.id))).scalar_one()
        events = db.session.execute(sa.select(sa.func.count(AuditEvent.id)).where(
            AuditEvent.action.in_([f"engagement.{a}" for a in workflow.TRANSITIONS]))).scalar_one()
        assert transitions == events, "a state change without its audit event"
        db.session.rollback()

    def _accepted_with_a_passed_outcome(self, e: Engagement) -> None:
        into = [t for t in e.transitions if t.to_state == S.ACCEPTED]
        assert len(into) == 1, [t.action for t in e.transitions]
        report = R.latest_submission(e, SubmissionKind.REPORT)
        assert report is not None, f"{e.reference} accepted without a report"
        result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one_or_none()
        assert result is not None and result.submission_id == report.id, f"{e.reference} accepted without a result"
        if into[0].action == "accept_report":
            panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.submission_id == report.id)).scalar_one()
            assert panel.decided_at is not None and panel.passed and panel.score >= panel.pass_mark, \
                f"{e.reference} accepted with a panel score of {panel.score} against {panel.pass_mark}"
        else:
            assert into[0].action == "accept_with_deduction", into[0].action
            assert result.deduction is not None and result.deduction_reason and R.rounds_exhausted(e) is not None

    def _published_only_with_inspections_closed_or_waived(self) -> None:
        for t in db.session.execute(sa.select(EngagementTransition).where(EngagementTransition.action == "publish")).scalars():
            open_then = db.session.execute(sa.select(Inspection.id).where(
                Inspection.engagement_id == t.engagement_id, Inspection.opened_at <= t.created_at,
                sa.or_(Inspection.closed_at.is_(None), Inspection.closed_at > t.created_at))).scalars().all()
            if not open_then:
                continue
            event = db.session.execute(sa.select(AuditEvent).where(
                AuditEvent.action == "engagement.publish", AuditEvent.object_id == t.engagement_id)).scalar_one()
            waived = (event.payload or {}).get("waived") or []
            assert [w["requirement"] for w in waived] == ["no_open_inspection"] and waived[0]["reason"], \
                f"published with inspections {open_then} open and nothing waived"
            assert db.session.get(User, t.actor_id).role == Role.BUREAU_ADMIN and "管理员豁免" in t.note

    def _no_firm_over_the_cap(self) -> None:
        rows = db.session.execute(
            sa.select(Engagement.firm_id, Engagement.bureau_id, Engagement.year, sa.func.count(Engagement.id))
            .where(Engagement.firm_id.is_not(None), Engagement.state != S.CANCELLED)
            .group_by(Engagement.firm_id, Engagement.bureau_id, Engagement.year)).all()
        for firm_id, bureau_id, year, held in rows:
            assert held <= CAP, f"firm {firm_id} holds {held} of bureau {bureau_id}'s {year} key evaluations (cap {CAP})"


def _unsynchronised(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous = OFF")


SETTINGS = settings(max_examples=SEQUENCES, stateful_step_count=STEPS, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def test_no_sequence_of_calls_walks_around_the_rules(app, capsys):
    from evalhub.core import jobs

    jobs.configure(app)
    _RUN.app, _RUN.client, _RUN.world, _RUN.snapshot = app, app.test_client(), None, None
    for counter in (CALLS, STATUSES, REACHED):
        counter.clear()
    started, cpu = time.monotonic(), time.process_time()
    with app.app_context():
        sqlite = db.engine.url.get_backend_name() == "sqlite"
        if sqlite:  # a throwaway database: no need to wait for the disk at every commit
            db.engine.dispose()
            sa.event.listen(db.engine, "connect", _unsynchronised)
        try:
            run_state_machine_as_test(Rules, settings=SETTINGS)
        finally:
            db.session.remove()
            if sqlite:
                db.engine.dispose()
                sa.event.remove(db.engine, "connect", _unsynchronised)
            if _RUN.snapshot:
                drop_saved_database(_RUN.snapshot)
            _empty_all_tables()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    with capsys.disabled():
        print(f"\n[state machine] {SEQUENCES} sequences × ≤{STEPS} steps: {sum(CALLS.values())} calls, "
              f"{elapsed:.1f}s ({cpu:.1f}s CPU)")
        for name, n in sorted(CALLS.items()):
            statuses = ", ".join(f"{status}×{k}" for (call, status), k in sorted(STATUSES.items()) if call == name)
            print(f"  {name:<44} {n:>5}  ({statuses})")
        print("  sequences in which an engagement reached: "
              + ", ".join(f"{s.label} {REACHED[s.value]}" for s in S if REACHED[s.value])
              + f"; published over an open inspection with an admin's waiver: {REACHED['waived']}")
    # The run must have reached the gates it is about, not only bounced off the first refusal.
    assert STATUSES[("api: POST transitions", 409)] > 0 and STATUSES[("api: POST submissions", 201)] > 0
    assert REACHED[S.ACCEPTED.value] > 0 and REACHED[S.PUBLISHED.value] > 0
