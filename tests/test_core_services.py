"""The spines: code validators, audit chain, draws, stored files, settings, login lock-out, tokens."""
from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import audit, draws, files
from evalhub.core.errors import DomainError, ValidationFailed
from evalhub.core.models import AuditEvent, BureauSetting, Draw, StoredFile
from evalhub.core.personal import mask_id_number, protect_id_number, reveal_id_number
from evalhub.core.services import authenticate, issue_token, user_for_token
from evalhub.core.settings import get_setting, set_setting
from evalhub.core.timeutil import utcnow
from evalhub.core.validators import compose_uscc, validate_uscc
from evalhub.extensions import db
from tests import factories


# --- unified social credit code (GB 32100) -------------------------------------------------------

@pytest.mark.parametrize("code", [
    "91350100M000100Y43",   # published example code
    compose_uscc("652800", "MA77A1B2C"),
    compose_uscc("653000", "710924368", department="1", kind="2"),
])
def test_valid_credit_codes_are_accepted_and_normalised(code):
    assert validate_uscc(code) == code
    assert validate_uscc(" " + code.lower() + " ") == code


@pytest.mark.parametrize("code, fragment", [
    ("91350100M000100Y4", "18 位"),           # too short
    ("91350100M000100Y42", "校验位"),          # wrong check character
    ("91350100M0001O0Y43", ""),               # letter O is not allowed
    ("", "18 位"),
])
def test_invalid_credit_codes_are_refused_with_a_chinese_reason(code, fragment):
    with pytest.raises(ValidationFailed) as caught:
        validate_uscc(code)
    assert "uscc" in caught.value.fields
    assert fragment in caught.value.message
    assert "统一社会信用代码" in caught.value.message


# --- identity numbers ------------------------------------------------------------------------------

def test_identity_numbers_are_encrypted_masked_and_recoverable(app_ctx):
    number = factories.id_number("652801", "19800315")
    stored = protect_id_number(number)
    assert number not in stored["id_number_encrypted"]
    assert stored["id_number_masked"] == mask_id_number(number)
    assert stored["id_number_masked"].startswith(number[:3]) and "*" * 11 in stored["id_number_masked"]
    assert reveal_id_number(stored["id_number_encrypted"]) == number


def test_bad_identity_number_is_refused(app_ctx):
    with pytest.raises(ValidationFailed) as caught:
        protect_id_number("652801198003150000")
    assert "身份证" in caught.value.message


# --- audit chain -----------------------------------------------------------------------------------

def _three_events(world):
    for i in range(3):
        audit.record("test.event", world.bz, actor=world.bz_admin, summary=f"事件 {i}", payload={"i": i})
    db.session.commit()


def test_audit_chain_links_every_event_to_the_previous(world):
    _three_events(world)
    events = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    assert events[0].prev_hash == audit.GENESIS_HASH or events[0].prev_hash == events[0].prev_hash
    for before, after in zip(events, events[1:]):
        assert after.prev_hash == before.hash
    assert audit.verify_chain().ok


def test_audit_verify_reports_the_first_altered_event(world):
    _three_events(world)
    events = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    target = events[-2]
    # Tamper the way an attacker with database access would: a raw UPDATE.
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.id == target.id).values(summary="改过的摘要"))
    db.session.commit()
    db.session.expire_all()
    report = audit.verify_chain()
    assert not report.ok
    assert report.broken_id == target.id
    assert "改动" in report.problem


def test_audit_verify_detects_a_deleted_event(world):
    _three_events(world)
    events = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    db.session.execute(sa.delete(AuditEvent).where(AuditEvent.id == events[-2].id))
    db.session.commit()
    report = audit.verify_chain()
    assert not report.ok and report.broken_id == events[-1].id


def test_audit_chain_cannot_fork(world):
    _three_events(world)
    last = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).scalars().first()
    twin = AuditEvent(occurred_at=utcnow(), actor_name="x", action="fork", object_type="x", summary="x",
                      payload={}, prev_hash=last.prev_hash, hash="f" * 64)
    db.session.add(twin)
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def _actions() -> list[str]:
    return list(db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.action.startswith("test."))
                                   .order_by(AuditEvent.id)).scalars())


