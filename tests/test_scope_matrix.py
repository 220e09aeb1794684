"""Every route behind the right role and organisation scope, with the refusal proved (the scope audit).

One scene is owned by a county (轮台县, under 巴州): an engagement walked from the plan to its published report with
its panels, findings and rectification, materials, fact confirmation, an inspection, a complaint, a credit rating
with an objection and an external record, a self-evaluation, media and contract announcements, the application list.
Its contracted firm is 巴州's library firm (a county uses the libraries above it).

- Every route with an id in its path (web and ``/api/v1``, every method), filled with every id of the scene's rows,
  refuses (403 or 404) each outsider: a sibling prefecture's admin and staff (克州), a county under another
  prefecture (阿图什市), the sibling county under the same prefecture (库尔勒市), another prefecture's firm, a firm
  of the library the county uses that was not contracted, another expert, another bureau's budget unit, another
  budget unit of the same county. A page the outsider may open (库尔勒市 uses 巴州's library; the library's firms
  read the county's announced procurement in their market) names nothing else of the scene. The owners reach the same routes, so the ids are real and a leak would show.
- Every list and export without an id (and its ``?bureau_id=``/``?bureau=`` of the owner, its Excel export) names
  nothing of the scene to an outsider.
- Inside the scene, each role is refused what belongs to another role (the firm, the evaluated unit, a panel's
  expert, a bureau's staff, the bureau above: it supervises, it does not act for the county).
- The two walk-arounds the audit found: a red-flag filter naming another bureau's firm by its id, and an applicant
  firm's account reading through the API the lists its pages are closed to.
"""
from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.models import BudgetUnit, User
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from tests import factories as F

NAME = "轮台县保密评价项目"
# What identifies the scene's rows: the engagement, its reference, the self-evaluation, the case's lead, the
# complaint, the findings, the panels' experts, the external record.
SECRETS = (NAME, "652822-2025", "轮台县自评保密项目", "轮台县线索保密", "轮台县投诉保密内容", "资金支付进度滞后",
           "方案评审专家", "违反合同约定被市场监管部门处以警告")
UNIT = "轮台县医疗保障局"

OUTSIDERS = ("kz.admin", "kz.staff", "ats.admin", "krl.admin", "firm2", "bz.firm", "expert2", "kz.unit", "lt.unit2")

# 库尔勒市 uses 巴州's library, where the scene's firm is: it reads the firm, its documents and its people, and may
# try a status change (refused by the service: 422 for an empty form, 403 for a valid one — below).
LIBRARY = {("krl.admin", m, ep) for m, ep in [
    ("GET", "registry.firm_detail"), ("GET", "registry.firm_document"), ("GET", "registry.person_record"),
    ("GET", "api.get_firm"), ("GET", "api.get_firm_people"), ("GET", "api.get_person_record"),
    ("POST", "registry.firm_status"), ("POST", "api.change_firm_status")]}

# A firm of the library the county uses reads the county's announced procurement in its market (its title, the
# result notice), as anyone reads it on the public site; it may file a challenge against the result.
ANNOUNCED = {("bz.firm", m, ep) for m, ep in [
    ("GET", "procurement.procurement_detail"), ("GET", "procurement.bid"), ("POST", "procurement.bid"),
    ("GET", "api.get_procurement"), ("GET", "api.list_bids"), ("GET", "api.list_challenges"),
    ("POST", "api.create_challenge"), ("GET", "api.list_amendments")]}

# Not walked: the sign-out and token routes (they end the walker's own session or token), the draws' public page
# (a drawn panel is public once its review ended: tests/test_leaks_more.py), the static files, the public site
# (published on purpose: tests/test_leaks_public.py), and the import pages, whose only argument is a kind.
NOT_WALKED = {"core.logout", "api.create_token", "api.revoke_current_token", "api.openapi_document", "static",
              "core.draw_public", "registry.registry_import", "registry.import_template"}

