"""Benchmark: the annual credit rating of one prefecture's whole firm library.

Builds a FRESH database (an SQLite file in a temporary directory unless ``--database-url`` names another,
e.g. an empty PostgreSQL database), creates the schema with ``db.create_all()``, and inserts — directly, in
bulk, bypassing the services — 500 firms in 巴州's library with 10 years of engagements (several per firm
per year, at the prefecture and its two counties): plans, procurements, awards and contracts, work plans
and reports (some late, some needing a second round), first-round and later review panels with scores,
commissioner ratings, complaints (some substantiated), random and targeted inspections with findings, and
a few external credit records. Then it times ``evalhub.credit.services.compute(bureau, year, None)`` for
one year over all firms and prints the firms rated, seconds, firms per second, the number of SQL
statements, and the peak memory (tracemalloc peak of a second, traced run, and the process's max RSS).

    .venv/bin/python bench/credit_rating.py
    createdb -h 127.0.0.1 -U postgres evalhub_bench
    .venv/bin/python bench/credit_rating.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/evalhub_bench

The target is 500 firms in under 5 s. ``--profile`` prints the top of a cProfile of one more run. Every
run is rolled back, so repeated runs measure the same work; the generated data stays in the database
(the temporary SQLite file is removed at exit unless ``--keep``). A database that already has tables is
refused (use a fresh one, or ``--reset`` to drop evalhub's tables first).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

TARGET_SECONDS = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="an EMPTY database (default: SQLite file in a temporary directory)")
    parser.add_argument("--reset", action="store_true", help="drop evalhub's tables in --database-url first")
    parser.add_argument("--firms", type=int, default=500)
    parser.add_argument("--years", type=int, default=10, help="years of engagements, ending with --year")
    parser.add_argument("--year", type=int, default=2025, help="the year rated")
    parser.add_argument("--min-per-year", type=int, default=2, help="fewest engagements per firm per year")
    parser.add_argument("--max-per-year", type=int, default=4, help="most engagements per firm per year")
    parser.add_argument("--seed", type=int, default=20251)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (each rolled back); the median is reported")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the traced run")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one more run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file")
    return parser.parse_args()


# --- the data --------------------------------------------------------------------------------------

def generate(args: argparse.Namespace) -> dict:
    """Insert the data set with bulk INSERTs (explicit ids, so no round trip per row). Returns counts."""
    from evalhub.core.enums import BureauLevel, Field
    from evalhub.core.models import Bureau, BudgetUnit, Draw, StoredFile
    from evalhub.credit.models import ExternalCreditRecord, ExternalRecordKind
    from evalhub.extensions import db
    from evalhub.procurement import workflow
    from evalhub.procurement.models import (
        Award, BudgetKind, Contract, Engagement, EngagementState as S, EvaluationPlan, ObjectType, PlanItem,
        PlanStatus, Procurement, ProcurementMethod, ProcurementStatus, ServiceKind,
    )
    from evalhub.registry.models import Firm, FirmKind, FirmStatus, LegalForm
    from evalhub.review.models import (
        CommissionerRating, PanelStatus, ReviewPanel, Rubric, RubricKind, Submission, SubmissionKind,
    )
    from evalhub.supervision.models import (
        CampaignStatus, Complaint, ComplaintStatus, Finding, Inspection, InspectionCampaign, InspectionStatus,
        Severity, Trigger,
    )

    rng = random.Random(args.seed)
    now = datetime(args.year + 1, 3, 1, 8, 0)
    rows: dict[type, list[dict]] = {}

    def add(model: type, **values) -> int:
        table = rows.setdefault(model, [])
        values.setdefault("id", len(table) + 1)
        table.append(values)
        return values["id"]

    # bureaus: the region, the prefecture (巴州) whose library is rated, its two counties
    region = add(Bureau, code="650000", name="新疆维吾尔自治区财政厅", short_name="自治区", level=BureauLevel.REGION,
                 parent_id=None, path="650000/")
    bz = add(Bureau, code="652800", name="巴音郭楞蒙古自治州财政局", short_name="巴州", level=BureauLevel.PREFECTURE,
             parent_id=region, path="650000/652800/")
    krl = add(Bureau, code="652801", name="库尔勒市财政局", short_name="库尔勒市", level=BureauLevel.COUNTY,
              parent_id=bz, path="650000/652800/652801/")
    lt = add(Bureau, code="652822", name="轮台县财政局", short_name="轮台县", level=BureauLevel.COUNTY,
             parent_id=bz, path="650000/652800/652822/")
    bureau_codes = {bz: "652800", krl: "652801", lt: "652822"}
    bureaus = [bz] * 3 + [krl, lt]  # the prefecture commissions most of the work
    units = {b: [add(BudgetUnit, bureau_id=b, name=f"{bureau_codes[b]} 预算单位 {i + 1}") for i in range(20)]
             for b in bureau_codes}

    stored = add(StoredFile, sha256="0" * 64, size=1024, content_type="application/pdf", kind="pdf",
                 original_name="报告.pdf", text=None, created_at=now)
    draw = add(Draw, purpose="基准数据：共用的抽取记录", context_type=None, context_id=None, bureau_id=bz,
               candidate_ids=[1, 2, 3], exclusions=[], k=1, seed="0" * 64, algorithm="bench", result_ids=[1],
               created_at=now)
    report_rubric = add(Rubric, bureau_id=None, kind=RubricKind.REPORT, version=1, title="评价报告评审评分表",
                        is_current=True, created_at=now)
    commissioner_rubric = add(Rubric, bureau_id=None, kind=RubricKind.COMMISSIONER, version=1, title="委托方评价表",
                              is_current=True, created_at=now)

    firms = []
    for n in range(1, args.firms + 1):
        firms.append(add(Firm, name=f"巴州基准评价咨询有限公司{n:04d}", uscc=f"91652800MA{n:07d}X",
                         legal_form=LegalForm.LIMITED_COMPANY, kind=FirmKind.CONSULTANCY,
                         address="新疆库尔勒市人民东路 1 号", legal_representative="张三", contact_name="李四",
                         contact_phone="0996-2000000", declares_no_major_violation=True, bureau_id=bz,
                         status=FirmStatus.ADMITTED, status_since=now, applied_at=now, admitted_at=now))

    years = list(range(args.year - args.years + 1, args.year + 1))
    plans = {(b, y): add(EvaluationPlan, bureau_id=b, year=y, status=PlanStatus.APPROVED, created_at=now)
             for b in bureau_codes for y in years}
    completed_states = [S.ACCEPTED, S.PUBLISHED, S.ARCHIVED]
    unfinished_states = [S.FIELDWORK, S.REPORT_IN_REVIEW, S.REPORT_RETURNED, S.CANCELLED]
    serial = {}

    def panel(engagement_id: int, bureau_id: int, kind, round_: int, submission_id: int, decided: datetime,
              score: Decimal, passed: bool) -> int:
        return add(ReviewPanel, engagement_id=engagement_id, submission_id=submission_id, bureau_id=bureau_id,
                   kind=kind, round=round_, size=3, rubric_id=report_rubric, status=PanelStatus.CLOSED, draw_id=draw,
                   review_due=decided, score=score, spread=Decimal(rng.randint(0, 15)), spread_flagged=False,
                   passed=passed, pass_mark=Decimal("80"), decided_at=decided, created_at=decided - timedelta(days=10))

    completed_engagements: list[tuple[int, int, int, int, str]] = []  # (id, bureau, firm, year, reference)
    for firm_id in firms:
        for year in years:
            for _ in range(rng.randint(args.min_per_year, args.max_per_year)):
                b = rng.choice(bureaus)
                serial[(b, year)] = serial.get((b, year), 0) + 1
                reference = f"{bureau_codes[b]}-{year}-{serial[(b, year)]:05d}"
                unit = rng.choice(units[b])
                amount = Decimal(rng.randint(50, 2000)) * 10000
                item = add(PlanItem, plan_id=plans[(b, year)], position=serial[(b, year)], name=f"{reference} 项目支出绩效评价",
                           object_type=ObjectType.PROJECT, budget_kind=BudgetKind.GENERAL, field=Field.FINANCE,
                           service_kind=ServiceKind.KEY_EVALUATION, amount=amount, budget_unit_id=unit,
                           commissioner_unit_id=None, reason="资金量大、社会关注度高")
                # most of the older work is finished; the rated year still has some in progress
                done_share = 0.80 if year == args.year else 0.95
                state = rng.choice(completed_states) if rng.random() < done_share else rng.choice(unfinished_states)
                signed = date(year, 3, 1) + timedelta(days=rng.randint(0, 60))
                plan_due, report_due = signed + timedelta(days=30), signed + timedelta(days=200)
                engagement = add(Engagement, plan_item_id=item, bureau_id=b, year=year, reference=reference,
                                 name=f"{reference} 项目支出绩效评价", service_kind=ServiceKind.KEY_EVALUATION,
                                 field=Field.FINANCE, amount=amount, budget_unit_id=unit, commissioner_unit_id=None,
                                 state=state, state_changed_at=now, firm_id=firm_id, created_at=datetime(year, 1, 10),
                                 due_on=workflow.due_date(state, plan_due, report_due))
                procurement = add(Procurement, engagement_id=engagement, bureau_id=b,
                                  method=ProcurementMethod.RANDOM_DRAW, status=ProcurementStatus.AWARDED,
                                  title=f"{reference} 第三方评价机构选聘", ceiling_price=Decimal("200000"),
                                  price_weight=Decimal("20"), low_bid_ratio=Decimal("70"),
                                  opened_at=datetime.combine(signed, datetime.min.time()),
                                  created_at=datetime(year, 2, 1))
                fee = Decimal(rng.randint(80, 200)) * 1000
                award = add(Award, procurement_id=procurement, engagement_id=engagement, bid_id=None, firm_id=firm_id,
                            amount=fee, score=None, reasons="随机抽取确定", notice="成交公告",
                            awarded_at=datetime.combine(signed, datetime.min.time()))
                add(Contract, engagement_id=engagement, award_id=award, firm_id=firm_id, amount=fee, signed_on=signed,
                    start_date=signed, end_date=date(year, 12, 31), plan_due=plan_due, report_due=report_due,
                    deliverables="实施方案、评价报告", created_at=datetime.combine(signed, datetime.min.time()))
                if state == S.CANCELLED:
                    continue

                def submitted(due: date) -> datetime:  # 85 % on time, the rest 1–20 days late
                    days = -rng.randint(0, 5) if rng.random() < 0.85 else rng.randint(1, 20)
                    return datetime.combine(due + timedelta(days=days), datetime.min.time()) + timedelta(hours=3)

                plan_at = submitted(plan_due)
                plan_submission = add(Submission, engagement_id=engagement, kind=SubmissionKind.WORK_PLAN, version=1,
                                      file_id=stored, machine_checks=[], submitted_at=plan_at)
                panel(engagement, b, SubmissionKind.WORK_PLAN, 1, plan_submission, plan_at + timedelta(days=7),
                      Decimal(rng.randint(70, 98)), True)
                if state == S.FIELDWORK:
                    continue
                report_at = submitted(report_due)
                report = add(Submission, engagement_id=engagement, kind=SubmissionKind.REPORT, version=1,
                             file_id=stored, concluded_total=Decimal(rng.randint(60, 98)), machine_checks=[],
                             submitted_at=report_at)
                if state == S.REPORT_IN_REVIEW:
                    continue
                score = Decimal(rng.randint(6000, 9800)) / 100
                passed = score >= 80
                panel(engagement, b, SubmissionKind.REPORT, 1, report, report_at + timedelta(days=10), score, passed)
                if not passed and state != S.REPORT_RETURNED:
                    second = add(Submission, engagement_id=engagement, kind=SubmissionKind.REPORT, version=2,
                                 file_id=stored, concluded_total=Decimal(rng.randint(80, 95)), machine_checks=[],
                                 submitted_at=report_at + timedelta(days=25))
                    panel(engagement, b, SubmissionKind.REPORT, 2, second, report_at + timedelta(days=35),
                          Decimal(rng.randint(8000, 9500)) / 100, True)
                if state not in completed_states:
                    continue
                completed_engagements.append((engagement, b, firm_id, year, reference))
                if rng.random() < 0.7:
                    total = Decimal(rng.randint(6000, 10000)) / 100
                    add(CommissionerRating, engagement_id=engagement, firm_id=firm_id, rubric_id=commissioner_rubric,
                        scores={"1": float(total)}, total=total, comment="满意", rated_at=report_at + timedelta(days=40))

    # complaints: about 5 % of completed engagements, about half substantiated, plus some naming no engagement
    complaint_ids: list[tuple[int, int, int, int]] = []  # (id, bureau, firm, engagement)
    for engagement, b, firm_id, year, reference in completed_engagements:
        if rng.random() < 0.05:
            substantiated = rng.random() < 0.5
            cid = add(Complaint, reference=f"TS{year + 1}{len(rows.get(Complaint, [])) + 1:08d}", bureau_id=b,
                      firm_id=firm_id, firm_name=f"巴州基准评价咨询有限公司{firm_id:04d}", engagement_reference=reference,
                      text="评价报告照抄被评价单位自评报告，现场工作未按方案开展。", client_digest="0" * 64,
                      status=ComplaintStatus.CLOSED if substantiated else ComplaintStatus.RECEIVED,
                      substantiated=substantiated if substantiated else None,
                      created_at=datetime(year + 1, rng.randint(1, 6), rng.randint(1, 28)))
            complaint_ids.append((cid, b, firm_id, engagement))
    for _ in range(args.firms // 10):
        firm_id, year = rng.choice(firms), rng.choice(years)
        add(Complaint, reference=f"TS{year}{len(rows[Complaint]) + 1:08d}", bureau_id=bz, firm_id=firm_id,
            firm_name=f"巴州基准评价咨询有限公司{firm_id:04d}", engagement_reference=None,
            text="该机构评价人员未到现场即出具报告，请予以核查处理。", client_digest="1" * 64,
            status=ComplaintStatus.CLOSED, substantiated=rng.random() < 0.5,
            created_at=datetime(year, rng.randint(1, 12), rng.randint(1, 28)))

    # inspections: a random campaign per bureau and year (10 % of completed work), targeted cases from
    # complaints; findings with severities (an intentional violation now and then)
    by_bureau_year: dict[tuple[int, int], list[tuple]] = {}
    for entry in completed_engagements:
        by_bureau_year.setdefault((entry[1], entry[3]), []).append(entry)
    severities = [Severity.MINOR] * 50 + [Severity.GENERAL] * 30 + [Severity.SERIOUS] * 19 + [Severity.INTENTIONAL]

    def inspect(b: int, engagement: int, firm_id: int, year: int, trigger, campaign: int | None,
                complaint: int | None) -> None:
        opened = datetime(year + 1, rng.randint(3, 9), rng.randint(1, 28))
        inspection = add(Inspection, bureau_id=b, campaign_id=campaign, engagement_id=engagement, firm_id=firm_id,
                         trigger=trigger, trigger_detail=f"{year} 年度检查", complaint_id=complaint,
                         status=InspectionStatus.CLOSED,
                         checklist={"working_papers": {"ok": True, "note": ""}, "evidence": {"ok": True, "note": ""},
                                    "sampling": {"ok": True, "note": ""}, "independence": {"ok": True, "note": ""}},
                         conclusion="检查完成。", opened_at=opened, closed_at=opened + timedelta(days=30))
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            add(Finding, inspection_id=inspection, firm_id=firm_id, severity=rng.choice(severities),
                description="工作底稿缺少抽样记录，部分评分缺少证据支持。", measures=["order_to_correct"], rectified=True,
                created_at=opened + timedelta(days=10))

    for (b, year), population in sorted(by_bureau_year.items()):
        campaign = add(InspectionCampaign, bureau_id=b, year=year, ratio=10, population_size=len(population),
                       engagement_draw_id=draw, status=CampaignStatus.RESULTS_PUBLISHED, created_at=datetime(year + 1, 3, 1))
        for engagement, _b, firm_id, _y, _r in rng.sample(population, max(1, len(population) // 10)):
            inspect(b, engagement, firm_id, year, Trigger.RANDOM, campaign, None)
    engagement_year = {e[0]: e[3] for e in completed_engagements}
    for cid, b, firm_id, engagement in complaint_ids:
        if rng.random() < 0.6:
            inspect(b, engagement, firm_id, engagement_year[engagement], Trigger.COMPLAINT, None, cid)

    # external credit records: about 2 % of firm-years
    for firm_id in firms:
        for year in years:
            if rng.random() < 0.02:
                add(ExternalCreditRecord, bureau_id=bz, firm_id=firm_id, kind=ExternalRecordKind.ADMINISTRATIVE_PENALTY,
                    occurred_on=date(year, rng.randint(1, 12), rng.randint(1, 28)), description="税务行政处罚",
                    deduction=Decimal(rng.randint(1, 5)), source_file_id=stored, created_at=now)

    # insert parents before children (the metadata's dependency order)
    order = {table: i for i, table in enumerate(db.metadata.sorted_tables)}
    for model in sorted(rows, key=lambda m: order[m.__table__]):
        table_rows = rows[model]
        keys = {k for row in table_rows for k in row}  # one executemany needs the same keys in every row
        table_rows = [{**dict.fromkeys(keys), **row} for row in table_rows]
        for start in range(0, len(table_rows), 5000):
            db.session.execute(sa.insert(model.__table__), table_rows[start:start + 5000])
    db.session.commit()
    return {model.__tablename__: len(r) for model, r in rows.items()}


# --- measuring -------------------------------------------------------------------------------------

class StatementCounter:
    def __init__(self, engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args) -> None:
        self.count += 1


def run_compute(bureau_code: str, year: int):
    """One cold run: a new session, the bureau loaded, compute timed, everything rolled back."""
    from evalhub.core.models import Bureau
    from evalhub.credit.services import compute
    from evalhub.extensions import db

    db.session.remove()
    bureau = db.session.execute(sa.select(Bureau).where(Bureau.code == bureau_code)).scalar_one()
    started = time.perf_counter()
    ratings = compute(bureau, year, None)
    seconds = time.perf_counter() - started
    rated = sum(1 for r in ratings if r.rated)
    grades: dict[str, int] = {}
    for r in ratings:
        key = r.grade.value if r.grade else "不予评级"
        grades[key] = grades.get(key, 0) + 1
    watch = sum(1 for r in ratings if r.watch_list)
    db.session.rollback()
    return len(ratings), rated, seconds, grades, watch


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    args = parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="evalhub-bench-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}"
    from evalhub import create_app
    from evalhub.extensions import db

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "FIELD_KEY": "bench", "JOBS_IMMEDIATE": True,
        "HUEY_SQLITE_PATH": str(Path(tmp.name) / "huey.sqlite3"), "FILE_STORE": Path(tmp.name) / "files",
    })
    with app.app_context():
        engine = db.engine
        dialect = engine.dialect.name
        existing = sa.inspect(engine).get_table_names()
        if existing and not args.reset:
            print(f"refusing: {engine.url.render_as_string(hide_password=True)} already has {len(existing)} tables "
                  "(use a fresh database, or --reset to drop evalhub's tables)", file=sys.stderr)
            return 2
        if args.reset:
            db.drop_all()
        db.create_all()
        print(f"database: {dialect} {engine.url.render_as_string(hide_password=True)}")

        started = time.perf_counter()
        counts = generate(args)
        if dialect == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))  # what autovacuum would have done after a bulk load
        print(f"generated in {time.perf_counter() - started:.1f} s: " + ", ".join(
            f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])))

        rss_generated = max_rss_mb()
        counter = StatementCounter(engine)
        runs = []
        for _ in range(max(1, args.repeat)):
            counter.count = 0
            firms, rated, seconds, grades, watch = run_compute("652800", args.year)
            runs.append((seconds, counter.count))
            print(f"  run: {seconds:.3f} s, {counter.count} SQL statements")
        seconds = statistics.median(s for s, _ in runs)
        statements = runs[0][1]
        rss = max_rss_mb()

        peak_mb = None
        if not args.no_tracemalloc:
            tracemalloc.start()
            traced = run_compute("652800", args.year)[2]
            peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"  traced run (tracemalloc slows it down): {traced:.3f} s, peak {peak_mb:.1f} MiB")

        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            run_compute("652800", args.year)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            print(out.getvalue())

        db.session.remove()
        engine.dispose()

    rate = firms / seconds if seconds else float("inf")
    verdict = "meets" if seconds < TARGET_SECONDS else "MISSES"
    print(f"firms rated:     {firms} ({rated} graded, {firms - rated} not rated; grades {dict(sorted(grades.items()))}; "
          f"watch list {watch})")
    print(f"seconds:         {seconds:.3f} (median of {len(runs)}: {', '.join(f'{s:.3f}' for s, _ in runs)})")
    print(f"firms/second:    {rate:.0f}")
    print(f"SQL statements:  {statements} ({statements / max(firms, 1):.2f} per firm)")
    print(f"peak memory:     tracemalloc {'%.1f MiB' % peak_mb if peak_mb is not None else 'not measured'}; "
          f"process max RSS {rss:.0f} MiB ({rss_generated:.0f} MiB already after generating the data)")
    print(f"target:          {firms} firms in < {TARGET_SECONDS:.0f} s — {verdict} the target")
    summary = (f"credit.compute bench ({dialect}): {firms} firms × {args.years} yrs data, rated {args.year} in "
               f"{seconds:.2f} s ({rate:.0f} firms/s, {statements} SQL stmts"
               + (f", tracemalloc peak {peak_mb:.0f} MiB" if peak_mb is not None else "")
               + f", max RSS {rss:.0f} MiB) — {verdict} the <{TARGET_SECONDS:.0f} s target")
    print(summary)
    if args.keep and not args.database_url:
        kept = Path(tempfile.mkdtemp(prefix="evalhub-bench-kept-")) / "bench.sqlite3"
        Path(tmp.name, "bench.sqlite3").replace(kept)
        print(f"kept: {kept}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