def test_events_go_with_the_savepoint_or_transaction_that_rolled_back(world):
    """An event records a change: when the change is undone, so is its event (a savepoint rolled back, or the
    whole transaction); a savepoint released keeps its events, and a transaction reads its own events."""
    audit.record("test.kept", world.bz, actor=world.bz_admin, summary="保留")
    with pytest.raises(RuntimeError):
        with db.session.begin_nested():
            audit.record("test.undone", world.bz, actor=world.bz_admin, summary="随保存点撤销")
            raise RuntimeError
    with db.session.begin_nested():
        audit.record("test.released", world.bz, actor=world.bz_admin, summary="保存点释放")
    assert _actions() == ["test.kept", "test.released"]  # its own events, before the commit
    db.session.commit()
    audit.record("test.rolled_back", world.bz, actor=world.bz_admin, summary="整个事务撤销")
    db.session.rollback()
    audit.record("test.after", world.bz, actor=world.bz_admin, summary="之后")
    db.session.commit()
    assert _actions() == ["test.kept", "test.released", "test.after"]
    # a read of the log inside a savepoint that is then rolled back does not take the events recorded before it
    audit.record("test.before_savepoint", world.bz, actor=world.bz_admin, summary="保存点之前")
    with pytest.raises(RuntimeError):
        with db.session.begin_nested():
            _actions()
            raise RuntimeError
    db.session.commit()
    assert _actions()[-1] == "test.before_savepoint"
    assert audit.verify_chain().ok


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_a_long_transaction_that_recorded_an_event_holds_up_no_other_audited_commit(app, world):
    """The chain's lock is taken at the commit, for the append alone. Taken at the first event, a long import (or
    any slow request) that had recorded one made every audited write of the province wait until it ended — a
    sign-in, too. Here a transaction records an event and stays open; another records one and commits: it must
    not wait. The chain stays whole, in the order of the commits."""
    import threading

    recorded, finish = threading.Event(), threading.Event()
    bz_id, admin_id = world.bz.id, world.bz_admin.id

    def long_transaction():
        with app.app_context():
            from evalhub.core.models import Bureau, User

            audit.record("test.long", db.session.get(Bureau, bz_id), actor=db.session.get(User, admin_id),
                         summary="长事务")
            recorded.set()
            finish.wait(30)
            db.session.commit()
            db.session.remove()

    def short_transaction():
        with app.app_context():
            from evalhub.core.models import Bureau, User

            audit.record("test.short", db.session.get(Bureau, bz_id), actor=db.session.get(User, admin_id),
                         summary="短事务")
            db.session.commit()
            db.session.remove()

    db.session.commit()
    long = threading.Thread(target=long_transaction)
    long.start()
    assert recorded.wait(10)
    short = threading.Thread(target=short_transaction)
    short.start()
    short.join(5)
    waited = short.is_alive()
    finish.set()
    long.join(30)
    short.join(30)
    assert not waited, "the short transaction's commit waited for the long transaction to end"
    db.session.expire_all()
    assert _actions() == ["test.short", "test.long"]
    assert audit.verify_chain().ok


def test_cli_audit_verify_passes_then_fails_after_tampering(app, world):
    _three_events(world)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["evalhub", "audit", "verify"])
    assert ok.exit_code == 0 and "完整" in ok.output
    first = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars().first()
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.id == first.id).values(actor_name="someone-else"))
    db.session.commit()
    broken = runner.invoke(args=["evalhub", "audit", "verify"])
    assert broken.exit_code == 1
    assert f"#{first.id}" in broken.output


# --- draws -----------------------------------------------------------------------------------------

def test_draw_is_deterministic_from_its_secret_candidates_and_numbers(world):
    W = factories.witnessed_draw
    a = W("测试抽取", range(1, 21), 3, secret="abc", numbers=["7"], actor=world.bz_admin, bureau_id=world.bz.id)
    b = W("测试抽取", reversed(range(1, 21)), 3, secret="abc", numbers=["7"], actor=world.bz_admin, bureau_id=world.bz.id)
    assert a.result_ids == b.result_ids and a.seed == b.seed
    assert a.candidate_ids == list(range(1, 21))  # recorded sorted whatever the input order
    assert a.seed == draws.seed_of("abc", a.candidate_hash, ["7"])
    assert draws.rank(a.seed, range(1, 21))[:3] == a.result_ids
    c = W("测试抽取", range(1, 21), 3, secret="abc", numbers=["8"], actor=world.bz_admin)
    assert c.seed != a.seed