# The rows each path argument names (tables by name); the firm, bureau, unit, experts and accounts are the scene's.
ARG_TABLES = {
    "engagement_id": ["engagement"], "procurement_id": ["procurement"], "inspection_id": ["inspection"],
    "plan_id": ["evaluation_plan"], "finding_id": ["result_finding"], "se_id": ["self_evaluation"],
    "review_id": ["review"], "panel_id": ["review_panel"], "draw_id": ["draw"], "submission_id": ["submission"],
    "rating_id": ["credit_rating"], "notice_id": ["result_notice", "contract_notice", "procurement_amendment"],
    "item_id": ["plan_item", "material_request"], "complaint_id": ["complaint"], "staff_id": ["firm_staff"],
    "row_id": ["fact_confirmation"], "objection_id": ["credit_objection"], "invitation_id": ["panel_invitation"],
    "challenge_id": ["challenge"], "campaign_id": ["inspection_campaign"], "screening_id": ["report_screening"],
    "model_id": ["screening_model"], "flag_id": ["red_flag", "collusion_flag"], "file_id": ["stored_file"],
    "entry_id": ["application_entry"], "bid_id": ["bid"], "token_id": ["api_token"],
    "report_id": ["rectification_report"], "relation_id": ["firm_relation"], "reference_id": ["reference_document"],
    "record_id": ["external_credit_record"], "publication_id": ["publication"], "posting_id": ["media_posting"],
    "note_id": ["notification"], "member_id": ["committee_member"], "job_id": ["job"],
    "evidence_id": ["result_finding_evidence"], "doc_id": ["firm_document"], "correction_id": ["credit_correction"],
    "checkpoint_id": ["audit_checkpoint"], "cap_id": ["result_cap"], "amendment_id": ["procurement_amendment"],
}
WORDS = {"kind": ["report", "work_plan", "result", "contract", "amendment"], "service_kind": ["key_evaluation"], "token": ["x"]}


def text_of(response) -> str:
    """A response's text: an Excel or Word file's XML parts, a JSON body as it reads (not as \\u escapes)."""
    data = response.get_data()
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                return " ".join(package.read(n).decode("utf-8", "replace") for n in package.namelist()
                                if n.endswith(".xml"))
        except zipfile.BadZipFile:
            pass
    text = data.decode("utf-8", "replace")
    if response.mimetype == "application/json":
        text += json.dumps(response.json, ensure_ascii=False)
    return text


