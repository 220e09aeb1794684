"""Issue 13 "Everyone is told": the one notification matrix (core/notifications.py MATRIX).

Each row reaches exactly its audience; every row is sent somewhere; nothing bypasses ``emit``; a firm never
reads an expert's name; the e-mail says what the inbox says, with the link; the matrix page is for admins."""
from __future__ import annotations

import ast
import string
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from evalhub.core import notifications as N
from evalhub.core.enums import Role
from evalhub.core.models import Notification, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories
from tests.kept_states import kept

SOURCE = Path(N.__file__).resolve().parent.parent  # evalhub/
SELF = Path(N.__file__).resolve()


def _fields(event: N.Event) -> dict[str, str]:
    names = {name for text in (event.title, event.body) for _, name, _, _ in string.Formatter().parse(text) if name}
    return {name: f"<{name}>" for name in names}


@pytest.fixture()
@kept
def crowd(world):
    """The world (bureaus 巴州 and 克州 with an admin and a staff member each, the system admin, two firms with a
    user each, an expert user) plus a disabled bureau user, a second and a disabled firm user, a disabled expert."""
    world.bz_disabled = factories.user("bz.disabled", Role.BUREAU_STAFF, bureau_id=world.bz.id, is_enabled=False)
    world.firm_user2 = factories.user("firm1b", Role.FIRM_USER, firm_id=world.firm.id)
    world.firm_disabled = factories.user("firm1.disabled", Role.FIRM_USER, firm_id=world.firm.id, is_enabled=False)
    world.expert_disabled = factories.user("expert.disabled", Role.EXPERT, expert_id=factories.expert(world.bz).id,
                                           is_enabled=False)
    db.session.commit()
    return world


def _recipients(link: str) -> set[str]:
    return set(db.session.execute(sa.select(User.username).join(Notification, Notification.user_id == User.id)
                                  .where(Notification.link == link)).scalars())


@pytest.mark.parametrize("key", sorted(N.MATRIX))
def test_each_row_reaches_exactly_its_audience(crowd, key):
    event = N.MATRIX[key]
    link = f"/matrix/{key}"
    named = [crowd.expert_user, crowd.expert_disabled]
    N.emit(key, link=link, bureau_id=crowd.bz.id, firm_id=crowd.firm.id, users=named, **_fields(event))
    db.session.flush()
    expected = set()
    if N.BUREAU in event.audience:  # that bureau's enabled bureau-side users: not a sub-bureau, not the platform
        expected |= {"bz.admin", "bz.staff"}
    if N.FIRM in event.audience:
        expected |= {"firm1", "firm1b"}
    if N.NAMED in event.audience:
        expected |= {"expert1"}
    assert _recipients(link) == expected
    note = db.session.execute(sa.select(Notification).where(Notification.link == link)).scalars().first()
    assert "{" not in note.title + note.body and "<" in note.title + note.body  # every field filled in


def test_every_row_has_a_chinese_label_a_known_audience_and_text(app_ctx):
    for key, event in N.MATRIX.items():
        assert event.key == key and event.label and event.title and event.body
        assert event.audience and set(event.audience) <= set(N.AUDIENCE_LABELS), key


def test_a_missing_field_is_a_programming_error_not_a_half_message(crowd):
    with pytest.raises(KeyError):
        N.emit("rating_publicised", firm_id=crowd.firm.id, year=2025)
    assert db.session.execute(sa.select(sa.func.count(Notification.id))).scalar_one() == 0


# --- the source: every row is sent, and only through emit ------------------------------------------

def _modules():
    for path in sorted(SOURCE.rglob("*.py")):
        if path.resolve() != SELF:
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _called(node: ast.Call) -> str | None:
    return node.func.id if isinstance(node.func, ast.Name) else (
        node.func.attr if isinstance(node.func, ast.Attribute) else None)


def emitted_keys() -> dict[str, list[str]]:
    """key → the modules that emit it (any string constant in emit's first argument, so that
    ``emit("bid_won" if won else "bid_lost", …)`` counts both)."""
    found: dict[str, list[str]] = {}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) == "emit" and node.args:
                for const in ast.walk(node.args[0]):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        found.setdefault(const.value, []).append(str(path.relative_to(SOURCE)))
    return found


