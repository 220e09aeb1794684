"""Audit of today's rules walked around through the other paths (an edit beside a create, an import beside
a form, a request racing another): each rule is meant to live in its service and hold on every path.

Each test here FAILS on the current code because of the defect its docstring names.
"""
from __future__ import annotations

import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories


def _count(model, *where) -> int:
    query = sa.select(sa.func.count()).select_from(model)
    for clause in where:
        query = query.where(clause)
    return db.session.execute(query).scalar_one()


def test_editing_a_results_finding_into_its_neighbour_makes_the_twin_add_refuses(world):
    """Rule (today, concurrency.refuse_twin): a results finding is entered once — the same kind and text on
    one engagement twice is refused 409 ("第 N 条已录入相同的问题，请勿重复提交").

    Path around it: results/services.py:edit_finding. Enter two different problems, then edit the second
    to the first's text: edit_finding re-checks the fields (_checked) but never looks for a twin, so the
    engagement holds two rows 第 1 条 and 第 2 条 with the same 问题 — exactly what add_finding refuses; once
    confirmed the unit rectifies and reports on the same problem twice. Expected: Conflict, one such row."""
    from evalhub.core.errors import Conflict
    from evalhub.results import services as S
    from evalhub.results.models import ResultFinding

    e = factories.accepted(world)
    firm_user = factories._firm_user_of(e)
    first = S.add_finding(e, firm_user, S.FindingInput(kind="问题", text="部分项目资金支付进度滞后，未按合同约定拨付。",
                                                       category="过程", indicator="资金到位率"))
    second = S.add_finding(e, firm_user, S.FindingInput(kind="问题", text="绩效目标设置不够细化，缺少量化指标。",
                                                        category="决策"))
    db.session.flush()
    refused = False
    try:
        S.edit_finding(second, firm_user, S.FindingInput(kind="问题", text=first.text, category="过程",
                                                         indicator="资金到位率"))
        db.session.flush()
    except Conflict:
        refused = True
    same = _count(ResultFinding, ResultFinding.engagement_id == e.id, ResultFinding.text == first.text)
    assert refused and same == 1, f"edit_finding made a twin: {same} rows 第 1/2 条 with the same 问题 text"


def test_drafting_findings_from_a_report_that_repeats_a_problem_imports_nothing(world, client, login):
    """Rule (today): a results finding is entered once — the second of two identical rows is the twin and is
    refused, the first stands.

    Path: the 从报告导入 button (POST /results/engagements/<id>/findings/import →
    results/services.py:draft_from_report) calls add_finding once per paragraph of the report's
    “存在的问题及原因分析” chapter. A report that states one problem twice (in its summary and again in detail
    — reports do) makes the second call raise the twin's Conflict, which aborts the whole import: the firm is
    told "第 1 条已录入相同的问题，请勿重复提交" although it pressed once and no row exists, and it cannot draft
    from the report at all. Expected: the import drafts each distinct paragraph once (here 2 rows)."""
    from evalhub.review.models import Submission, SubmissionKind
    from evalhub.results.models import ResultFinding

    e = factories.accepted(world)
    report = db.session.execute(sa.select(Submission).where(Submission.engagement_id == e.id,
                                                            Submission.kind == SubmissionKind.REPORT)
                                .order_by(Submission.version.desc())).scalars().first()
    report.file.text = "\n".join([
        "一、项目概况", "本章内容。",
        "五、存在的问题及原因分析",
        "（一）部分项目资金支付进度滞后，未按合同约定拨付。",
        "（二）绩效目标设置不够细化，缺少量化指标。",
        "（三）部分项目资金支付进度滞后，未按合同约定拨付。",
        "六、有关建议", "本章内容。",
    ])
    db.session.commit()
    login(factories._firm_user_of(e))
    response = client.post(f"/results/engagements/{e.id}/findings/import")
    db.session.rollback()
    rows = _count(ResultFinding, ResultFinding.engagement_id == e.id)
    assert rows == 2, (f"the import drafted {rows} rows (status {response.status_code}, "
                       f"{'twin refusal' if '已录入相同' in response.get_data(as_text=True) else 'other'}): "
                       "the repeated paragraph's twin refusal aborted the whole draft")


def test_a_firm_editing_its_credit_code_while_the_bureau_admits_it_changes_the_admitted_code(world):
    """Rule (today, registry/services.py:update_firm): an admitted firm cannot change its own credit code —
    the code is the legal person the bureau reviewed and admitted.

    Path around it: two people at once. The firm opens its edit form while pending and saves a new 统一社会信用
    代码 just as the bureau admits it. update_firm judges the status from the Firm it was handed — loaded by the
    firm's request before the admission committed — without locking or reading the row again, so the firm's
    UPDATE of uscc lands on a firm that is already 已入库: the bureau admitted one legal person and the library
    now lists another. (Simulated on one session: the bureau's committed admission is an UPDATE the firm's
    request has not read, as under PostgreSQL's READ COMMITTED.) Expected: the change refused (422/409) and
    the admitted code kept."""
    import dataclasses

    from evalhub.core.enums import Role
    from evalhub.core.errors import DomainError
    from evalhub.registry import services as registry
    from evalhub.registry.models import Firm, FirmStatus

    data = factories.firm_input()
    firm = registry.create_firm(data, world.bz, None)
    firm_user = factories.user(f"pendingfirm{firm.id}", Role.FIRM_USER, firm_id=firm.id)
    admitted_code = firm.uscc
    db.session.commit()
    # the firm's request has the firm in hand (pending) …
    assert firm.status == FirmStatus.PENDING
    # … when the bureau's request admits it and commits
    db.session.execute(sa.update(Firm).where(Firm.id == firm.id).values(status=FirmStatus.ADMITTED)
                       .execution_options(synchronize_session=False))
    refused = False
    try:
        registry.update_firm(firm, dataclasses.replace(data, uscc=factories.uscc()), firm_user)
        db.session.flush()
    except DomainError:
        refused = True
    db.session.expire_all()
    stored = db.session.get(Firm, firm.id)
    assert stored.status == FirmStatus.ADMITTED
    assert refused and stored.uscc == admitted_code, (
        f"the admitted firm's code changed from {admitted_code} to {stored.uscc} by the firm itself")
