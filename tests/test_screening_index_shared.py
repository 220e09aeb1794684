"""The one screening index in the database (index.SharedIndex): it finds what the per-process index finds,
and every process uses the same one — a report stored through one worker is found through another."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sqlalchemy as sa

from evalhub.demo.corpus import generate_corpus
from evalhub.extensions import db
from evalhub.review.services import REPORT_CHAPTERS
from evalhub.screening.features import ScreeningContext, compute, screen_in_order
from evalhub.screening.index import CorpusIndex, SharedIndex
from evalhub.screening.models import IndexedDocument, IndexKeyCount, IndexPosting

_YEAR = re.compile(r"\d{4}\s*年度?")


def _context(report, number: int) -> ScreeningContext:
    facts = report.facts
    return ScreeningContext(kind="report", names=[facts.object_name, _YEAR.sub("", facts.object_name), facts.unit,
                                                  facts.firm, facts.region],
                            firm_id=report.firm_key + 1, engagement_id=number, object_key=report.object_key,
                            year=facts.year, budget_wan=facts.budget_wan, spent_wan=facts.spent_wan,
                            execution_rate=facts.execution_rate, chapters=REPORT_CHAPTERS)


@pytest.fixture(scope="module")
def corpus():
    reports = generate_corpus(60, seed=5)
    reports.sort(key=lambda r: r.submitted_on)
    return reports


def test_shared_index_finds_what_the_in_memory_index_finds(app_ctx, corpus):
    """Every report screened in order against the ones before it, once with each index: the same copy
    features (same-firm, other firms, previous, stock phrases, near duplicates) for every report."""
    items = [(r.text, _context(r, n), n, r.facts.firm) for n, r in enumerate(corpus, start=1)]
    memory = [s for s in screen_in_order(items, CorpusIndex())]
    shared = SharedIndex(db.session)
    keys = ("copy_same_firm", "copy_other_firms", "copy_previous", "boilerplate_share", "max_similarity",
            "near_duplicate")
    for (text, ctx, doc_id, label), expected in zip(items, memory):
        got = compute(text, ctx, shared)
        assert {k: got.features[k] for k in keys} == {k: expected.features[k] for k in keys}, doc_id
        assert sorted(d["jaccard"] for d in got.near_duplicates) == sorted(d["jaccard"] for d in expected.near_duplicates)
        shared.add(got.stored(doc_id, ctx, label))
    db.session.commit()
    # the corpus has copying of every kind, so the comparison above was not vacuous
    assert any(s.features["copy_same_firm"] for s in memory) and any(s.features["copy_other_firms"] for s in memory)
    assert any(s.features["boilerplate_share"] for s in memory)
    assert len(shared) == len(items)


def test_discard_takes_a_report_out_of_postings_counts_and_buckets(app_ctx, corpus):
    index = SharedIndex(db.session)
    first, second = corpus[0], corpus[1]
    a = compute(first.text, _context(first, 1), index)
    index.add(a.stored(1, _context(first, 1)))
    copy = compute(first.text, _context(first, 2), index)  # the same text in another engagement
    assert copy.features["near_duplicate"] == 1.0 and copy.near_duplicates[0]["doc_id"] == 1
    index.discard(1)
    assert db.session.execute(sa.select(sa.func.count()).select_from(IndexPosting)).scalar_one() == 0
    assert db.session.execute(sa.select(sa.func.count()).select_from(IndexKeyCount)).scalar_one() == 0
    assert len(SharedIndex(db.session)) == 0
    again = compute(first.text, _context(first, 2), SharedIndex(db.session))
    assert again.near_duplicates == [] and not again.features["copy_same_firm"]
    # adding the same doc_id twice replaces it (a re-screened version)
    index.add(compute(second.text, _context(second, 3), index).stored(3, _context(second, 3)))
    index.add(compute(second.text, _context(second, 3), index).stored(3, _context(second, 3)))
    assert db.session.execute(sa.select(sa.func.count()).select_from(IndexedDocument)).scalar_one() == 1
    assert db.session.execute(sa.select(sa.func.max(IndexKeyCount.count))).scalar_one() == 1


_OTHER_WORKER = textwrap.dedent("""
    import json, sys
    from evalhub import create_app
    from evalhub.extensions import db
    from evalhub.screening.features import ScreeningContext, compute
    from evalhub.screening.index import SharedIndex

    url, text, action = sys.argv[1], sys.stdin.read(), sys.argv[2]
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "x"})
    with app.app_context():
        index = SharedIndex(db.session)
        if action == "store":
            ctx = ScreeningContext(kind="report", firm_id=7, engagement_id=700, object_key="o:700", year=2024)
            index.add(compute(text, ctx, index).stored(7000, ctx, "另一个进程存入的报告"))
            db.session.commit()
            print(json.dumps({"stored": len(index)}))
        else:
            ctx = ScreeningContext(kind="report", firm_id=8, engagement_id=800, object_key="o:800", year=2025)
            s = compute(text, ctx, index)
            print(json.dumps({"near": [d["doc_id"] for d in s.near_duplicates], "other": s.features["copy_other_firms"]}))