def test_every_emitted_key_is_a_row_of_the_matrix(app_ctx):
    unknown = {k: v for k, v in emitted_keys().items() if k not in N.MATRIX}
    assert not unknown, f"emit with keys not in MATRIX: {unknown}"


def test_every_row_of_the_matrix_is_emitted_somewhere(app_ctx):
    unused = sorted(set(N.MATRIX) - set(emitted_keys()))
    assert not unused, f"MATRIX rows never emitted in evalhub/: {', '.join(unused)}"


def test_nobody_bypasses_emit(app_ctx):
    banned = {"notify", "notify_bureau", "notify_firm"}
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) in banned:
                offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno} {_called(node)}(")
            if isinstance(node, ast.ImportFrom) and node.module == "evalhub.core.notifications":
                offenders += [f"{path.relative_to(SOURCE)}:{node.lineno} import {a.name}"
                              for a in node.names if a.name in banned]
    assert not offenders, "tell people through notifications.emit only:\n" + "\n".join(offenders)


# --- the real flows: credit and supervision ---------------------------------------------------------

def _rated(world):
    from evalhub.credit import services as C
    from evalhub.procurement.models import EngagementState

    C.ensure_national_calendar()
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    db.session.flush()
    C.compute(world.bz, 2025, world.bz_admin)
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 9, 25))
    from evalhub.credit.models import CreditRating

    return db.session.execute(sa.select(CreditRating)).scalar_one()


def _inbox(user) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).scalars().all()


def _expert_names_sent_to_firms() -> list[tuple[str, str]]:
    """(name, text) for every expert's name — the expert record's and the account's — in any message a firm
    user received."""
    from evalhub.registry.models import Expert

    names = set(db.session.execute(sa.select(Expert.name)).scalars())
    names |= set(db.session.execute(sa.select(User.display_name).where(User.role == Role.EXPERT)).scalars())
    texts = db.session.execute(sa.select(Notification.title + " " + Notification.body).join(
        User, Notification.user_id == User.id).where(User.role == Role.FIRM_USER)).scalars().all()
    return [(name, text) for text in texts for name in names if name and name in text]


def test_publication_and_an_answered_objection_reach_the_firm_only(crowd, login):
    from evalhub.credit import services as C

    rating = _rated(crowd)
    titles = [n.title for n in _inbox(crowd.firm_user)]
    assert "2025 年度信用评价结果公示" in titles and "2025-10-09" in _inbox(crowd.firm_user)[-1].body
    assert not _inbox(crowd.other_firm_user) and not _inbox(crowd.firm_disabled)
    objection = C.object_to(rating, crowd.firm_user, "合同履行得分有误：方案实际按期提交。", today=date(2025, 9, 26))
    C.answer(objection, crowd.bz_admin, "异议不成立", "经核实，方案提交日期晚于合同约定，维持原评价。")
    last = _inbox(crowd.firm_user2)[-1]
    assert last.title == "2025 年度信用评价异议答复" and "异议不成立" in last.body and "维持原评价" in last.body
    assert last.link == f"/credit/ratings/{rating.id}"
    assert not [n for n in _inbox(crowd.bz_staff) if "异议答复" in n.title]
    db.session.commit()
    assert login(crowd.firm_user2).get(last.link).status_code == 200