@pytest.fixture()
def scene(world):
    from evalhub.core.enums import Role as R_
    from evalhub.credit import services as C
    from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
    from evalhub.procurement import contract_notices, media
    from evalhub.procurement.models import ProcurementAmendment
    from evalhub.registry import services as registry
    from evalhub.registry.models import FirmDocumentKind, RelationKind
    from evalhub.results import services as RS
    from evalhub.results.models import MaterialRequest, ResultFinding
    from evalhub.review import services as review
    from evalhub.supervision import services as SV
    from evalhub.supervision.models import Trigger

    today = beijing_today()
    e = F.in_fieldwork(world, bureau_key="lt", unit=UNIT, name=NAME)
    unit_user = F.unit_user(world, UNIT, "lt.unit")
    RS.request_materials(e, world.firm_user, [("2024年度资金拨付凭证", today + timedelta(days=20), None)])
    item = db.session.execute(sa.select(MaterialRequest)).scalar_one()
    RS.upload_material(item, unit_user, files.Upload("凭证.docx", F.docx_bytes("拨付凭证")))
    RS.send_for_confirmation(e, world.firm_user, files.Upload("报告初稿.docx", F.docx_bytes("评价报告初稿")))
    F.accept_report(e)
    F.confirmed_findings(world, e)
    F.unit_user(world, "克州农业农村局", "kz.unit")
    world.units["轮台县另一单位"] = sibling = BudgetUnit(bureau_id=world.lt.id, name="轮台县另一单位")
    db.session.add(sibling)
    db.session.flush()
    F.user("lt.unit2", R_.BUDGET_UNIT, budget_unit_id=sibling.id)
    F.bidder(world, "巴州另一家评价公司")  # an admitted firm of the library the county uses, not contracted
    db.session.execute(sa.update(User).where(User.username.like("u%"), User.role == R_.FIRM_USER,
                                             User.firm_id != world.firm.id).values(username="bz.firm"))
    F.user("expert2", R_.EXPERT, expert_id=F.expert(world.kz, name="克州专家甲").id)
    SV.open_case(world.lt, world.lt_admin, trigger=Trigger.OTHER, detail="轮台县线索保密", firm=world.firm, engagement=e)
    SV.file_complaint(bureau_id=world.lt.id, firm_name=world.firm.name,
                      text="轮台县投诉保密内容：该机构的评价报告大段抄袭其他地区的报告，现场核查走过场。",
                      engagement_reference=e.reference, complainant_name="匿名", complainant_contact="13900000000",
                      address="10.0.0.9")
    rating = CreditRating(bureau_id=world.lt.id, firm_id=world.firm.id, year=2025, status=RatingStatus.PUBLISHED,
                          rated=True, total=Decimal("74"), grade=CreditGrade.C, components=[],
                          objection_deadline=today + timedelta(days=10))
    db.session.add(rating)
    db.session.flush()
    RS.submit_self_evaluation(unit_user, world.units[UNIT], year=2025, name="轮台县自评保密项目",
                              upload=files.Upload("自评报告.docx", F.docx_bytes(F.report_text())))
    review.publish(e, world.lt_admin, filename="公开版.docx", data=F.docx_bytes("公开版报告"),
                   override="检查与报告公开无关，管理员决定先行公开。")
    for finding in db.session.execute(sa.select(ResultFinding)).scalars():
        RS.submit_plan(finding, unit_user, "十月底前完成资金拨付并补齐凭证。")
        RS.submit_evidence(finding, unit_user, "已完成支付", [files.Upload("支付凭证.txt", "记账凭证第 18 号".encode())])
    RS.upload_signed_report(e, unit_user, files.Upload("整改报告.docx", F.docx_bytes("整改报告")))
    C.add_external_record(world.lt, world.firm, world.lt_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                          description="违反合同约定被市场监管部门处以警告", deduction="3", filename="决定书.txt",
                          data="处罚决定书".encode())
    C.object_to(rating, world.firm_user, "合同履行得分有误：实施方案实际按期提交，附回执。", [("回执.txt", "回执".encode())])
    registry.add_relation(world.firm, kind=RelationKind.TAX_AGENT, bureau_id=None, budget_unit_id=world.units[UNIT].id,
                          start_date=today - timedelta(days=100), end_date=None, note=None, actor=world.firm_user)
    registry.attach_firm_document(world.firm, FirmDocumentKind.LICENCE, "执照.png", F.PNG, world.firm_user)
    media.record_posting(e, "result", e.procurements[0].notice.id, media.PostingInput(
        medium="ccgp", url=f"http://www.ccgp.gov.cn/cggg/dfgg/zbgg/t{today:%Y%m%d}_1.htm", posted_on=today,
        note="测试数据补录，原公告已按期在指定媒体发布。"), world.lt_staff)
    # a 澄清/更正公告 of its procurement with a file (a row: the procurement was awarded without a bid period to amend)
    p0 = e.procurements[0]
    upload = files.store("更正附件.docx", F.docx_bytes("轮台县更正附件"), allowed=("docx",), actor=world.lt_staff)
    db.session.add(ProcurementAmendment(procurement_id=p0.id, number=1, text="评分标准第 2 项分值更正。", affects_bids=True,
                                        deadline_before=p0.created_at, deadline_after=p0.created_at,
                                        uploaded_file_id=upload.id, public_file_id=upload.id,
                                        published_by_id=world.lt_staff.id))
    contract_notices.publish_notice(e, contract_notices.NoticeInput(
        services="实施方案、评价报告", filename="合同公开版.docx", data=F.docx_bytes("合同"),
        late_reason="测试数据补录，合同公告此前已以纸质方式公示。"), world.lt_staff)
    RS.build_list(world.lt, e.year, world.lt_admin)
    db.session.commit()
    return e


def _user(name: str) -> User:
    return db.session.execute(sa.select(User).where(User.username == name)).scalar_one()


def _ids(world, arg: str) -> list:
    from evalhub.registry.models import Expert

    if arg == "firm_id":
        return [world.firm.id]
    if arg == "bureau_id":
        return [world.lt.id]
    if arg == "unit_id":
        return [world.units[UNIT].id]
    if arg == "expert_id":  # the county's pool: the panels' experts
        return list(db.session.execute(sa.select(Expert.id).where(Expert.bureau_id == world.lt.id).limit(2)).scalars())
    if arg == "staff_id":  # the contracted firm's people
        from evalhub.registry.models import FirmStaff

        return list(db.session.execute(sa.select(FirmStaff.id).where(FirmStaff.firm_id == world.firm.id)).scalars())
    if arg == "user_id":
        return list(db.session.execute(sa.select(User.id).where(
            User.username.in_(["lt.staff", "lt.unit", "firm1"]))).scalars())
    if arg in WORDS:
        return WORDS[arg]
    tables = db.metadata.tables
    ids = [i for name in ARG_TABLES[arg] if name in tables
           for i in db.session.execute(sa.select(tables[name].c.id)).scalars()]
    return ids or [2**31 - 1]


