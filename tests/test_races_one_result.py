"""Two people clicking at once get one result: the state-changing services of registry, credit, supervision and
results that checked a state they had not locked (a double click, two officers, a job and a user). Each test runs
two real threads, each with its own app context, session and connection, on PostgreSQL (SQLite serialises
writers, so the race cannot happen there): each thread first loads what its request's page showed — the stale
read — then both are released by one Barrier and act. Without the lock both passed the check and the result was
written twice (two audit events, two links, two seats); with it the second waits, reads what the first committed
and is told why, in Chinese, with a 409 (Conflict)."""
from __future__ import annotations

import threading
import time
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from evalhub.core import accounts
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import AccountLink, AuditEvent, Notification, User
from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import Expert, ExpertTie, Firm, FirmStaff, FirmStatus, FirmStatusChange, TieKind
from tests import factories
from tests.test_races import postgresql_only
from tests.test_supervision_fairness import _case, reviewed  # noqa: F401 - the fixture

pytestmark = postgresql_only  # as tests/test_races.py: simultaneous transactions need PostgreSQL's


# --- the harness -----------------------------------------------------------------------------------

def race(app, prepare, *acts) -> list[tuple[str, str]]:
    """Requests at once: one thread per act (one act given: the same request twice). Each thread, in its own app
    context: ``loaded = prepare()`` (what the request's page showed), then waits at the Barrier, then
    ``act(*loaded)`` and commits. Sorted outcomes: ("done", "") or (the refusal's class name, its message);
    anything else (a 500) fails the test."""
    acts = acts * 2 if len(acts) == 1 else acts
    barrier, outcomes, crashed = threading.Barrier(len(acts), timeout=10), [], []

    def run(act) -> None:
        with app.app_context():
            try:
                loaded = prepare()
                barrier.wait()
                act(*loaded)
                db.session.commit()
                outcomes.append(("done", ""))
            except (Conflict, ValidationFailed) as exc:
                db.session.rollback()
                outcomes.append((type(exc).__name__, exc.message))
            except IntegrityError as exc:
                db.session.rollback()
                outcomes.append(("IntegrityError", str(exc.orig)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                db.session.rollback()
                crashed.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(act,)) for act in acts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert not crashed, crashed
    return sorted(outcomes)


def both_pass(monkeypatch, module, name: str, wait: float = 0.5) -> None:
    """Make the race certain where the check is a query inside the service (not the page's stale object): each
    request, once past ``module.name``, waits up to ``wait`` seconds for the other to get there too. Unlocked,
    both get past the check before either writes; locked, the second waits on the lock, the first goes on after
    the wait, and the second follows once it commits."""
    real, met = getattr(module, name), threading.Barrier(2, timeout=wait)

    def passed(*args, **kwargs):
        result = real(*args, **kwargs)
        try:
            met.wait()
        except threading.BrokenBarrierError:
            pass
        return result

    monkeypatch.setattr(module, name, passed)


def count(model, *where) -> int:
    db.session.rollback()  # what is committed, not what this session may still hold
    return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def events(action: str) -> int:
    return count(AuditEvent, AuditEvent.action == action)


def get(model, id_):
    return db.session.get(model, id_)


# === registry =====================================================================================

def test_a_person_taken_off_the_roster_twice_at_once_leaves_once(app, world):
    """deactivate_staff checked ``staff.active`` as the page loaded it: two clicks both passed and the roster
    recorded two departures."""
    staff = registry.add_staff(world.firm, registry.StaffInput(name="钱同时", id_number=factories.id_number(),
                                                               role="评价人员", years_experience=5), world.firm_user)
    db.session.commit()
    staff_id, user_id = staff.id, world.firm_user.id

    outcomes = race(app, lambda: (get(FirmStaff, staff_id), get(User, user_id)),
                    lambda s, u: registry.deactivate_staff(s, u, "离职"))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "已不在名册中" in outcomes[0][1]
    assert events("firm.staff_removed") == 1


def test_a_firm_account_removed_twice_at_once_is_removed_once(app, world):
    """remove_firm_user checked ``target.is_enabled`` as loaded: two clicks disabled the account twice (two
    user.disabled, two firm.user_removed events)."""
    world.firm_user.is_firm_admin = True
    member = factories.user("firm1.member", Role.FIRM_USER, firm_id=world.firm.id)
    db.session.commit()
    firm_id, member_id, admin_id = world.firm.id, member.id, world.firm_user.id

    outcomes = race(app, lambda: (get(Firm, firm_id), get(User, member_id), get(User, admin_id)),
                    lambda f, m, a: registry.remove_firm_user(f, m, a, "已离职"))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "已经移除" in outcomes[0][1]
    assert events("firm.user_removed") == 1 and events("user.disabled") == 1


def test_an_experts_new_employer_saved_twice_at_once_is_one_employment(app, world):
    """update_expert compared the employer as the form loaded it: the same edit saved twice at once opened two
    employments with the new employer."""
    expert = world.expert
    data = registry.ExpertInput(name=expert.name, id_number=expert.id_number_masked, employer="新疆农业大学",
                                title=expert.title, degree=expert.degree, years_in_field=expert.years_in_field,
                                birth_year=expert.birth_year, fields=list(expert.fields))
    db.session.commit()
    expert_id, admin_id = expert.id, world.bz_admin.id

    outcomes = race(app, lambda: (get(Expert, expert_id), get(User, admin_id)),
                    lambda e, a: registry.update_expert(e, data, a))
    assert [o for o, _ in outcomes] == ["done", "done"], outcomes
    open_employments = count(ExpertTie, ExpertTie.expert_id == expert_id, ExpertTie.kind == TieKind.EMPLOYMENT,
                             ExpertTie.counterpart_name == "新疆农业大学", ExpertTie.end_date.is_(None))
    assert open_employments == 1


def test_lifting_an_imposed_suspension_sees_a_suspension_imposed_meanwhile(app, world):
    """lift_imposed_suspension read the firm's latest status change before it took the firm's lock: while another
    bureau's rating imposed a new suspension (locked, not yet committed), the lift still found its own change the
    latest, then waited, then readmitted the firm — the new suspension undone by a lift that was not its own."""
    first = registry.impose_suspension(world.firm, "甲局信用评价：故意违规")
    db.session.commit()
    firm_id, change_id = world.firm.id, first.id
    imposed = threading.Event()

    def impose(firm):
        registry.impose_suspension(firm, "乙局信用评价：故意违规")  # the firm's lock held to its commit
        imposed.set()
        time.sleep(0.4)  # the lift reads meanwhile

    def lift(firm):
        assert imposed.wait(5)
        registry.lift_imposed_suspension(firm, change_id, "甲局异议成立，故意违规不予认定")

    assert race(app, lambda: (get(Firm, firm_id),), impose, lift) == [("done", "")] * 2
    db.session.rollback()
    firm = get(Firm, firm_id)
    assert firm.status == FirmStatus.SUSPENDED, "the suspension imposed meanwhile was lifted by another's lift"
    latest = db.session.execute(sa.select(FirmStatusChange).where(FirmStatusChange.firm_id == firm_id)
                                .order_by(FirmStatusChange.id.desc()).limit(1)).scalar_one()
    assert "乙局" in latest.reason
    assert events("firm.reinstate") == 0


def _live_links(user_id: int) -> int:
    return count(AccountLink, AccountLink.user_id == user_id, AccountLink.used_at.is_(None),
                 AccountLink.revoked_at.is_(None))


def test_an_experts_link_reissued_twice_at_once_leaves_one_link_working(app, world, monkeypatch):
    """reissue_expert_link voided the unused links it could see, then issued one: two clicks at once each voided
    the old link and issued their own, and both new links worked."""
    expert = factories.expert(world.bz, name="新开通专家")
    user, _token = registry.open_expert_account(expert, world.bz_admin)
    db.session.commit()
    expert_id, admin_id, user_id = expert.id, world.bz_admin.id, user.id
    both_pass(monkeypatch, accounts, "void_links")  # each voided the links it could see before either issued

    outcomes = race(app, lambda: (get(Expert, expert_id), get(User, admin_id)),
                    lambda e, a: registry.reissue_expert_link(e, a))
    assert [o for o, _ in outcomes] == ["done", "done"], outcomes
    assert _live_links(user_id) == 1


def test_a_firms_link_reissued_twice_at_once_leaves_one_link_working(app, world, monkeypatch):
    firm = factories.firm(world.bz, name="巴州新开通评价有限公司")
    user, _token = registry.open_firm_account(firm, world.bz_admin)
    db.session.commit()
    firm_id, admin_id, user_id = firm.id, world.bz_admin.id, user.id
    both_pass(monkeypatch, accounts, "void_links")

    outcomes = race(app, lambda: (get(Firm, firm_id), get(User, admin_id)),
                    lambda f, a: registry.reissue_firm_link(f, a))
    assert [o for o, _ in outcomes] == ["done", "done"], outcomes
    assert _live_links(user_id) == 1


# === supervision ==================================================================================

def test_a_campaigns_list_and_results_published_twice_at_once_are_published_once(app, world):
    """publish_campaign_list / publish_campaign_results checked the campaign's status as loaded: two clicks each
    published it twice (two audit events). The second is now told it is published already."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import InspectionCampaign
    from tests.test_credit_supervision_services import _completed
    from tests.test_review_services import _experts

    _completed(world)
    _experts(world, 2)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    db.session.commit()
    campaign_id, staff_id = campaign.id, world.bz_staff.id

    def prepare():
        return get(InspectionCampaign, campaign_id), get(User, staff_id)

    outcomes = race(app, prepare, lambda c, u: V.publish_campaign_list(c, u))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "已经公开" in outcomes[0][1]
    assert events("campaign.list_published") == 1

    inspection = get(InspectionCampaign, campaign_id).inspections[0]
    V.record_checklist(inspection, factories.recorder(inspection), {k: (True, "") for k, _ in V.CHECKLIST})
    V.close(inspection, factories.recorder(inspection), "底稿完整，评分有据，未发现问题。")
    db.session.commit()
    outcomes = race(app, prepare, lambda c, u: V.publish_campaign_results(c, u))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "结果已经公开" in outcomes[0][1]
    assert events("campaign.results_published") == 1


def test_a_case_draw_revealed_while_the_officer_is_named_seats_the_officer_once(app, world, reviewed):
    """The reveal of a case's inspector draw read the inspection's seats without its lock: an officer named while
    the draw page was open (committed before the reveal wrote) was seated a second time by the draw — the only
    independent officer, drawn into the seat he already held. The reveal now reads the seats under the
    inspection's lock, as naming does, and draws only the seat still empty."""
    from evalhub.core import draws
    from evalhub.core.models import Draw
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Inspection, Inspector

    case = _case(world, reviewed)
    record = V.draw_case_inspectors(case, world.bz_admin)
    assert draws.eligible_ids(record) == [world.fresh.id]  # the one officer independent of the engagement
    draws.name_witnesses(record, [world.region_staff], world.bz_admin, check=False, notify=False)
    draws.enter_number(record, world.region_staff, 20261207)
    db.session.commit()
    case_id, draw_id, admin_id, fresh_id = case.id, record.id, world.bz_admin.id, world.fresh.id
    named = threading.Event()

    def prepare():  # both pages open: the case without inspectors, the draw waiting for its reveal
        inspection, draw = get(Inspection, case_id), get(Draw, draw_id)
        assert inspection.inspectors == [] and draw.witnesses
        return inspection, draw, get(User, admin_id)

    def name(inspection, _draw, admin):
        V.name_inspector(inspection, admin, user_id=fresh_id, reason="熟悉该领域")
        db.session.commit()
        named.set()

    def reveal(_inspection, draw, admin):
        assert named.wait(5)
        draws.reveal(draw, admin)

    assert race(app, prepare, name, reveal) == [("done", "")] * 2
    seats = db.session.execute(sa.select(Inspector.user_id, Inspector.expert_id).where(
        Inspector.inspection_id == case_id)).all()
    db.session.rollback()
    assert sorted(u for u, _ in seats if u) == [fresh_id], f"the officer holds {len([u for u, _ in seats if u])} seats"
    assert len([x for _, x in seats if x]) == 1


# === results ======================================================================================

def _planned_finding(world):
    """A confirmed finding of an accepted engagement, planned by its unit: (finding, the unit's account)."""
    from evalhub.procurement.models import EngagementState
    from evalhub.results import services as S

    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    [finding] = factories.confirmed_findings(world, e, n=1)
    S.submit_plan(finding, unit, "由财务科负责，9 月底前完成支付。")
    return finding, unit


def test_rectification_evidence_handed_in_twice_at_once_is_handed_in_once(app, world):
    """submit_evidence checked the row's status as the page loaded it: two hand-ins at once (two people of the
    unit, or a resend with the file chosen again) both passed, stored both files, recorded two hand-ins and told
    the bureau twice. (The very same bytes twice met stored_file's unique sha256 instead: a 409 by accident, with
    the generic words.) The second is now told the row waits on verification."""
    from evalhub.core import files
    from evalhub.results import services as S
    from evalhub.results.models import FindingEvidence, ResultFinding

    finding, unit = _planned_finding(world)
    db.session.commit()
    finding_id, unit_id, staff_id = finding.id, unit.id, world.bz_staff.id
    told = count(Notification, Notification.user_id == staff_id)  # an officer of the bureau

    def hand_in(text):
        return lambda f, u: S.submit_evidence(f, u, "已完成支付", [files.Upload("支付凭证.txt", text.encode())])

    outcomes = race(app, lambda: (get(ResultFinding, finding_id), get(User, unit_id)),
                    hand_in("支付凭证 2025-09-20 甲"), hand_in("支付凭证 2025-09-20 乙"))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "待核验" in outcomes[0][1]
    assert count(FindingEvidence, FindingEvidence.finding_id == finding_id) == 1
    assert events("finding.evidence") == 1
    assert count(Notification, Notification.user_id == staff_id) - told == 1


def test_a_rectification_verified_twice_at_once_tells_the_second_what_it_is_now(app, world):
    """verify claims the row by compare-and-set (one verdict), but the second verifier was answered with the status
    it had loaded: “该条当前状态为“待核验”，只有待核验的事项可以核验” — a refusal saying the row still waits. It
    reads the row again and names the status the first verdict left."""
    from evalhub.core import files
    from evalhub.results import services as S
    from evalhub.results.models import ResultFinding

    finding, unit = _planned_finding(world)
    S.submit_evidence(finding, unit, "已完成支付", [files.Upload("支付凭证.txt", "支付凭证 2025-09-20".encode())])
    db.session.commit()
    finding_id, staff_id = finding.id, world.bz_staff.id

    outcomes = race(app, lambda: (get(ResultFinding, finding_id), get(User, staff_id)),
                    lambda f, u: S.verify(f, u, "整改到位", ""))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "“整改到位”" in outcomes[0][1] and "“待核验”" not in outcomes[0][1], outcomes[0][1]
    assert events("finding.verified") == 1


def test_the_draft_report_sent_for_confirmation_twice_at_once_is_sent_once(app, world, monkeypatch):
    """send_for_confirmation looked for an open confirmation, then wrote one, without a lock: two sends at once
    (a resend with the draft chosen again, two of the firm's staff) sent two drafts — two rows to answer, the unit
    told twice. The second is now told the first is waiting for the unit's answer."""
    from evalhub.core import files
    from evalhub.core.calendar import ensure_national_calendar
    from evalhub.procurement.models import Engagement
    from evalhub.results import services as S
    from evalhub.results.models import FactConfirmation

    ensure_national_calendar()
    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    db.session.commit()
    e_id, firm_user_id, unit_id = e.id, world.firm_user.id, unit.id
    both_pass(monkeypatch, files, "store")  # the draft stored after the look for an open confirmation

    def send(text):
        draft = files.Upload("报告初稿.docx", factories.docx_bytes(f"评价报告初稿\n存在的问题：{text}"))
        return lambda eng, u: S.send_for_confirmation(eng, u, draft, today=date(2025, 9, 26))

    outcomes = race(app, lambda: (get(Engagement, e_id), get(User, firm_user_id)),
                    send("资金支付滞后"), send("资金支付滞后，绩效目标不细化"))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "尚在答复期内" in outcomes[0][1]
    assert count(FactConfirmation, FactConfirmation.engagement_id == e_id) == 1
    assert count(Notification, Notification.user_id == unit_id) == 1


# === the same upload submitted twice at once ======================================================

_BYTES: dict[str, bytes] = {}


def _docx(text: str) -> bytes:
    """The same text, the same bytes (a .docx written twice differs in its zip's timestamps)."""
    if text not in _BYTES:
        _BYTES[text] = factories.docx_bytes(text)
    return _BYTES[text]


def _already_stored(data: bytes, name: str) -> None:
    """The same bytes in the store before the clicks (handed in elsewhere before): ``files.store`` hands both requests
    the one row, locked in turn, rather than one of them meeting stored_file's unique sha256 by accident."""
    from evalhub.core import files

    files.store(name, data, allowed=("pdf", "docx", "txt", "png", "jpg"), actor=None)


@pytest.mark.parametrize("stored_before", [False, True], ids=["new-file", "file-in-the-store"])
def test_the_signed_report_uploaded_twice_at_once_is_recorded_once(app, world, stored_before):
    """upload_signed_report wrote a row per upload: the same signed scan sent twice at once (a double click, two of the
    unit's people) was recorded twice (two audit events) — or, the bytes new to the store, the second met
    stored_file's unique sha256 and was answered with the generic words. The second now waits on the engagement's
    lock, finds the first's row the current one and is told so."""
    from evalhub.core import files
    from evalhub.procurement.models import Engagement
    from evalhub.results import services as S
    from evalhub.results.models import RectificationReport

    e = factories.accepted(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj.race")
    factories.confirmed_findings(world, e, n=1)
    data = _docx("整改报告 已签章 同时上传")
    if stored_before:
        _already_stored(data, "整改报告（扫描）.docx")
    db.session.commit()
    e_id, unit_id = e.id, unit.id

    outcomes = race(app, lambda: (get(Engagement, e_id), get(User, unit_id)),
                    lambda eng, u: S.upload_signed_report(eng, u, files.Upload("整改报告.docx", data)))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "请勿重复提交" in outcomes[0][1]
    assert count(RectificationReport, RectificationReport.engagement_id == e_id) == 1
    assert events("rectification.signed") == 1


@pytest.mark.parametrize("stored_before", [False, True], ids=["new-file", "file-in-the-store"])
def test_a_firm_document_uploaded_twice_at_once_is_recorded_once(app, world, stored_before):
    """attach_firm_document wrote a row per upload: the same licence sent twice at once was listed twice (two audit
    events), or met stored_file's unique sha256 by accident. The second now waits on the firm's lock and is told the
    licence is on record."""
    from evalhub.registry.models import FirmDocument

    data = factories.PNG + b"licence-race"
    if stored_before:
        _already_stored(data, "营业执照（旧）.png")
    db.session.commit()
    firm_id, user_id = world.firm.id, world.firm_user.id

    outcomes = race(app, lambda: (get(Firm, firm_id), get(User, user_id)),
                    lambda f, u: registry.attach_firm_document(f, "licence", "营业执照.png", data, u))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "无需重复上传" in outcomes[0][1]
    assert count(FirmDocument, FirmDocument.firm_id == firm_id) == 1
    assert events("firm.document_added") == 1


def test_the_same_materials_list_submitted_twice_at_once_is_listed_once(app, world):
    """request_materials wrote the lines it was given: the same 资料清单 submitted twice at once (a double click, two
    of the firm's people) listed every material twice and told the unit twice. The second now waits on the
    engagement's materials lock, finds the lines owed and is told which."""
    from datetime import timedelta

    from evalhub.core.timeutil import beijing_today
    from evalhub.procurement.models import Engagement
    from evalhub.results import services as S
    from evalhub.results.models import MaterialRequest

    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj.race")
    db.session.commit()
    e_id, firm_user_id, unit_id = e.id, world.firm_user.id, unit.id
    due = beijing_today() + timedelta(days=10)

    outcomes = race(app, lambda: (get(Engagement, e_id), get(User, firm_user_id)),
                    lambda eng, u: S.request_materials(eng, u, [("项目资金拨付凭证", due, None), ("项目合同", due, None)]))
    assert [o for o, _ in outcomes] == ["Conflict", "done"], outcomes
    assert "“项目合同”" in outcomes[0][1] and "请勿重复列出" in outcomes[0][1]
    assert count(MaterialRequest, MaterialRequest.engagement_id == e_id) == 2
    assert events("materials.requested") == 1
    assert count(Notification, Notification.user_id == unit_id) == 1