""")


def _other_worker(app, action: str, text: str) -> dict:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    done = subprocess.run([sys.executable, "-c", _OTHER_WORKER, url, action], input=text, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_workers_share_one_index(app, app_ctx, corpus):
    """A report stored through another process (another gunicorn worker) is found through this one, and
    one stored here is found there: no process holds a copy of its own."""
    stored_there = corpus[3].text
    assert _other_worker(app, "store", stored_there) == {"stored": 1}
    db.session.rollback()  # a new transaction sees the other worker's commit
    here = compute(stored_there, ScreeningContext(kind="report", firm_id=9, engagement_id=900, year=2025),
                   SharedIndex(db.session))
    assert [d["doc_id"] for d in here.near_duplicates] == [7000]
    assert here.features["copy_other_firms"] > 0.9
    assert here.most_similar["label"] == "另一个进程存入的报告"

    stored_here = corpus[10].text
    ctx = ScreeningContext(kind="report", firm_id=3, engagement_id=300, object_key="o:300", year=2024)
    index = SharedIndex(db.session)
    index.add(compute(stored_here, ctx, index).stored(3000, ctx, "本进程存入的报告"))
    db.session.commit()
    found = _other_worker(app, "find", stored_here)
    assert 3000 in found["near"] and found["other"] > 0.9


def test_stock_phrases_are_answered_from_the_key_counts(app_ctx):
    """A sentence in many reports is a stock phrase: counted (not listed) for every firm, with the engagement's
    own other versions left out."""
    index = SharedIndex(db.session)
    stock = "项目决策科学合理，过程管理规范有序，产出和效益目标基本实现，群众满意度较高。"
    for doc_id in range(1, 13):
        own = f"第{doc_id}号报告专有的一句话，内容并不重复出现在其他地方，编号{'甲乙丙丁戊己庚辛壬癸子丑'[doc_id - 1]}。"
        ctx = ScreeningContext(kind="report", firm_id=1 if doc_id <= 3 else 2, engagement_id=doc_id, year=2024)
        index.add(compute(stock + own, ctx, index).stored(doc_id, ctx))
    key = compute(stock, ScreeningContext(kind="report"), None).keys
    assert len(key) == 1
    [match] = index.lookup([int(key[0])], kind="report", firm_id=1, engagement_id=1, object_key=None, year=2025,
                           list_limit=5)
    assert match.frequency == 11  # twelve reports, the engagement's own left out
    assert match.same_firm and match.other_firms
    [alone] = index.lookup([int(key[0])], kind="report", firm_id=99, engagement_id=None, object_key=None, year=2025,
                           list_limit=50)
    assert alone.frequency == 12 and not alone.same_firm and sorted(alone.other_firms) == list(range(1, 13))
    assert np.all(index.lookup([12345], kind="report", firm_id=1, engagement_id=None, object_key=None, year=None)
                  == [None])


def _tables() -> dict:
    from evalhub.screening.models import IndexBand

    return {"docs": set(db.session.execute(sa.select(IndexedDocument.doc_id, IndexedDocument.object_hash,
                                                     IndexedDocument.sentence_keys)).all()),
            "postings": set(db.session.execute(sa.select(IndexPosting.key, IndexPosting.kind, IndexPosting.firm_id,
                                                         IndexPosting.doc_id)).all()),
            "counts": set(db.session.execute(sa.select(IndexKeyCount.key, IndexKeyCount.kind, IndexKeyCount.count)).all()),
            "bands": set(db.session.execute(sa.select(IndexBand.bucket, IndexBand.kind, IndexBand.doc_id)).all())}


def test_a_batch_finds_and_writes_what_one_upload_at_a_time_does(app_ctx, corpus):
    """The batch job's BufferedIndex (lookups in memory, bulk writes) gives the same features as the in-memory
    index and leaves the shared tables exactly as adding the texts one at a time does."""
    from evalhub.screening.index import BufferedIndex
    from evalhub.screening.models import IndexBand

    items = [(r.text, _context(r, n), n, r.facts.firm) for n, r in enumerate(corpus[:25], start=1)]
    memory = [s.features for s in screen_in_order(items, CorpusIndex())]
    batch = BufferedIndex(db.session, flush_every=7)
    assert [s.features for s in screen_in_order(items, batch)] == memory
    batch.flush()
    db.session.commit()
    bulk = _tables()
    assert len(bulk["docs"]) == 25 and bulk["postings"] and max(c for _k, _kind, c in bulk["counts"]) > 1

    for table in (IndexedDocument, IndexPosting, IndexKeyCount, IndexBand):
        db.session.execute(sa.delete(table))
    one = SharedIndex(db.session)
    for text, ctx, doc_id, label in items:
        one.add(compute(text, ctx, one).stored(doc_id, ctx, label))
    db.session.commit()
    assert _tables() == bulk

    # a batch that starts from what is stored (re-screening) sees it, and replaces a text screened again
    again = BufferedIndex(db.session)
    assert len(again) == 25
    text, ctx, doc_id, label = items[3]
    screened = compute(text, ctx, again)
    assert screened.features == compute(text, ctx, SharedIndex(db.session)).features
    again.add(screened.stored(doc_id, ctx, label))
    again.flush()
    assert _tables() == bulk


def test_sections_tell_a_firms_own_template_from_copied_findings(app_ctx):
    """Firm 1 reuses its indicator paragraph in every report (its template); its new report also takes
    firm 2's findings word for word: the indicator chapter reads in-house, the findings chapter copied."""
    from evalhub.review.services import REPORT_CHAPTERS
    from evalhub.screening.index import section_copy, section_features
    from evalhub.screening.services import sections_for

    indicators = "本次评价采用决策、过程、产出、效益四类指标，其中产出和效益指标权重合计为百分之六十以上。"
    def report(n: int, findings: str) -> str:
        return "\n".join([f"第{n}号项目绩效评价报告", "四、绩效评价指标分析", indicators,
                          f"编号{'甲乙丙丁戊己'[n]}的项目按计划完成了主要建设内容，验收合格率达到要求。",
                          "六、存在的问题及原因分析", findings, "七、有关建议", f"建议主管部门于年底前完成第{'甲乙丙丁戊己'[n]}批整改。"])

    index = SharedIndex(db.session)
    theirs = "一是配套资金迟迟未能到位，导致两处泵站延期投入使用。二是日常巡查记录缺失，设施损坏后长期无人维修。"
    stored = [(k, 1, f"第{k}个对象自有的问题描述，与其他报告均不相同，内容具体到村组。") for k in range(1, 4)]
    stored.append((4, 2, theirs))
    for doc_id, firm, findings in stored:
        ctx = ScreeningContext(kind="report", firm_id=firm, engagement_id=doc_id, object_key=f"o{doc_id}", year=2024,
                               chapters=REPORT_CHAPTERS)
        index.add(compute(report(doc_id, findings), ctx, index).stored(doc_id, ctx))
    ctx = ScreeningContext(kind="report", firm_id=1, engagement_id=9, object_key="o9", year=2025, chapters=REPORT_CHAPTERS)
    sections = sections_for(report(5, theirs), ctx, SharedIndex(db.session))
    assert sections["indicators"]["in_house"] == 0.5 and sections["indicators"]["other_firms"] == 0
    assert sections["findings"]["other_firms"] == 1.0 and sections["findings"]["in_house"] == 0
    assert sections["recommendations"]["other_firms"] == 0
    flat = section_features(sections)
    assert flat["section_findings_copied"] == 1.0 and flat["section_indicators_copied"] == 0
    assert flat["section_indicators_in_house"] == 0.5
    # a fragment without chapters has no sections
    assert section_features(section_copy([], [], 5)) == dict.fromkeys(flat)