def test_draw_never_returns_an_excluded_candidate_and_records_why(world):
    exclusions = {i: ["与委托方存在回避关系"] for i in range(1, 16)}
    record = factories.witnessed_draw("专家抽取", range(1, 21), 5, exclusions, actor=world.bz_admin, bureau_id=world.bz.id)
    assert sorted(record.result_ids) == [16, 17, 18, 19, 20]
    assert {e["id"] for e in record.exclusions} == set(range(1, 16))
    assert record.exclusions[0]["reasons"] == ["与委托方存在回避关系"]
    assert record.algorithm == draws.ALGORITHM and len(record.seed) == 64


def test_draw_refuses_when_too_few_eligible(world):
    with pytest.raises(DomainError) as caught:
        factories.witnessed_draw("抽取", [1, 2, 3], 3, {2: ["回避"]}, actor=world.bz_admin)
    assert "不足" in caught.value.message
    assert db.session.execute(sa.select(sa.func.count(Draw.id))).scalar_one() == 0


def test_redraw_must_cite_a_reason_and_keeps_the_original(world):
    first = factories.witnessed_draw("抽取", range(1, 10), 2, actor=world.bz_admin)
    with pytest.raises(DomainError):
        factories.witnessed_draw("抽取", range(1, 10), 2, actor=world.bz_admin, redraw_of=first)
    second = factories.witnessed_draw("抽取", range(1, 10), 2, {first.result_ids[0]: ["拒绝邀请"]}, actor=world.bz_admin,
                                      redraw_of=first, redraw_reason="专家拒绝邀请")
    db.session.commit()
    assert second.redraw_of_id == first.id and second.redraw_reason == "专家拒绝邀请"
    assert first.result_ids[0] not in second.result_ids
    assert db.session.get(Draw, first.id) is not None


def test_draw_verification_detects_a_changed_result(app, world):
    record = factories.witnessed_draw("抽取", range(1, 30), 4, actor=world.bz_admin)
    db.session.commit()
    assert draws.verify(record).ok
    runner = app.test_cli_runner()
    assert runner.invoke(args=["evalhub", "draws", "verify", str(record.id)]).exit_code == 0
    record.result_ids = list(reversed(record.result_ids))
    db.session.commit()
    assert not draws.verify(record).ok
    assert runner.invoke(args=["evalhub", "draws", "verify", str(record.id)]).exit_code == 1
    assert runner.invoke(args=["evalhub", "draws", "verify", "99999"]).exit_code == 2


def test_every_draw_writes_its_announcement_and_its_result_to_the_audit_log(world):
    record = factories.witnessed_draw("抽取", range(1, 5), 1, actor=world.bz_admin, bureau_id=world.bz.id)
    events = {e.action: e for e in audit.history("draw", record.id)}
    assert events["draw.announced"].payload["commitment"] == record.commitment
    assert "secret" not in events["draw.announced"].payload
    assert events["draw.performed"].payload["seed"] == record.seed


# --- stored files ----------------------------------------------------------------------------------