def _routes_with_ids(app, world) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every route with an id in its path, once per combination of the scene's ids."""
    walked = []
    for rule in app.url_map.iter_rules():
        names = sorted(set(rule.arguments) - set(rule.defaults or {}))
        if not names or rule.endpoint in NOT_WALKED or rule.endpoint.startswith("public."):
            continue
        unknown = set(names) - set(ARG_TABLES) - set(WORDS) - {"firm_id", "bureau_id", "unit_id", "expert_id", "user_id"}
        assert not unknown, f"{rule.rule}: name the rows of {unknown} in ARG_TABLES"
        for values in itertools.product(*(_ids(world, n) for n in names)):
            path = rule.rule
            for name, value in zip(names, values):
                path = re.sub(rf"<(?:[a-z]+:)?{name}>", str(value), path)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                walked.append((rule.endpoint, method, path))
    return walked


def _ask(client, headers: dict, method: str, path: str):
    if path.startswith("/api/"):
        return client.open(path, method=method, headers=headers, **({} if method == "GET" else {"json": {}}))
    return client.open(path, method=method)


def test_no_route_with_an_id_answers_an_outsider_about_another_bureaus_rows(app, client, login, auth, world, scene):
    auth("lt.staff")  # an API token of the county's: a token id to walk
    walked = _routes_with_ids(app, world)
    assert len({ep for ep, _m, _p in walked}) > 190
    answered: list = []
    for name in OUTSIDERS:
        login(_user(name))
        headers = auth(name)
        for endpoint, method, path in walked:
            response = _ask(client, headers, method, path)
            if (name, method, endpoint) in ANNOUNCED:
                continue
            if response.status_code == 200 and [s for s in SECRETS if s in text_of(response)]:
                answered.append((name, method, path, "names the scene"))
            elif response.status_code not in (403, 404) and (name, method, endpoint) not in LIBRARY:
                answered.append((name, method, path, response.status_code))
    assert not answered, answered
    # the ids were the scene's: its own people reach the same routes
    reached = set()
    for name in ("lt.admin", "lt.staff", "firm1", "lt.unit"):
        login(_user(name))
        headers = auth(name)
        reached |= {ep for ep, method, path in walked
                    if method == "GET" and _ask(client, headers, method, path).status_code == 200}
    assert {"procurement.engagement_detail", "api.get_engagement", "review.submission_file", "results.material_file",
            "results.signed_file", "results.evidence_file", "results.fact_draft", "results.self_evaluation_file",
            "credit.external_file", "credit.objection_file", "credit.rating_detail", "supervision.inspection_detail",
            "supervision.complaint_detail", "review.panel_detail", "review.engagement_reviews_export",
            "review.publication_upload", "procurement.contract_notice_upload", "results.findings", "api.get_inspection",
            "procurement.amendment_upload", "api.list_amendments",
            "api.results_list_findings", "registry.firm_document", "core.draw_detail"} <= reached, reached


def test_a_status_change_of_a_library_firm_is_refused_to_the_county_using_the_library(client, login, auth, world, scene):
    """库尔勒市 reads 巴州's firm (LIBRARY above); changing its status is 巴州's: 403 for a valid request too."""
    login(world.krl_admin)
    assert client.post(f"/firms/{world.firm.id}/status", data={"action": "suspend", "reason": "检查发现问题"}).status_code == 403
    response = client.post(f"/api/v1/firms/{world.firm.id}/status", headers=auth("krl.admin"),
                           json={"action": "suspend", "reason": "检查发现严重问题，暂停参与评价"})
    assert response.status_code == 403, response.get_data(as_text=True)


# The web lists filter by bureau id (``bureau`` or ``bureau_id``), the API's by region code (``bureau``).
LIST_QUERIES = ("", "?bureau_id={lt}&bureau={lt}&year=2025&per_page=200", "?bureau=652822&per_page=200", "?export=xlsx",
                "?bureau_id={lt}&bureau={lt}&export=xlsx", "?bureau=652822&export=xlsx", "?firm_id={firm}&firm={firm}")


