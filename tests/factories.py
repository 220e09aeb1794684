"""Builders for test data, going through the real services so the data obeys the rules."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

from evalhub.core.enums import BureauLevel, Field, Role
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.services import hash_password
from evalhub.core.validators import compose_id_number, compose_uscc
from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import Degree, FirmDocumentKind, FirmStatus, ProfessionalTitle
from tests.kept_states import kept

PASSWORD = "correct-horse-1"
_seq = itertools.count(1)


def bureau(code: str, name: str, short: str, level: BureauLevel, parent: Bureau | None = None, *,
           flush: bool = True) -> Bureau:
    b = Bureau(code=code, name=name, short_name=short, level=level, parent=parent,
               path=(parent.path if parent else "") + code + "/")
    db.session.add(b)
    if flush:
        db.session.flush()
    return b


_HASHES: dict[str, str] = {}


def _password_hash() -> str:
    """PASSWORD hashed once per method (a salted hash verifies for every account that carries it)."""
    from flask import current_app

    method = current_app.config.get("PASSWORD_HASH_METHOD", "")
    if method not in _HASHES:
        _HASHES[method] = hash_password(PASSWORD)
    return _HASHES[method]


def user(username: str, role: Role, *, flush: bool = True, **org) -> User:
    u = User(username=username, password_hash=_password_hash(), display_name=username, role=role, **org)
    db.session.add(u)
    if flush:
        db.session.flush()
    return u


def recorder(inspection) -> User:
    """Who writes an inspection's record (supervision.services.recording_refusal): a manager of its bureau who never
    touched the engagement (made once per bureau; a manager, so that a finding's suspension is applied at once)."""
    import sqlalchemy as sa

    name = f"recorder-{inspection.bureau_id}"
    found = db.session.execute(sa.select(User).where(User.username == name)).scalar_one_or_none()
    return found or user(name, Role.BUREAU_ADMIN, bureau_id=inspection.bureau_id)


def uscc(division: str = "652800") -> str:
    n = next(_seq)
    return compose_uscc(division, f"MA{n:06d}X")


def id_number(division: str = "652801", birth: str | None = None) -> str:
    """A valid identity number, never repeated in a session unless ``birth`` is given (the three-digit
    sequence code wraps at 1000, so the default birth day moves on by a day every 1000 numbers, in 1970)."""
    n = next(_seq)
    if birth is None:
        from datetime import date, timedelta

        birth = (date(1970, 1, 1) + timedelta(days=n // 1000 % 365)).strftime("%Y%m%d")
    return compose_id_number(division, birth, n % 1000)


def firm_input(**overrides) -> registry.FirmInput:
    n = next(_seq)
    values = dict(name=f"测试评价咨询有限公司{n}", uscc=uscc(), legal_form="有限责任公司", kind="咨询公司",
                  address=f"新疆库尔勒市人民东路 {n} 号", legal_representative="张三", contact_name="李四",
                  contact_phone=f"0996-2{n:06d}", fields=[Field.FINANCE], declares_no_major_violation=True)
    values.update(overrides)
    return registry.FirmInput(**values)


def firm(bureau: Bureau, status: FirmStatus = FirmStatus.ADMITTED, actor: User | None = None, **overrides):
    f = registry.create_firm(firm_input(**overrides), bureau, actor)
    if status != FirmStatus.PENDING:
        f.status = status  # shortcut for fixtures; the status services have their own tests
    db.session.flush()
    return f


def expert_input(**overrides) -> registry.ExpertInput:
    values = dict(name=f"专家{next(_seq)}", id_number=id_number(), employer="新疆财经大学",
                  title=ProfessionalTitle.SENIOR, degree=Degree.MASTER, years_in_field=15, birth_year=1970,
                  fields=[Field.FINANCE])
    values.update(overrides)
    return registry.ExpertInput(**values)


def expert(bureau: Bureau, **overrides):
    e = registry.create_expert(expert_input(**overrides), bureau, None)
    db.session.flush()
    return e


def make_world() -> SimpleNamespace:
    # Added together and written in one flush each (most tests start here: round trips count).
    region = bureau("650000", "新疆维吾尔自治区财政厅", "自治区", BureauLevel.REGION, flush=False)
    bz = bureau("652800", "巴音郭楞蒙古自治州财政局", "巴州", BureauLevel.PREFECTURE, region, flush=False)
    kz = bureau("653000", "克孜勒苏柯尔克孜自治州财政局", "克州", BureauLevel.PREFECTURE, region, flush=False)
    krl = bureau("652801", "库尔勒市财政局", "库尔勒市", BureauLevel.COUNTY, bz, flush=False)
    lt = bureau("652822", "轮台县财政局", "轮台县", BureauLevel.COUNTY, bz, flush=False)
    ats = bureau("653001", "阿图什市财政局", "阿图什市", BureauLevel.COUNTY, kz, flush=False)
    db.session.flush()
    units = {}
    for b, name in [(bz, "巴州统计局"), (bz, "巴州民政局"), (lt, "轮台县医疗保障局"), (kz, "克州农业农村局")]:
        u = BudgetUnit(bureau_id=b.id, name=name)
        db.session.add(u)
        units[name] = u
    db.session.flush()
    w = SimpleNamespace(region=region, bz=bz, kz=kz, krl=krl, lt=lt, ats=ats, units=units)
    w.sysadmin = user("admin", Role.SYSTEM_ADMIN, flush=False)
    for key, b in [("region", region), ("bz", bz), ("kz", kz), ("krl", krl), ("lt", lt), ("ats", ats)]:
        setattr(w, f"{key}_admin", user(f"{key}.admin", Role.BUREAU_ADMIN, bureau_id=b.id, flush=False))
        setattr(w, f"{key}_staff", user(f"{key}.staff", Role.BUREAU_STAFF, bureau_id=b.id, flush=False))
    db.session.flush()
    w.firm = firm(bz, FirmStatus.ADMITTED, name="巴州示范评价咨询有限公司")
    w.firm_user = user("firm1", Role.FIRM_USER, firm_id=w.firm.id)
    w.other_firm = firm(kz, FirmStatus.ADMITTED, name="克州另一家评价有限公司")
    w.other_firm_user = user("firm2", Role.FIRM_USER, firm_id=w.other_firm.id)
    w.expert = expert(bz, name="王专家")
    w.expert_user = user("expert1", Role.EXPERT, expert_id=w.expert.id)
    db.session.commit()
    return w


# --- plans, engagements, procurement ---------------------------------------------------------------

def engagement(w, *, bureau_key: str = "bz", unit: str = "巴州统计局", field=Field.FINANCE, year: int = 2025,
               name: str | None = None, commissioner: str | None = None, amount_wan: str = "300"):
    """An approved plan item of ``bureau_key``'s plan for ``year``, as an engagement in state planned."""
    from evalhub.procurement import services as procurement
    from evalhub.procurement.models import ObjectType

    bureau_obj = getattr(w, bureau_key)
    admin = getattr(w, f"{bureau_key}_admin")
    plan = procurement.get_or_create_plan(bureau_obj, year, admin)
    if plan.status.value == "approved":
        plan.status = plan.status.__class__("draft")  # fixture shortcut: reopen to add one more object
    item = procurement.add_plan_item(plan, procurement.PlanItemInput(
        name=name or f"{unit}重点项目{next(_seq)}", object_type=ObjectType.PROJECT, budget_kind="一般公共预算",
        field=field, amount_wan=amount_wan, budget_unit_id=w.units[unit].id, reason="资金量大、社会关注度高",
        commissioner_unit_id=w.units[commissioner].id if commissioner else None), admin)
    from evalhub.procurement.models import Engagement, EngagementState

    count = len(plan.items)
    e = Engagement(plan_item_id=item.id, bureau_id=bureau_obj.id, year=year,
                   reference=f"{bureau_obj.code}-{year}-{item.id:03d}", name=item.name, service_kind=item.service_kind,
                   field=item.field, amount=item.amount, budget_unit_id=item.budget_unit_id,
                   commissioner_unit_id=item.commissioner_unit_id, state=EngagementState.PLANNED)
    db.session.add(e)
    db.session.flush()
    return e


@kept
def bidder(w, name: str, *, bureau_key: str = "bz"):
    """An admitted firm of ``bureau_key``'s library with a firm user and one roster member: (firm, user, staff)."""
    from evalhub.registry.services import StaffInput, add_staff

    firm_obj = firm(getattr(w, bureau_key), name=name)
    firm_user = user(f"u{firm_obj.id}", Role.FIRM_USER, firm_id=firm_obj.id)
    staff = add_staff(firm_obj, StaffInput(name=f"{name[:4]}负责人", id_number=id_number(), role="项目负责人",
                                           years_experience=10), firm_user)
    return firm_obj, firm_user, staff


@kept
def bid(procurement_obj, firm_user: User, staff, price: str):
    """The firm's sealed bid at ``price`` 万元, its one roster member leading, with a technical plan."""
    from evalhub.procurement import services as procurement

    return procurement.submit_bid(procurement_obj, procurement.BidInput(
        price_wan=price, team_staff_ids=[staff.id], lead_staff_id=staff.id, technical_filename="方案.docx",
        technical_data=docx_bytes(f"技术方案 {firm_user.username}")), firm_user)


def committee_clears_flags(procurement_obj, actor: User) -> None:
    """The committee decides every open collusion flag of the procurement as 不构成 (integrity's scoring gate),
    for tests whose bids are alike on purpose (equal prices for a tie)."""
    from evalhub.integrity import services as integrity
    from evalhub.integrity.models import FlagDecision

    for flag in integrity.open_flags(procurement_obj):
        integrity.decide(flag, actor, FlagDecision.NOT_COLLUSION, "测试数据中的相同报价为有意构造，不构成串通投标。")


def at_once(app, *calls) -> list[str]:
    """Run each ``call()`` in its own thread, app context and session at the same moment (two clicks at once),
    committing each; the sorted outcomes: "done", or the name of the refusal it met (a Conflict or IntegrityError
    while the other was writing, a ValidationFailed when it read what the other had committed)."""
    import threading

    import sqlalchemy as sa

    from evalhub.core.errors import Conflict, ValidationFailed

    barrier, outcomes = threading.Barrier(len(calls)), []

    def run(call):
        with app.app_context():
            barrier.wait()
            try:
                call()
                db.session.commit()
                outcomes.append("done")
            except (Conflict, ValidationFailed, sa.exc.IntegrityError) as exc:
                db.session.rollback()
                outcomes.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return sorted(outcomes)


def bid_deadline(bureau, days: int):
    """A bid deadline ``days`` days from now (UTC) that completes a minimum period of ``days``: moved on to the first
    working day when the ``days``-th day is a weekend or holiday (民法典 第二百零三条), at the same time of day. A
    test refusing a too-short period writes its deadline without it."""
    from datetime import timedelta

    from evalhub.core.calendar import roll_to_workday
    from evalhub.core.timeutil import beijing_date, utcnow

    at = utcnow() + timedelta(days=days)
    return at + (roll_to_workday(bureau, beijing_date(at)) - beijing_date(at))


CHALLENGE_PERIOD_ENDED = (2025, 2, 19)  # before every fixed signing date of the fixtures (March 2025 onwards)


def past_challenge_period(procurement_obj) -> None:
    """Fast-forward the challenge period (质疑期) of the procurement's standing result notice: back-date the
    notice to Monday 10 February 2025, its period over on 2025-02-19 (1 + 7 working days), so the fixtures'
    contracts (signed on 1 March 2025, after the period, as ``sign_contract`` requires) follow it — and within the
    30 days from the notice (政府采购法 第四十六条: due 2025-03-12), so they need no reason for a late signing."""
    from datetime import date, datetime

    from evalhub.procurement import workflow

    notice = procurement_obj.notice
    assert notice is not None, "no result notice: award the procurement first"
    notice.published_at = datetime(2025, 2, 10, 2, 0)
    notice.challenge_until = date(*CHALLENGE_PERIOD_ENDED)
    if notice.media_due_on is not None:  # its posting on the designated media was due from the same day
        from evalhub.procurement import media

        notice.media_due_on = media.result_due(procurement_obj.bureau, date(2025, 2, 10))
    db.session.flush()
    workflow.refresh_due(procurement_obj.engagement)  # the contract's date follows the notice, as at publication


@kept
def single_source(w, e=None, firm=None, bureau_key: str = "bz"):
    """The engagement's procurement by single source, approved (awarded at 18 万元, its notice published)."""
    from evalhub.procurement import services as procurement
    from evalhub.procurement.models import ProcurementMethod

    e = e or engagement(w)
    p = procurement.open_procurement(e, procurement.ProcurementInput(
        method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=(firm or w.firm).id,
        justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), getattr(w, f"{bureau_key}_staff"))
    procurement.approve_single_source(p, getattr(w, f"{bureau_key}_admin"), "18")
    return p


@kept
def returned(e, staff, fraction="0.5"):
    """A review of the engagement's pending submission under the pass mark, and the letter sent: returned."""
    from evalhub.review import services as review

    panel = own_panel(e, staff)
    review_panel(panel, fraction)
    assert panel.passed is False, panel.score
    review.send_letter(panel, staff, panel.letter)
    return panel


@kept
def losing_bidder(e, **overrides):
    """A firm of 巴州's library that bid on ``e``'s procurement and lost (its bid written directly: a fixture for the
    cases a collusion red flag opens, which name a losing bidder on the engagement)."""
    from decimal import Decimal

    from evalhub.procurement.models import Bid

    bidder = firm(e.bureau, **overrides)
    db.session.add(Bid(procurement_id=e.current_procurement.id, firm_id=bidder.id, price=Decimal("170000")))
    db.session.flush()
    return bidder


def contracted(w, firm=None, **kw):
    """An engagement contracted to ``firm`` (default the world's 巴州 firm) through single-source approval."""
    from datetime import date

    from evalhub.procurement import services as procurement

    e = engagement(w, **kw)
    staff = getattr(w, f"{kw.get('bureau_key', 'bz')}_staff")
    p = single_source(w, e, firm, kw.get("bureau_key", "bz"))
    past_challenge_period(p)
    procurement.sign_contract(e, procurement.ContractInput(
        amount_wan="18", signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1), end_date=date(2025, 12, 31),
        plan_due=date(2025, 4, 1), report_due=date(2025, 10, 31), deliverables="实施方案、评价报告"), staff)
    db.session.flush()
    return e


# --- review: walking an engagement through real submissions and panels -------------------------------
# The state machine refuses a plan approved without a decided panel, a report accepted without a passed
# outcome and a recorded result: fixtures walk the real flow (upload, draw, every expert reviews).

def docx_bytes(text: str, author: str | None = None) -> bytes:
    """A .docx of ``text``, a paragraph a line; ``author`` in its core properties (author, last modified by)."""
    import io

    import docx

    document = docx.Document()
    for line in text.splitlines():
        document.add_paragraph(line)
    if author:
        document.core_properties.author = author
        document.core_properties.last_modified_by = author
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@kept
def accepted_with_result(w, *, bureau_key="bz", unit="巴州统计局", score="85", grade=None, amount_wan="300",
                         name: str | None = None):
    """An engagement accepted with a recorded result (fixture shortcut: the real walk is ``accepted``); ``grade``
    defaults to 良."""
    from decimal import Decimal

    from evalhub.core import files
    from evalhub.procurement.models import EngagementState
    from evalhub.review.models import EvaluationResult, Grade, Submission, SubmissionKind

    grade = grade or Grade.GOOD
    e = contracted(w, bureau_key=bureau_key, unit=unit, amount_wan=amount_wan, name=name)
    stored = files.store("评价报告.docx", docx_bytes(report_text() + f"\n{e.id}"), allowed=("docx",))
    submission = Submission(engagement_id=e.id, kind=SubmissionKind.REPORT, version=1, file_id=stored.id)
    db.session.add(submission)
    db.session.flush()
    db.session.add(EvaluationResult(engagement_id=e.id, submission_id=submission.id, score=Decimal(score),
                                    band_grade=grade, grade=grade, caps=[]))
    e.state = EngagementState.ACCEPTED
    db.session.flush()
    return e


def report_text() -> str:
    from evalhub.review.services import REPORT_CHAPTERS

    return "\n".join(f"{n}、{c}\n本章内容。" for n, c in zip("一二三四五六七八", REPORT_CHAPTERS))


def report_indicators():
    from evalhub.review.services import IndicatorInput

    return [IndicatorInput("决策", "立项依据充分性", "10", "9"), IndicatorInput("过程", "资金到位率", "20", "18"),
            IndicatorInput("产出", "完成数量", "35", "33"), IndicatorInput("效益", "群众满意度", "35", "32")]


def _firm_user_of(e) -> User:
    import sqlalchemy as sa

    return db.session.execute(sa.select(User).where(User.firm_id == e.firm_id).order_by(User.id)).scalars().first()


def _staff_of(e) -> User:
    import sqlalchemy as sa

    return db.session.execute(sa.select(User).where(User.bureau_id == e.bureau_id, User.role == Role.BUREAU_STAFF)
                              .order_by(User.id)).scalars().first()


def expert_user(expert_id: int) -> User:
    """The account of an expert, created when the expert has none."""
    import sqlalchemy as sa

    found = db.session.execute(sa.select(User).where(User.expert_id == expert_id)).scalar_one_or_none()
    return found or user(f"reviewer-{expert_id}", Role.EXPERT, expert_id=expert_id)


def panel_experts(e, n: int) -> list:
    """n more experts in the engagement's bureau, of its field, with accounts (so a panel can be drawn)."""
    out = []
    for _ in range(n):
        x = expert(e.bureau, name=f"方案评审专家{next(_seq)}", employer=f"新疆某研究院{next(_seq)}", fields=[e.field])
        expert_user(x.id)
        out.append(x)
    return out


@kept
def review_panel(panel, fraction: str = "0.9", opinion: str = "总体符合要求") -> None:
    """Every drawn expert accepts (signing the declaration) and submits ``fraction`` of each item's points."""
    from decimal import Decimal

    from evalhub.review import services as R
    from evalhub.review.models import InvitationStatus, ReviewStatus

    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, expert_user(invitation.expert_id), accept=True, declaration_signed=True)
    for invitation in list(panel.invitations):
        review = invitation.review
        if invitation.status != InvitationStatus.ACCEPTED or review is None or review.status == ReviewStatus.SUBMITTED:
            continue
        member = expert_user(invitation.expert_id)
        items = review.rubric.items
        R.save_review(review, member, scores={i.id: (i.max_points * Decimal(fraction)).quantize(Decimal("0.5"))
                                              for i in items},
                      comments={i.id: f"关于{i.name}的意见" for i in items}, opinion=opinion)
        R.submit_review(review, member)


@kept
def own_panel(e, staff: User | None = None, n: int = 3):
    """Draw a panel of n reviewers created for it: the rest of the pool sits this one draw out (marked
    unavailable for the draw, then restored) and the new reviewers leave the pool once drawn, so a test's
    own panels later draw from exactly the experts the test set up."""
    import sqlalchemy as sa

    from evalhub.procurement.eligibility import library_bureau_ids
    from evalhub.registry.models import Expert
    from evalhub.review import services as R

    reviewers = panel_experts(e, n)
    others = [x for x in db.session.execute(sa.select(Expert).where(
        Expert.bureau_id.in_(library_bureau_ids(e.bureau)), Expert.available.is_(True))).scalars()
        if x not in reviewers]
    for x in others:
        x.available = False
    db.session.flush()
    panel = witnessed(R.form_panel(e, staff or _staff_of(e), size=n))
    for x in others:
        x.available = True
    for x in reviewers:
        x.available = False
    db.session.flush()
    return panel


# --- witnessed draws (issue 14): announce → witnesses' numbers → reveal ------------------------------------

def witnessed(result, **kw):
    """What a service returned, with any draw it announced witnessed and revealed (core.draws.run_witnessed):
    the handler's effect (a panel, an award, a campaign…); anything else passes through."""
    from evalhub.core import draws
    from evalhub.core.models import Draw, DrawStatus

    pending = getattr(result, "draw", None)  # a procurement whose firm lottery waits for its witnesses
    if not isinstance(result, Draw) and isinstance(pending, Draw) and pending.status == DrawStatus.ANNOUNCED:
        draws.run_witnessed(pending, **kw)
        return result
    return draws.run_witnessed(result, **kw)


def witness_pending() -> list:
    """Witness and reveal every announced draw (a replacement waits on the bureau's page until then), including
    the ones a reveal announces in turn; returns the reveals' effects."""
    from evalhub.core import draws

    effects = []
    for _ in range(20):
        record = db.session.execute(draws.pending()).scalars().first()
        if record is None:
            return effects
        effects.append(draws.run_witnessed(record))
    raise AssertionError("announced draws keep coming")


def _no_effect(record, actor):
    return None


def witnessed_draw(purpose: str, candidates, k: int, exclusions=None, *, actor: User | None = None,
                   bureau_id: int | None = None, numbers=(), witnesses=(), **kw):
    """A plain witnessed draw of the kind "test" (no effect), announced by ``actor`` and revealed."""
    from evalhub.core import draws

    draws.on_drawn("test", public=True)(_no_effect)
    record = draws.announce("test", purpose, candidates, k, exclusions, actor=actor, bureau_id=bureau_id, **kw)
    draws.run_witnessed(record, operator=actor, numbers=numbers, witnesses=witnesses)
    return record


@kept
def submit_plan(e, firm_user: User | None = None):
    """The contracted firm uploads its work plan (the upload moves the engagement: plan submitted)."""
    from evalhub.review import services as R
    from evalhub.review.models import SubmissionKind

    return R.submit(e, SubmissionKind.WORK_PLAN, "实施方案.docx", docx_bytes(WORK_PLAN_TEXT),
                    firm_user or _firm_user_of(e))


# A work plan's outline: enough text to be screened (screening.services.MIN_SCORED_CHARS), every line shorter than a
# sentence the copy features compare (textproc.MIN_COPY_CHARS), so the plans of different engagements do not count as
# copies of one another.
WORK_PLAN_TEXT = "\n".join([
    "绩效评价实施方案", "一、评价对象", "本项目的预算资金", "二、评价目的", "查明资金使用效益", "三、评价依据", "预算法及绩效办法",
    "四、评价思路", "以结果为导向评价", "五、指标体系", "决策过程产出效益", "六、评价方法", "比较法与因素分析法",
    "七、证据来源", "账簿凭证与现场核查", "八、社会调查", "受益群众满意度调查", "九、工作安排", "准备实施和报告阶段",
    "十、质量控制", "三级复核制度", "十一、人员分工", "项目负责人统筹", "十二、时间进度", "按合同约定完成",
    "十三、廉洁承诺", "遵守廉洁从业规定", "十四、成果形式", "提交绩效评价报告"])


@kept
def approve_plan(e, firm_user: User | None = None, staff: User | None = None):
    """A contracted engagement through a real work-plan review that passes: state fieldwork."""
    from evalhub.procurement.models import EngagementState

    submit_plan(e, firm_user)
    review_panel(own_panel(e, staff), "0.9")
    assert e.state == EngagementState.FIELDWORK, e.state
    return e


@kept
def in_fieldwork(w, *, firm_user: User | None = None, staff: User | None = None, lead: bool = True, **kw):
    """contracted(w, **kw) whose work plan an expert panel approved and (``lead``) whose firm named its 主评人:
    the firm may upload its report."""
    e = approve_plan(contracted(w, **kw), firm_user, staff)
    if lead:
        name_lead(e, firm_user)
    return e


def name_lead(e, firm_user: User | None = None):
    """The firm names its 主评人 (the first active person of its roster) unless one is named: a report is
    handed in under a named lead (procurement/team.py, requirement ``lead_named``)."""
    from evalhub.procurement import team

    if team.lead(e) is None:
        from evalhub.registry.services import StaffInput, add_staff

        firm_user = firm_user or _firm_user_of(e)
        staff = next((s for s in sorted(e.firm.staff, key=lambda s: s.id) if s.active), None) or add_staff(
            e.firm, StaffInput(name=f"{e.firm.name[:4]}主评人", id_number=id_number(), role="项目负责人",
                               years_experience=10), firm_user)
        team.name_team(e, team.TeamInput(lead_staff_id=staff.id), firm_user)
    return team.lead(e)


@kept
def submit_report(e, firm_user: User | None = None, *, total: str = "92", grade: str = "优", lead: bool = True):
    """The firm hands in its report (naming its 主评人 first unless ``lead=False``)."""
    from evalhub.review import services as R
    from evalhub.review.models import SubmissionKind

    if lead:
        name_lead(e, firm_user)
    return R.submit(e, SubmissionKind.REPORT, "评价报告.docx", docx_bytes(report_text()), firm_user or _firm_user_of(e),
                    indicators=report_indicators(), concluded_total=total, concluded_grade=grade)


@kept
def accept_report(e, firm_user: User | None = None, staff: User | None = None, *, fraction: str = "0.95"):
    """An engagement in fieldwork through a report review that passes: state accepted, result recorded."""
    from evalhub.procurement.models import EngagementState

    submit_report(e, firm_user)
    review_panel(own_panel(e, staff), fraction)
    assert e.state == EngagementState.ACCEPTED, e.state
    return e


@kept
def accepted(w, **kw):
    """contracted(w, **kw) walked through both reviews: state accepted."""
    return accept_report(in_fieldwork(w, **kw))


# --- results (issue 15): budget-unit accounts and findings --------------------------------------------

def unit_user(w, unit: str, username: str | None = None, *, parent: str | None = None) -> User:
    """A budget-unit account of ``w.units[unit]`` (created, if missing, under ``parent``'s bureau and below it)."""
    if unit not in w.units:
        base = w.units[parent]
        w.units[unit] = BudgetUnit(bureau_id=base.bureau_id, name=unit, parent_id=base.id)
        db.session.add(w.units[unit])
        db.session.flush()
    return user(username or f"unit{next(_seq)}", Role.BUDGET_UNIT, budget_unit_id=w.units[unit].id)


def confirmed_findings(w, e, *, n: int = 2, staff: User | None = None, deadline=None):
    """n problems entered by the engagement's firm and confirmed by its bureau (deadline: the bureau's default)."""
    from evalhub.results import services as S

    firm_user = _firm_user_of(e)
    for i in range(n):
        S.add_finding(e, firm_user, S.FindingInput(kind="问题", text=f"资金支付进度滞后，问题{i + 1}", category="过程",
                                                   indicator="资金到位率", deadline=deadline))
    return S.confirm_findings(e, staff or _staff_of(e))


# --- registry: the papers admission needs (issue 13) -------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def admission_papers(skip: tuple[FirmDocumentKind, ...] = ()) -> list:
    """One acceptable file per admission document (the licence as an image, the rules as text)."""
    return [(kind, f"{kind.label}.png", PNG) if kind == FirmDocumentKind.LICENCE
            else (kind, f"{kind.label}.txt", f"{kind.label}：本机构已建立并执行。".encode())
            for kind in registry.ADMISSION_DOCUMENTS if kind not in skip]


SIGN_INS = ("user.login", "user.login_failed")


def audit_events() -> int:
    """The audit log's events but sign-ins (``SIGN_INS``): what a test counts around an action when it signs
    people in within the count (each sign-in is an event of its own)."""
    import sqlalchemy as sa

    from evalhub.core.models import AuditEvent

    return db.session.execute(sa.select(sa.func.count(AuditEvent.id))
                              .where(AuditEvent.action.not_in(SIGN_INS))).scalar_one()