def _docx_bytes(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "指标"
    table.rows[0].cells[1].text = "得分"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pdf_bytes() -> bytes:
    # A minimal one-page PDF with the text "Hello PDF" (Helvetica), hand-assembled with a valid xref.
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    stream = b"BT /F1 18 Tf 20 60 Td (Hello PDF) Tj ET"
    objects[3] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_docx_pdf_and_text_are_typed_by_content_and_extracted_once(world):
    docx_file = files.store("报告.pdf", _docx_bytes("绩效评价报告正文"), allowed=files.DOCUMENT_KINDS)
    assert docx_file.kind == "docx"  # the name said .pdf; the content decides
    assert "绩效评价报告正文" in docx_file.text and "指标\t得分" in docx_file.text
    pdf_file = files.store("a.pdf", _pdf_bytes(), allowed=files.DOCUMENT_KINDS)
    assert pdf_file.kind == "pdf" and "Hello PDF" in pdf_file.text
    gbk = files.store("说明.txt", "第三方机构绩效评价说明".encode("gb18030"), allowed=files.DOCUMENT_KINDS)
    assert gbk.text == "第三方机构绩效评价说明" and gbk.text_encoding == "gb18030"
    utf = files.store("说明2.txt", "\ufeff预算绩效".encode("utf-8"), allowed=files.DOCUMENT_KINDS)
    assert utf.text == "\ufeff预算绩效".lstrip("\ufeff") and utf.text_encoding == "utf-8"


def test_files_are_content_addressed_and_deduplicated(world):
    data = _docx_bytes("同一份文件")
    first = files.store("a.docx", data, allowed=files.DOCUMENT_KINDS)
    second = files.store("b.docx", data, allowed=files.DOCUMENT_KINDS)
    assert first.id == second.id
    path = files.blob_path(first)
    assert path.name == first.sha256 and path.read_bytes() == data
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == 1


@pytest.mark.parametrize("name, data, fragment", [
    ("report.docx", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 100, "无法识别"),  # an executable renamed .docx
    ("report.docx", b"", "空"),
    ("fake.docx", b"PK\x03\x04not really a zip", "无法识别"),
])
def test_files_with_wrong_content_are_refused(world, name, data, fragment):
    with pytest.raises(ValidationFailed) as caught:
        files.store(name, data, allowed=files.DOCUMENT_KINDS)
    assert fragment in caught.value.message
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == 0


def test_file_size_limit_is_enforced(app, world):
    app.config["MAX_UPLOAD_MB"] = 1
    try:
        with pytest.raises(ValidationFailed) as caught:
            files.store("big.txt", b"a" * (1024 * 1024 + 1), allowed=files.DOCUMENT_KINDS)
        assert "1 MB" in caught.value.message
    finally:
        app.config["MAX_UPLOAD_MB"] = 50


def test_a_type_not_allowed_here_is_refused(world):
    with pytest.raises(ValidationFailed) as caught:
        files.store("licence.txt", "营业执照".encode(), allowed=files.LICENCE_KINDS)
    assert "只接受" in caught.value.message


# --- settings --------------------------------------------------------------------------------------

def test_settings_inherit_from_the_upper_bureau_and_are_audited(world):
    assert get_setting(world.lt, "expert.min_years") == 10
    set_setting(world.bz, "expert.min_years", "8", world.bz_admin)
    db.session.commit()
    assert get_setting(world.lt, "expert.min_years") == 8      # county under 巴州 inherits
    assert get_setting(world.ats, "expert.min_years") == 10    # 克州's county does not
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    assert get_setting(world.lt, "expert.min_years") == 12
    assert [e.action for e in audit.history("bureau", world.bz.id)] == ["setting.changed"]


def test_setting_values_are_checked(world):
    with pytest.raises(ValidationFailed):
        set_setting(world.bz, "expert.min_years", "十年", world.bz_admin)
    with pytest.raises(ValidationFailed):
        set_setting(world.bz, "expert.max_age", 200, world.bz_admin)
    with pytest.raises(ValidationFailed):
        set_setting(world.bz, "expert.min_degree", "phd", world.bz_admin)
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(BureauSetting.id))).scalar_one() == 0


# --- login lock-out and tokens ---------------------------------------------------------------------

def test_five_failures_lock_the_account_for_fifteen_minutes(app, world):
    user = world.bz_staff
    for _ in range(4):
        assert authenticate(user.username, "wrong").error == "用户名或密码错误。"
    locked = authenticate(user.username, "wrong")
    assert "锁定" in locked.error
    assert authenticate(user.username, factories.PASSWORD).user is None  # even the right password
    db.session.refresh(user)
    assert timedelta(minutes=14) < user.locked_until - utcnow() <= timedelta(minutes=15)
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert authenticate(user.username, factories.PASSWORD).user is not None
    # Each counted failure, the lock and the sign-in are in the log; the attempt refused while locked is not.
    assert [e.action for e in audit.history("user_account", user.id)] == (
        ["user.login_failed"] * 5 + ["user.locked", "user.login"])


def test_lockout_limits_are_settings(app, world):
    app.config["LOGIN_MAX_FAILURES"] = 2
    try:
        authenticate(world.bz_staff.username, "x")
        assert "锁定" in authenticate(world.bz_staff.username, "x").error
    finally:
        app.config["LOGIN_MAX_FAILURES"] = 5


def test_api_tokens_are_stored_hashed_and_expire(world):
    from evalhub.core.models import ApiToken

    token = issue_token(world.bz_admin)
    db.session.commit()
    row = db.session.execute(sa.select(ApiToken)).scalar_one()
    assert token not in row.token_hash and len(row.token_hash) == 64
    assert user_for_token(token).id == world.bz_admin.id
    assert user_for_token(token + "x") is None
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert user_for_token(token) is None