def test_no_list_or_export_names_another_bureaus_rows(app, client, login, auth, world, scene):
    rules = [r for r in app.url_map.iter_rules()
             if "GET" in r.methods and not set(r.arguments) - set(r.defaults or {}) and r.endpoint not in NOT_WALKED
             and not r.endpoint.startswith("public.") and not r.rule.startswith("/api/v1/public/")]
    assert len(rules) > 60
    found = []
    for name in ("kz.admin", "ats.admin", "krl.admin", "firm2", "kz.unit", "expert2", "lt.unit2"):
        login(_user(name))
        headers = auth(name)
        for rule in rules:
            for query in LIST_QUERIES:
                path = rule.rule + query.format(lt=world.lt.id, firm=world.firm.id)
                response = client.get(path, headers=headers) if path.startswith("/api/") else client.get(path)
                assert response.status_code < 500, (name, path)
                hits = [s for s in SECRETS if s in text_of(response)]
                if hits:
                    found.append((name, path, hits))
    assert not found, found
    # the same lists name the scene to its own bureau and to the one above (the probe can see)
    login(world.bz_staff)
    assert scene.reference in text_of(client.get("/engagements?export=xlsx"))
    assert scene.reference in text_of(client.get(f"/engagements?bureau_id={world.lt.id}"))


# --- inside the scene: each role refused what belongs to another ----------------------------------------------

def _refs(world, e) -> dict:
    from evalhub.credit.models import CreditRating
    from evalhub.procurement.models import EvaluationPlan
    from evalhub.results.models import RectificationReport, ResultFinding
    from evalhub.review.models import PanelInvitation, Review, ReviewPanel, SelfEvaluation, Submission, SubmissionKind
    from evalhub.screening.models import ReportScreening
    from evalhub.supervision.models import Complaint, Inspection

    def first(stmt):
        return db.session.execute(stmt).scalars().first()

    plan_panel = first(sa.select(ReviewPanel).join(Submission, Submission.id == ReviewPanel.submission_id)
                       .where(Submission.kind == SubmissionKind.WORK_PLAN))
    member = first(sa.select(PanelInvitation).where(PanelInvitation.panel_id == plan_panel.id))
    return {
        "e": e.id, "p": e.procurements[0].id, "plan": first(sa.select(EvaluationPlan.id)), "lt": world.lt.id,
        "panel": plan_panel.id, "report_panel": first(sa.select(ReviewPanel.id).where(ReviewPanel.id != plan_panel.id)),
        "report": first(sa.select(Submission.id).where(Submission.kind == SubmissionKind.REPORT)),
        "own_review": member.review.id, "other_review": first(sa.select(Review.id).where(Review.id != member.review.id)),
        "finding": first(sa.select(ResultFinding.id)), "se": first(sa.select(SelfEvaluation.id)),
        "inspection": first(sa.select(Inspection.id)), "complaint": first(sa.select(Complaint.id)),
        "rating": first(sa.select(CreditRating.id)), "signed": first(sa.select(RectificationReport.id)),
        "screening": first(sa.select(ReportScreening.id)), "expert_user": member.expert_id,
        "lt_expert": member.expert_id, "contract_notice": e.contract.notice.id, "today": beijing_today().isoformat(),
    }