def test_a_finding_that_needs_a_response_asks_the_firm(crowd, login):
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    e = factories.contracted(crowd)
    case = V.open_case(crowd.bz, crowd.bz_staff, trigger=Trigger.OTHER,
                       detail="群众反映的保密线索内容", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.MINOR, description="个别底稿页码缺失")
    assert not [n for n in _inbox(crowd.firm_user) if "监督检查" in n.title]  # nothing asked of the firm yet
    V.add_finding(case, factories.recorder(case), severity=Severity.GENERAL, description="工作底稿缺少访谈记录", measures=["责令整改"])
    asked = [n for n in _inbox(crowd.firm_user) if "监督检查" in n.title]
    assert len(asked) == 1 and asked[0].title.startswith(e.reference) and "工作底稿缺少访谈记录" in asked[0].body
    assert asked[0].link == f"/inspections/{case.id}" and "保密线索" not in asked[0].body
    assert not [n for n in _inbox(crowd.other_firm_user) + _inbox(crowd.bz_staff) if "监督检查" in n.title]
    db.session.commit()
    page = login(crowd.firm_user).get(asked[0].link)  # the link leads the firm to the page where it answers
    assert page.status_code == 200 and "工作底稿缺少访谈记录" in page.get_data(as_text=True)


@pytest.mark.parametrize("path", ["supervision", "credit"])
def test_a_firm_suspended_by_supervision_or_credit_is_told(crowd, path):
    """Suspension goes through registry.change_firm_status, which tells the firm (firm_suspended): a finding
    with the measure 暂停承接业务, or the credit computation putting a firm with an intentional violation on watch."""
    from evalhub.credit import services as C
    from evalhub.procurement.models import EngagementState
    from evalhub.registry.models import FirmStatus
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Measure, Severity, Trigger

    e = factories.contracted(crowd)
    e.state = EngagementState.ACCEPTED
    db.session.flush()
    case = V.open_case(crowd.bz, crowd.bz_admin, trigger=Trigger.OTHER, detail="线索", engagement=e)
    if path == "supervision":
        V.add_finding(case, factories.recorder(case), severity=Severity.SERIOUS, description="多份报告数据失实",
                      measures=[Measure.SUSPENSION])
    else:
        V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="伪造问卷数据")
        C.compute(crowd.bz, 2025, crowd.bz_admin)
    assert crowd.firm.status == FirmStatus.SUSPENDED
    told = [n for n in _inbox(crowd.firm_user2) if n.title.startswith("机构库资格变更")]
    assert len(told) == 1 and FirmStatus.SUSPENDED.label in told[0].body
    assert not [n for n in _inbox(crowd.other_firm_user) if n.title.startswith("机构库资格变更")]


def test_a_firm_never_reads_an_experts_name(crowd):
    """A report returned for rectification (the real flow): the letter and every other message to the firm
    name no expert — neither the expert record's name nor the expert account's display name."""
    from evalhub.procurement.models import EngagementState

    e = factories.in_fieldwork(crowd)
    factories.submit_report(e)
    panel = factories.own_panel(e)
    factories.review_panel(panel, "0.6", opinion="报告结构不完整，需补充分析")
    assert e.state != EngagementState.ACCEPTED and panel.passed is False
    from evalhub.review import services as R

    R.send_letter(panel, crowd.bz_staff, panel.letter)  # staff send the drafted letter as it stands
    firm_texts = [n.title + n.body for u in (crowd.firm_user, crowd.firm_user2) for n in _inbox(u)]
    assert any("退回整改" in t for t in firm_texts), firm_texts
    assert not _expert_names_sent_to_firms()


def test_a_random_inspection_asks_the_firm_without_naming_its_expert_inspector(crowd):
    from evalhub.procurement.models import EngagementState
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity

    e = factories.contracted(crowd)
    e.state = EngagementState.ACCEPTED
    db.session.flush()
    campaign = factories.witnessed(V.start_campaign(crowd.bz, 2025, crowd.bz_admin, ratio=100))
    [inspection] = campaign.inspections
    assert any(i.expert is not None for i in inspection.inspectors)  # an expert was drawn to inspect
    V.add_finding(inspection, factories.recorder(inspection), severity=Severity.SERIOUS, description="抽样记录不完整，无法支持评分")
    asked = [n for n in _inbox(crowd.firm_user) if "监督检查" in n.title]
    assert len(asked) == 1 and asked[0].title.startswith(e.reference)
    assert not _expert_names_sent_to_firms()
    # The check itself can fail: a message to the firm naming an expert is caught.
    N.emit("firm_refused", firm_id=crowd.firm.id, bureau="巴州", reason=f"经{crowd.expert.name}审核，不予入库。")
    db.session.flush()
    assert [name for name, _ in _expert_names_sent_to_firms()] == [crowd.expert.name, crowd.expert.name]