# (who, method, path): what the scene's own people may not do. "reviewer" is an expert of the work plan's panel.
WRONG_ROLE = [
    # the contracted firm: the bureau's working pages of its own engagement
    ("firm1", "GET", "/reviews/panels/{panel}"), ("firm1", "GET", "/engagements/{e}/reviews.xlsx"),
    ("firm1", "GET", "/engagements/{e}/result"), ("firm1", "GET", "/screening/{screening}"),
    ("firm1", "GET", "/engagements/{e}/publication/upload"), ("firm1", "GET", "/engagements/{e}/contract/notice/upload"),
    ("firm1", "GET", "/results/self-evaluations/{se}"), ("firm1", "GET", "/complaints/{complaint}"),
    ("firm1", "GET", "/plans/{plan}"), ("firm1", "GET", "/api/v1/plans/{plan}"), ("firm1", "GET", "/bureaus/{lt}"),
    ("firm1", "GET", "/results/rectification/{signed}"), ("firm1", "GET", "/api/v1/reviews/{own_review}"),
    ("firm1", "POST", "/results/engagements/{e}/findings/confirm"), ("firm1", "POST", "/results/findings/{finding}/verify"),
    ("firm1", "POST", "/api/v1/results/findings/{finding}/verify"), ("firm1", "POST", "/engagements/{e}/panel"),
    ("firm1", "GET", "/api/v1/procurements/{p}/integrity"), ("firm1", "POST", "/api/v1/results/application/build"),
    # the evaluated unit: the engagement's bureau and firm pages
    ("lt.unit", "GET", "/engagements/{e}"), ("lt.unit", "GET", "/api/v1/engagements/{e}"),
    ("lt.unit", "GET", "/submissions/{report}/file"), ("lt.unit", "GET", "/reviews/panels/{panel}"),
    ("lt.unit", "GET", "/inspections/{inspection}"), ("lt.unit", "GET", "/credit/ratings/{rating}"),
    ("lt.unit", "GET", "/api/v1/engagements/{e}/submissions"), ("lt.unit", "POST", "/results/engagements/{e}/findings"),
    ("lt.unit", "POST", "/results/findings/{finding}/verify"), ("lt.unit", "GET", "/api/v1/inspections/{inspection}"),
    # an expert of the work plan's panel: nothing of the engagement beyond that review
    ("reviewer", "GET", "/engagements/{e}"), ("reviewer", "GET", "/api/v1/engagements/{e}"),
    ("reviewer", "GET", "/submissions/{report}"), ("reviewer", "GET", "/submissions/{report}/file"),
    ("reviewer", "GET", "/reviews/{other_review}"), ("reviewer", "GET", "/api/v1/reviews/{other_review}"),
    ("reviewer", "GET", "/reviews/panels/{panel}"), ("reviewer", "GET", "/results/engagements/{e}/findings"),
    ("reviewer", "GET", "/inspections/{inspection}"), ("reviewer", "GET", "/credit/ratings/{rating}"),
    ("reviewer", "GET", "/engagements/{e}/reviews.xlsx"),
    # the county's staff: its administrator's acts
    ("lt.staff", "POST", "/plans/{plan}/approve"), ("lt.staff", "POST", "/api/v1/plans/{plan}/approve"),
    ("lt.staff", "GET", "/bureaus/{lt}/settings"), ("lt.staff", "GET", "/audit"), ("lt.staff", "POST", "/credit/publish"),
    ("lt.staff", "POST", "/credit/finalise"), ("lt.staff", "GET", "/users"),
    # the prefecture above: it supervises, it does not act for the county
    ("bz.admin", "POST", "/engagements/{e}/panel"), ("bz.admin", "POST", "/results/engagements/{e}/findings/confirm"),
    ("bz.admin", "POST", "/api/v1/results/findings/{finding}/verify"),
    ("bz.admin", "POST", "/experts/{lt_expert}/status"), ("bz.admin", "POST", "/api/v1/engagements/{e}/contract-notice"),
    ("bz.admin", "POST", "/api/v1/engagements/{e}/media-postings"), ("bz.admin", "POST", "/plans/{plan}/approve"),
    ("bz.admin", "POST", "/complaints/{complaint}/case"), ("bz.admin", "POST", "/results/application/build"),
    ("bz.admin", "POST", "/api/v1/results/application/build?bureau=652822&year=2025"),
]

# Bodies a form or the API would accept, so that a refusal is the permission's, not the input's.
BODIES = {
    "/experts/{lt_expert}/status": {"action": "suspend", "reason": "检查发现问题"},
    "/api/v1/engagements/{e}/media-postings": {"notice_kind": "contract", "notice_id": "{contract_notice}",
                                               "medium": "ccgp", "posted_on": "{today}",
                                               "url": "http://www.ccgp.gov.cn/cggg/dfgg/htgg/t20250301_1.htm"},
    "/api/v1/engagements/{e}/contract-notice": ("multipart", {"services": "实施方案、评价报告"}),
    "/api/v1/results/findings/{finding}/verify": {"verification": "done", "note": "已核验"},
    "/results/findings/{finding}/verify": {"verification": "done", "note": "已核验"},
    "/complaints/{complaint}/case": {"detail": "依据投诉立案检查"},
    "/results/application/build": {"bureau": "652822", "year": "2025"},
    "/plans/{plan}/approve": {"warnings_reason": "已核对"},
    "/results/engagements/{e}/findings": {"kind": "问题", "text": "资金支付进度滞后", "category": "过程"},
}


def test_each_role_of_the_scene_is_refused_what_belongs_to_another(client, login, auth, world, scene):
    refs = _refs(world, scene)
    reviewer = F.expert_user(refs["expert_user"])
    db.session.commit()
    users = {"reviewer": reviewer}
    allowed = []
    for who, method, template in WRONG_ROLE:
        user = users.get(who) or _user(who)
        login(user)
        path = template.format(**refs)
        body = BODIES.get(template, {})
        if isinstance(body, tuple):  # a multipart form of the API
            response = client.open(path, method=method, headers=auth(user.username), data=body[1],
                                   content_type="multipart/form-data")
        elif path.startswith("/api/"):
            body = {k: (int(v.format(**refs)) if v.startswith("{") and k.endswith("_id") else v.format(**refs))
                    if isinstance(v, str) else v for k, v in body.items()}
            response = client.open(path, method=method, headers=auth(user.username),
                                   **({} if method == "GET" else {"json": body}))
        else:
            response = client.open(path, method=method, **({} if method == "GET" else {"data": body}))
        if response.status_code not in (403, 404):
            allowed.append((who, method, path, response.status_code))
    assert not allowed, allowed


# --- the walk-arounds found -------------------------------------------------------------------------------------

def test_the_red_flag_page_names_no_firm_the_reader_may_not_see_by_its_id(client, login, world):
    """The red-flag page's ``?firm=`` filter named any firm by its id in its heading: 克州 (or 库尔勒市, which uses only
    巴州's admitted library) read the name of an applicant to 巴州's library — an application is that bureau's
    business only (registry/permissions.py). The page refuses the filter as it refuses a bureau out of scope."""
    from evalhub.registry.models import FirmStatus

    applicant = F.firm(world.bz, FirmStatus.PENDING, name="巴州待审申请机构甲")
    db.session.commit()
    for reader in (world.kz_staff, world.krl_staff, world.ats_admin):
        login(reader)
        response = client.get(f"/integrity/red-flags?firm={applicant.id}")
        assert response.status_code in (403, 404), (reader.username, response.status_code)
        assert applicant.name not in response.get_data(as_text=True)
    login(world.bz_staff)  # its own bureau filters by it
    response = client.get(f"/integrity/red-flags?firm={applicant.id}")
    assert response.status_code == 200 and applicant.name in response.get_data(as_text=True)
    login(world.krl_staff)  # an admitted firm of the library above is the county's to read
    assert world.firm.name in client.get(f"/integrity/red-flags?firm={world.firm.id}").get_data(as_text=True)


def test_an_applicant_firms_account_reads_no_ratings_or_inspections_through_the_api(client, login, auth, world):
    """Until the bureau admits a firm (again), its accounts serve the application only — "no procurement notices,
    bids, tasks, credit or API work" (registry/permissions.py): its pages /credit/mine and /inspections answer 403.
    The API's lists of ratings and inspections checked no action, so a firm removed from the library that applied
    again (重新申请入库: pending) still read its ratings and the bureaus' cases through the API."""
    from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
    from evalhub.registry import services as registry
    from evalhub.supervision import services as SV
    from evalhub.supervision.models import Trigger

    db.session.add(CreditRating(bureau_id=world.bz.id, firm_id=world.firm.id, year=2025, status=RatingStatus.PUBLISHED,
                                rated=True, total=Decimal("74"), grade=CreditGrade.C, components=[],
                                objection_deadline=beijing_today() + timedelta(days=10)))
    SV.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="巴州检查线索", firm=world.firm)
    db.session.commit()
    headers = auth("firm1")
    for url in ("/api/v1/ratings", "/api/v1/inspections"):  # admitted: the firm's own
        response = client.get(url, headers=headers)
        assert response.status_code == 200 and response.json["items"], url
    registry.change_firm_status(world.firm, "remove", world.bz_admin, reason="连续两年信用评价为 D 级")
    registry.change_firm_status(world.firm, "reapply", world.firm_user)
    db.session.commit()
    login(world.firm_user)
    for url in ("/credit/mine", "/inspections"):
        assert client.get(url).status_code == 403, url
    for url in ("/api/v1/ratings", "/api/v1/inspections"):
        response = client.get(url, headers=headers)
        assert response.status_code == 403, (url, response.status_code, response.get_data(as_text=True)[:200])
    assert client.get(f"/api/v1/firms/{world.firm.id}", headers=headers).status_code == 200  # its application