# --- e-mail ---------------------------------------------------------------------------------------

class FakeSMTP:
    sent: list = []

    def __init__(self, host, port, timeout=None):
        self.host, self.port = host, port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send_message(self, message):
        FakeSMTP.sent.append(message)


@pytest.fixture()
def smtp(app, monkeypatch):
    import smtplib

    FakeSMTP.sent = []
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.cn")
    return FakeSMTP.sent


def test_email_sends_the_same_title_and_body_with_the_absolute_link(crowd, smtp, app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://pj.czj.example.cn/")
    crowd.firm_user.email = "firm1@example.cn"
    N.emit("firm_admitted", link="/firms/7", firm_id=crowd.firm.id, bureau="巴州", reason="材料齐全。")
    db.session.flush()
    assert N.send_pending_email() == 1
    [message] = smtp
    assert message["To"] == "firm1@example.cn" and message["Subject"] == "准予入库：巴州"
    assert message.get_content().strip() == "贵机构已列入 巴州 第三方机构库。材料齐全。\n\nhttps://pj.czj.example.cn/firms/7"
    assert N.send_pending_email() == 0  # sent once


def test_email_link_falls_back_to_server_name_then_to_the_path(crowd, smtp, app, monkeypatch):
    crowd.firm_user.email = "firm1@example.cn"
    N.emit("firm_refused", link="/firms/7", firm_id=crowd.firm.id, bureau="巴州", reason="资质不符。")
    db.session.flush()
    monkeypatch.setitem(app.config, "PUBLIC_URL", None)
    monkeypatch.setitem(app.config, "SERVER_NAME", "evalhub.example.cn")
    note = _inbox(crowd.firm_user)[0]
    assert N.email_text(note).endswith("\n\nhttp://evalhub.example.cn/firms/7")
    monkeypatch.setitem(app.config, "SERVER_NAME", None)
    assert N.email_text(note) == "资质不符。\n\n/firms/7"


def test_the_sender_finds_the_unsent_messages_by_an_index_not_a_scan(crowd, smtp, app):
    """Rule (docs/architecture.md: a query over the whole history is an indexed one whose cost does not follow the
    history): the e-mail run (``send_pending_email``, every hour) selects the unsent, unread messages of the last
    three days through an index of the unsent ones (``ix_notification_unsent``), not by reading the notification
    table whole.

    Who is hurt otherwise: every user of the platform. The table keeps every message ever sent (years of reminders,
    hundreds of thousands of rows per prefecture); without the index each hourly run reads all of it to find the
    few unsent — seconds of I/O shared with every page, growing every year. The statement checked is the one the
    sender really runs (captured as it runs), on SQLite and on PostgreSQL."""
    user = crowd.firm_user
    user.email = "firm1@example.cn"
    long_ago = utcnow() - timedelta(days=400)
    db.session.execute(sa.insert(Notification), [
        {"user_id": user.id, "title": f"旧消息 {i}", "body": "", "created_at": long_ago, "read_at": long_ago,
         "emailed_at": long_ago if i % 2 else None} for i in range(4000)])
    N.emit("firm_refused", link="/firms/7", firm_id=crowd.firm.id, bureau="巴州", reason="资质不符。")
    db.session.commit()
    engine = db.engine
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM notification JOIN user_account" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        assert N.send_pending_email() == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = seen
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        for table in ("notification", "user_account"):  # the planner's statistics of what the test wrote
            conn.exec_driver_sql(f"ANALYZE {table}")
        explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        plan = "\n".join(str(row[-1] if not postgres else row[0])
                         for row in conn.exec_driver_sql(explain + statement, parameters))
    assert "ix_notification_unsent" in plan, plan
    assert "Seq Scan on notification" not in plan and "SCAN notification" not in plan, plan


def test_without_an_smtp_server_nothing_is_sent(crowd, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_SERVER", None)
    crowd.firm_user.email = "firm1@example.cn"
    N.emit("firm_refused", link="/firms/7", firm_id=crowd.firm.id, bureau="巴州", reason="资质不符。")
    assert N.send_pending_email() == 0


# --- the matrix page --------------------------------------------------------------------------------

def test_the_matrix_page_is_for_admins(crowd, login):
    for user in (crowd.sysadmin, crowd.bz_admin):
        page = login(user).get("/admin/notifications")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        for event in N.MATRIX.values():
            assert event.label in html and event.key in html
        assert N.AUDIENCE_LABELS[N.FIRM] in html
    for user in (crowd.bz_staff, crowd.firm_user, crowd.expert_user):
        assert login(user).get("/admin/notifications").status_code == 403


# --- helpers folded in for issue 10 (duplication), tested at their boundaries ------------------------

def test_check_text_bounds_a_free_text(app_ctx):
    from evalhub.core.inputs import check_text

    errors: dict[str, str] = {}
    assert check_text(errors, "t", "  十个字十个字十个字  ", short="太短", label="内容", minimum=9, maximum=9) == "十个字十个字十个字"
    assert errors == {}
    check_text(errors, "t", "八个字八个字八个", short="太短", label="内容", minimum=9)
    check_text(errors, "u", "长" * 5001, short="太短", label="答复")
    assert errors == {"t": "太短", "u": "答复不能超过 5000 个字符"}


def test_a_complaint_of_5000_characters_is_taken_and_one_more_is_refused(world):
    from evalhub.core.errors import ValidationFailed
    from evalhub.supervision import services as V

    def file(text, address):
        return V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text=text, engagement_reference=None,
                                complainant_name=None, complainant_contact=None, address=address)

    assert file("长" * 5000, "10.0.0.1").id
    with pytest.raises(ValidationFailed) as refused:
        file("长" * 5001, "10.0.0.2")
    assert refused.value.fields == {"text": "投诉事项不能超过 5000 个字符"}


def test_evidence_files_are_each_checked_and_a_refusal_names_the_set(crowd):
    from evalhub.core import files
    from evalhub.core.errors import ValidationFailed

    stored = files.store_evidence([("a.txt", "回执一".encode()), ("b.txt", "回执二".encode())], actor=crowd.firm_user)
    assert [f.original_name for f in stored] == ["a.txt", "b.txt"]
    with pytest.raises(ValidationFailed) as refused:
        files.store_evidence([("a.txt", "回执一".encode()), ("empty.txt", b"")], actor=crowd.firm_user)
    assert refused.value.message.startswith("证明材料：") and set(refused.value.fields) == {"evidence"}


def test_validation_failed_raise_if_names_every_problem(app_ctx):
    from evalhub.core.errors import ValidationFailed

    ValidationFailed.raise_if({})
    with pytest.raises(ValidationFailed) as refused:
        ValidationFailed.raise_if({"a": "请填写名称。", "b": "金额无效"})
    assert refused.value.message == "请填写名称；金额无效。" and refused.value.fields == {"a": "请填写名称。", "b": "金额无效"}


def test_the_checklist_form_refuses_a_note_without_a_result(app):
    from evalhub.core.errors import ValidationFailed
    from evalhub.supervision.forms import ChecklistForm
    from evalhub.supervision.models import CHECKLIST

    first, second = CHECKLIST[0][0], CHECKLIST[1][0]
    with app.test_request_context(method="POST", data={f"ok_{first}": "1", f"note_{first}": "齐全"}):
        assert ChecklistForm().answers() == {first: (True, "齐全")}
    with app.test_request_context(method="POST", data={f"note_{second}": "只写了说明"}):
        with pytest.raises(ValidationFailed) as refused:
            ChecklistForm().answers()
        assert set(refused.value.fields) == {f"ok_{second}"}
    with app.test_request_context(method="POST", data={}):
        with pytest.raises(ValidationFailed) as refused:
            ChecklistForm().answers()
        assert set(refused.value.fields) == {"checklist"}
