"""The stored-report index the copy features look things up in: masked sentence keys → reports, and a
MinHash LSH over character shingles for near-duplicates.

Three classes with one interface (``features`` uses any of them): ``SharedIndex``, the app's one index in
the database that every web worker and the background worker read and write (no copy per process);
``CorpusIndex``, the same index in memory (training, tests, the benchmark's baseline), with postings as
compact ``array('i')`` lists of dense report numbers; ``BufferedIndex``, a batch job's in-memory copy of the
shared index whose new texts are written back in bulk.
"""
from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Callable, Iterable

import numpy as np
import sqlalchemy as sa
from datasketch import LeanMinHash, MinHashLSH

from evalhub.core.batches import batches

NUM_PERM = 64
LSH_THRESHOLD = 0.5
NEAR_DUPLICATE_JACCARD = 0.5  # verified on the exact sentence keys
SEED = 20261123
SCHEME = "affine32"  # the scheme label datasketch's LSH checks; signatures are uint32 minima
_rng = np.random.default_rng(SEED)
# Multiply-shift hashing (Dietzfelbinger): odd 64-bit multipliers, 64-bit wrap-around, top 32 bits.
_A = _rng.integers(1, 2 ** 63, NUM_PERM, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2 ** 63, NUM_PERM, dtype=np.uint64)


def signature(shingles: np.ndarray) -> np.ndarray:
    """The MinHash signature of a set of 32-bit shingle hashes: for each of NUM_PERM hash functions, the
    minimum over the set — vectorised with numpy (datasketch's update_batch loops in Python per item)."""
    if not len(shingles):
        return np.full(NUM_PERM, 0xFFFFFFFF, dtype=np.uint32)
    with np.errstate(over="ignore"):
        permuted = (shingles.astype(np.uint64)[None, :] * _A[:, None] + _B[:, None]) >> np.uint64(32)
    return permuted.min(axis=1).astype(np.uint32)


def _lean(sig: np.ndarray) -> LeanMinHash:
    return LeanMinHash(seed=SEED, hashvalues=sig, scheme=SCHEME)


@dataclass
class StoredReport:
    doc_id: int                # submission id (or corpus position in the benchmark)
    firm_id: int | None
    engagement_id: int | None
    object_key: str | None     # the evaluated object: the same budget unit and project across years
    year: int | None
    kind: str
    keys: np.ndarray           # unique masked sentence keys (uint64)
    signature: np.ndarray      # MinHash over character shingles (uint32)
    label: str = ""            # how the card names it: firm, reference, date


@dataclass
class Match:
    """Where one sentence of the screened text also occurs."""

    same_firm: list[int] = field(default_factory=list)
    other_firms: list[int] = field(default_factory=list)
    previous: list[int] = field(default_factory=list)
    frequency: int = 0


COMMON = 64  # a sentence in this many reports gets a running summary, so lookups need not scan its postings


class _Common:
    """Running counts for a sentence found in many reports of one kind: how many, by which firms, and the
    budget years per evaluated object."""

    __slots__ = ("count", "firms", "objects")

    def __init__(self) -> None:
        self.count = 0
        self.firms: Counter[int] = Counter()
        self.objects: dict[int, Counter[int]] = {}

    def change(self, firm: int, obj: int, year: int, step: int) -> None:
        self.count += step
        self.firms[firm] += step
        if obj >= 0:
            self.objects.setdefault(obj, Counter())[year] += step


class CorpusIndex:
    def __init__(self) -> None:
        self.reports: list[StoredReport | None] = []
        self.slot: dict[int, int] = {}           # doc_id → dense number
        self.postings: dict[int, array] = {}     # sentence key → dense numbers
        # Per-report columns, mirrored as arrays so big postings lists are filtered with numpy.
        self._firm = array("i")
        self._engagement = array("i")
        self._object = array("i")
        self._year = array("i")
        self._kind = array("i")
        self._alive = array("b")
        self._object_ids: dict[str, int] = {}
        self._signatures = np.empty((0, NUM_PERM), dtype=np.uint32)  # row = dense number, grown by doubling
        self._kind_ids: dict[str, int] = {}
        self._common: dict[tuple[int, int], _Common] = {}  # (kind id, key) → summary, for keys in COMMON+ reports
        self._by_engagement: dict[int, list[int]] = {}
        self.lsh: dict[str, MinHashLSH] = {}
        self.generation = 0
        self.count_by_kind: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.slot)

    def add(self, report: StoredReport) -> None:
        if report.doc_id in self.slot:
            self.discard(report.doc_id)
        number = len(self.reports)
        self.reports.append(report)
        self.slot[report.doc_id] = number
        self._firm.append(report.firm_id or -1)
        self._engagement.append(report.engagement_id or -1)
        self._object.append(self._object_ids.setdefault(report.object_key, len(self._object_ids)) if report.object_key else -1)
        self._year.append(report.year or 0)
        self._kind.append(self._kind_ids.setdefault(report.kind, len(self._kind_ids)))
        self._alive.append(1)
        self._by_engagement.setdefault(report.engagement_id or -1, []).append(number)
        kind_id, firm, obj, year = self._kind[number], self._firm[number], self._object[number], self._year[number]
        for key in report.keys.tolist():
            bucket = self.postings.get(key)
            if bucket is None:
                self.postings[key] = array("i", (number,))
                continue
            bucket.append(number)
            if len(bucket) > COMMON:
                common = self._common.get((kind_id, key))
                if common is None:
                    common = self._common[(kind_id, key)] = _Common()
                common.change(firm, obj, year, 1)
            elif len(bucket) == COMMON:
                for n in bucket:  # the summary starts from everything stored so far
                    if self._alive[n]:
                        self._common.setdefault((self._kind[n], key), _Common()).change(
                            self._firm[n], self._object[n], self._year[n], 1)
        lsh = self.lsh.get(report.kind)
        if lsh is None:
            lsh = self.lsh[report.kind] = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
        lsh.insert(number, _lean(report.signature))
        if number >= len(self._signatures):
            grown = np.empty((max(1024, 2 * len(self._signatures)), NUM_PERM), dtype=np.uint32)
            grown[:len(self._signatures)] = self._signatures
            self._signatures = grown
        self._signatures[number] = report.signature
        self.count_by_kind[report.kind] += 1
        self.generation += 1

    def discard(self, doc_id: int) -> None:
        """Forget a report (its postings stay but point at a tombstone, skipped on lookup)."""
        number = self.slot.pop(doc_id, None)
        if number is None:
            return
        report = self.reports[number]
        self.reports[number] = None
        self._alive[number] = 0
        if report is not None:
            for key in report.keys.tolist():
                common = self._common.get((self._kind[number], key))
                if common is not None:
                    common.change(self._firm[number], self._object[number], self._year[number], -1)
            self._by_engagement.get(report.engagement_id or -1, []).remove(number)
            self.lsh[report.kind].remove(number)
            self.count_by_kind[report.kind] -= 1
        self.generation += 1

    def boilerplate_threshold(self, kind: str) -> int:
        """A sentence found in this many reports is a stock phrase, not a copy of one report."""
        return max(5, self.count_by_kind[kind] // 200)

    def lookup(self, keys: list[int], *, kind: str, firm_id: int | None, engagement_id: int | None,
               object_key: str | None, year: int | None, list_limit: int = 1 << 30) -> list[Match | None]:
        """For each key, where else it occurs (other versions of the same engagement excluded). Keys found
        in ``list_limit`` reports or more list only a few of them (their frequency is exact)."""
        results: list[Match | None] = []
        kind_id = self._kind_ids.get(kind, -3)
        firm = firm_id if firm_id is not None else -2
        engagement = engagement_id if engagement_id is not None else -2
        obj = self._object_ids.get(object_key, -3) if object_key else -3
        year = year or 0
        columns = None
        alive, kinds, engagements, firms, objects, years = (self._alive, self._kind, self._engagement, self._firm,
                                                            self._object, self._year)
        for key in keys:
            bucket = self.postings.get(key) if key else None
            if not bucket:
                results.append(None)
                continue
            if len(bucket) >= COMMON and len(bucket) >= list_limit:
                match = self._summary(key, kind_id, firm, engagement, obj, year, list_limit)
                if match is not False:
                    results.append(match)
                    continue
            if len(bucket) > 24:
                if columns is None:
                    columns = [np.frombuffer(c, dtype=t) for c, t in (
                        (self._firm, np.int32), (self._engagement, np.int32), (self._object, np.int32),
                        (self._year, np.int32), (self._kind, np.int32), (self._alive, np.int8))]
                f, e, o, y, k, a = columns
                numbers = np.frombuffer(bucket, dtype=np.int32)
                numbers = numbers[(a[numbers] == 1) & (k[numbers] == kind_id) & (e[numbers] != engagement)]
                same = f[numbers] == firm
                previous = (o[numbers] == obj) & (y[numbers] < year) & (y[numbers] > 0)
                # A stock phrase can sit in thousands of reports: callers need whether it occurs in each
                # group and how often, and the reports themselves only for rarer sentences.
                cap = None if len(numbers) < list_limit else 8
                match = Match(same_firm=numbers[same][:cap].tolist(), other_firms=numbers[~same][:cap].tolist(),
                              previous=numbers[previous][:cap].tolist(), frequency=len(numbers))
            else:
                match = Match()
                for number in bucket:
                    if not alive[number] or kinds[number] != kind_id or engagements[number] == engagement:
                        continue
                    match.frequency += 1
                    (match.same_firm if firms[number] == firm else match.other_firms).append(number)
                    if objects[number] == obj and 0 < years[number] < year:
                        match.previous.append(number)
            results.append(match if match.frequency else None)
        return results

    def _summary(self, key: int, kind_id: int, firm: int, engagement: int, obj: int, year: int,
                 list_limit: int) -> "Match | None | bool":
        """A stock phrase's match from its running summary (constant time); False when, after leaving out
        the engagement's own versions, it is rarer than ``list_limit`` and needs the exact lookup."""
        common = self._common.get((kind_id, key))
        if common is None:
            return None
        own = 0
        for number in self._by_engagement.get(engagement, ()):
            keys = self.reports[number].keys
            at = int(np.searchsorted(keys, np.uint64(key)))
            own += at < len(keys) and int(keys[at]) == key and self._kind[number] == kind_id
        frequency = common.count - own
        if frequency < list_limit:
            return False
        same = common.firms.get(firm, 0) - own
        years = common.objects.get(obj) if obj >= 0 else None
        previous = bool(years) and any(0 < y < year and c > 0 for y, c in years.items())
        # Only whether each group has the phrase matters for a stock phrase: one placeholder stands for it.
        return Match(same_firm=[-1] if same > 0 else [], other_firms=[-1] if frequency - same > 0 else [],
                     previous=[-1] if previous else [], frequency=frequency)

    def near_duplicates(self, keys: np.ndarray, sig: np.ndarray, *, kind: str, engagement_id: int | None,
                        verify: int = 10) -> list[tuple[int, float]]:
        """LSH candidates verified by the exact Jaccard similarity of their sentence keys. Stock-phrase
        reports can make thousands of candidates: they are ranked by the Jaccard their signatures estimate
        (one vectorised comparison) and only the ``verify`` most similar are checked exactly."""
        lsh = self.lsh.get(kind)
        if lsh is None or not len(keys):
            return []
        candidates = [n for n in lsh.query(_lean(sig)) if self.reports[n] is not None
                      and (engagement_id is None or self.reports[n].engagement_id != engagement_id)]
        if not candidates:
            return []
        numbers = np.asarray(candidates, dtype=np.int64)
        estimated = (self._signatures[numbers] == sig).mean(axis=1)
        keep = numbers[np.argsort(-estimated, kind="stable")[:verify]]
        return _near_duplicates(keys, ((number, self.reports[number]) for number in keep.tolist()))


# === the shared index: one copy in the database for every process ====================================
# Chosen over one screening process that web workers call (see bench/screening.py for the figures): the
# database already is the one thing every gunicorn worker, app server and the background worker share, it
# survives restarts without a warm-up, and a report stored through one worker is found through any other as
# soon as its transaction commits. A lookup is a handful of indexed queries (key counts, the rarer keys'
# postings, the firm's own uses of the stock phrases, the LSH buckets), so a worker holds no index at all.

KIND_CODES = {"report": 1, "work_plan": 2, "self_evaluation": 3, "fragment": 4}
REFERENCE_BASE = 1 << 40  # an outside reference report's doc_id is -(REFERENCE_BASE + its id)


def _near_duplicates(keys: np.ndarray, reports: Iterable[tuple[int, StoredReport | None]]) -> list[tuple[int, float]]:
    """The reports whose exact Jaccard similarity to ``keys`` reaches ``NEAR_DUPLICATE_JACCARD`` (a report no
    longer stored is passed over), as (number, similarity), most similar first."""
    found = []
    for number, report in reports:
        if report is None:
            continue
        inter = len(np.intersect1d(keys, report.keys, assume_unique=True))
        union = len(keys) + len(report.keys) - inter
        jaccard = inter / union if union else 0.0
        if jaccard >= NEAR_DUPLICATE_JACCARD:
            found.append((number, jaccard))
    return sorted(found, key=lambda x: -x[1])


def kind_code(kind: str) -> int:
    return KIND_CODES.get(kind, 9)


def reference_doc_id(reference_id: int) -> int:
    return -(REFERENCE_BASE + reference_id)


def reference_id_of(doc_id: int | None) -> int | None:
    """The reference document's id when ``doc_id`` names one, else None (a submission)."""
    return -doc_id - REFERENCE_BASE if doc_id is not None and doc_id <= -REFERENCE_BASE else None


def _hash63(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little") >> 1


def object_hash(object_key: str | None) -> int | None:
    return _hash63(object_key.encode("utf-8")) if object_key else None


def _lsh_shape() -> tuple[int, int]:
    lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)  # the same banding as the in-memory index
    return lsh.b, lsh.r


BANDS, ROWS = _lsh_shape()
_IN_LIST = 900  # ids a statement (core.batches)


def band_buckets(sig: np.ndarray) -> list[int]:
    """One 63-bit bucket per LSH band: the band number and its ``ROWS`` minima hashed together."""
    sig = np.asarray(sig, dtype=np.uint32)
    return [_hash63(bytes((band,)) + sig[band * ROWS:(band + 1) * ROWS].tobytes()) for band in range(BANDS)]


class _Documents:
    """``index.reports[doc_id]`` for the shared index: the stored document, read when asked (a lookup names
    a few) and kept for the index object's life (one screening)."""

    def __init__(self, index: "SharedIndex") -> None:
        self._index = index
        self._cache: dict[int, StoredReport | None] = {}

    def __getitem__(self, doc_id: int) -> StoredReport | None:
        if doc_id not in self._cache:
            self.load([doc_id])
        return self._cache.get(doc_id)

    def load(self, doc_ids: Iterable[int]) -> None:
        from evalhub.screening.models import IndexedDocument as D

        wanted = [int(d) for d in set(doc_ids) if d not in self._cache]
        for part in batches(wanted, _IN_LIST):
            for row in self._index.session.execute(sa.select(D).where(D.doc_id.in_(part))).scalars():
                self._cache[row.doc_id] = _stored(row)
        for doc_id in wanted:
            self._cache.setdefault(doc_id, None)


def _stored(row) -> StoredReport:
    return StoredReport(doc_id=row.doc_id, firm_id=row.firm_id, engagement_id=row.engagement_id, object_key=None,
                        year=row.year, kind=row.kind, keys=np.frombuffer(row.sentence_keys, dtype=np.uint64),
                        signature=np.frombuffer(row.signature, dtype=np.uint32), label=row.label)


class SharedIndex:
    """The index in the database, with CorpusIndex's interface (``features`` uses either): ``reports`` is
    indexed by doc_id, and the numbers in a Match are doc_ids. Writes go through the caller's session and
    are seen by every other process once it commits."""

    def __init__(self, session=None) -> None:
        from evalhub.extensions import db

        self.session = session if session is not None else db.session
        self.reports = _Documents(self)
        self._counts: Counter[str] | None = None

    # --- size ---------------------------------------------------------------------------------------
    @property
    def count_by_kind(self) -> Counter[str]:
        from evalhub.screening.models import IndexedDocument as D

        if self._counts is None:
            self._counts = Counter(dict(self.session.execute(
                sa.select(D.kind, sa.func.count()).group_by(D.kind)).all()))
        return self._counts

    def __len__(self) -> int:
        return sum(self.count_by_kind.values())

    def boilerplate_threshold(self, kind: str) -> int:
        return max(5, self.count_by_kind[kind] // 200)

    # --- writes -------------------------------------------------------------------------------------
    def add(self, report: StoredReport) -> None:
        from evalhub.screening.models import IndexBand, IndexedDocument, IndexKeyCount, IndexPosting

        self.discard(report.doc_id)
        code = kind_code(report.kind)
        keys = sorted({int(k) for k in np.asarray(report.keys, dtype=np.uint64).tolist() if k})
        firm = report.firm_id if report.firm_id is not None else -1
        s = self.session
        s.execute(sa.insert(IndexedDocument), [{
            "doc_id": report.doc_id, "kind": report.kind, "firm_id": report.firm_id,
            "engagement_id": report.engagement_id, "object_hash": object_hash(report.object_key),
            "year": report.year, "label": (report.label or "")[:300],
            "sentence_keys": np.asarray(keys, dtype=np.uint64).tobytes(),
            "signature": np.asarray(report.signature, dtype=np.uint32).tobytes()}])
        if keys:
            s.execute(sa.insert(IndexPosting), [{"kind": code, "key": k, "firm_id": firm, "doc_id": report.doc_id}
                                                for k in keys])
            _bump(s, IndexKeyCount, code, keys, 1)
        s.execute(sa.insert(IndexBand), [{"kind": code, "bucket": b, "doc_id": report.doc_id}
                                         for b in sorted(set(band_buckets(report.signature)))])
        self._forget()

    def add_many(self, reports: list[StoredReport]) -> None:
        """Many texts at once (a batch): one write per table — COPY on PostgreSQL — and each key's count
        raised once by the number of texts holding it."""
        from evalhub.screening.models import IndexBand, IndexedDocument, IndexKeyCount, IndexPosting

        if not reports:
            return
        s = self.session
        ids = [r.doc_id for r in reports]
        existing = set()
        for part in batches(ids, _IN_LIST):
            existing |= set(s.execute(sa.select(IndexedDocument.doc_id).where(IndexedDocument.doc_id.in_(part))).scalars())
        self.discard_many(sorted(existing))
        docs, postings, bands = [], [], []
        counts: Counter[tuple[int, int]] = Counter()
        for report in reports:
            code = kind_code(report.kind)
            keys = sorted({int(k) for k in np.asarray(report.keys, dtype=np.uint64).tolist() if k})
            firm = report.firm_id if report.firm_id is not None else -1
            docs.append({"doc_id": report.doc_id, "kind": report.kind, "firm_id": report.firm_id,
                         "engagement_id": report.engagement_id, "object_hash": object_hash(report.object_key),
                         "year": report.year, "label": (report.label or "")[:300],
                         "sentence_keys": np.asarray(keys, dtype=np.uint64).tobytes(),
                         "signature": np.asarray(report.signature, dtype=np.uint32).tobytes()})
            postings += [(k, code, firm, report.doc_id) for k in keys]
            counts.update((code, k) for k in keys)
            bands += [(b, code, report.doc_id) for b in sorted(set(band_buckets(report.signature)))]
        s.execute(sa.insert(IndexedDocument), docs)
        _copy(s, IndexPosting.__table__, ("key", "kind", "firm_id", "doc_id"), postings)
        _copy(s, IndexBand.__table__, ("bucket", "kind", "doc_id"), bands)
        for code in sorted({c for c, _k in counts}):
            by_step: dict[int, list[int]] = {}
            for (c, key), n in counts.items():
                if c == code:
                    by_step.setdefault(n, []).append(key)
            for step, keys in by_step.items():
                _bump(s, IndexKeyCount, code, sorted(keys), step)
        self._forget()

    def discard(self, doc_id: int) -> None:
        from evalhub.screening.models import IndexBand, IndexedDocument, IndexKeyCount, IndexPosting

        s = self.session
        row = s.execute(sa.select(IndexedDocument.kind, IndexedDocument.sentence_keys, IndexedDocument.signature)
                        .where(IndexedDocument.doc_id == doc_id)).first()
        if row is None:
            return
        code = kind_code(row.kind)
        keys = sorted(np.frombuffer(row.sentence_keys, dtype=np.uint64).tolist())
        for part in batches(keys, _IN_LIST):
            s.execute(sa.delete(IndexPosting).where(IndexPosting.kind == code, IndexPosting.key.in_(part),
                                                    IndexPosting.doc_id == doc_id))
        _bump(s, IndexKeyCount, code, keys, -1)
        buckets = band_buckets(np.frombuffer(row.signature, dtype=np.uint32))
        s.execute(sa.delete(IndexBand).where(IndexBand.kind == code, IndexBand.bucket.in_(buckets),
                                             IndexBand.doc_id == doc_id))
        s.execute(sa.delete(IndexedDocument).where(IndexedDocument.doc_id == doc_id))
        self._forget()

    def discard_many(self, doc_ids: list[int]) -> None:
        """``discard`` of many texts (a batch re-screening its year): the same rows go, a few statements per
        table for the lot instead of five a text, and each key's count lowered once by the number of texts
        holding it."""
        from evalhub.screening.models import IndexBand, IndexedDocument, IndexKeyCount, IndexPosting

        if not doc_ids:
            return
        s = self.session
        rows = []
        for part in batches(sorted(set(doc_ids)), _IN_LIST):
            rows += s.execute(sa.select(IndexedDocument.doc_id, IndexedDocument.kind, IndexedDocument.sentence_keys,
                                        IndexedDocument.signature).where(IndexedDocument.doc_id.in_(part))).all()
        if not rows:
            return
        by_code: dict[int, list] = {}
        for row in rows:
            by_code.setdefault(kind_code(row.kind), []).append(row)
        for code, group in sorted(by_code.items()):
            counts: Counter[int] = Counter()
            buckets: set[int] = set()
            for row in group:
                counts.update(np.frombuffer(row.sentence_keys, dtype=np.uint64).tolist())
                buckets.update(band_buckets(np.frombuffer(row.signature, dtype=np.uint32)))
            for ids in batches([row.doc_id for row in group], _IN_LIST):
                # the key leads the postings' and the bands' primary keys: asked by key, as ``discard`` does
                for part in batches(sorted(counts), _IN_LIST):
                    s.execute(sa.delete(IndexPosting).where(IndexPosting.kind == code, IndexPosting.key.in_(part),
                                                            IndexPosting.doc_id.in_(ids)))
                for part in batches(sorted(buckets), _IN_LIST):
                    s.execute(sa.delete(IndexBand).where(IndexBand.kind == code, IndexBand.bucket.in_(part),
                                                         IndexBand.doc_id.in_(ids)))
            by_step: dict[int, list[int]] = {}
            for key, n in counts.items():
                by_step.setdefault(n, []).append(key)
            for step, keys in sorted(by_step.items()):
                _bump(s, IndexKeyCount, code, sorted(keys), -step)
        for part in batches(sorted(row.doc_id for row in rows), _IN_LIST):
            s.execute(sa.delete(IndexedDocument).where(IndexedDocument.doc_id.in_(part)))
        self._forget()

    def _forget(self) -> None:
        self._counts = None
        self.reports = _Documents(self)

    # --- reads --------------------------------------------------------------------------------------
    def _documents(self, column, value, kind: str) -> list:
        from evalhub.screening.models import IndexedDocument as D

        if value is None:
            return []
        return self.session.execute(sa.select(D.doc_id, D.firm_id, D.year, D.sentence_keys)
                                    .where(column(D) == value, D.kind == kind)).all()

    def lookup(self, keys: list[int], *, kind: str, firm_id: int | None, engagement_id: int | None,
               object_key: str | None, year: int | None, list_limit: int = 1 << 30) -> list[Match | None]:
        """As CorpusIndex.lookup, in a few queries: the keys' counts; the postings of the keys rarer than
        ``list_limit``; for the stock phrases, how often the firm itself uses them; the engagement's other
        versions (left out) and the object's earlier reports (``previous``) read whole, as they are few."""
        from evalhub.screening.models import IndexKeyCount as K, IndexPosting as P

        code = kind_code(kind)
        firm = firm_id if firm_id is not None else -2
        year = year or 0
        wanted = sorted({int(k) for k in keys if k})
        if not wanted:
            return [None] * len(keys)
        s = self.session
        own = self._documents(lambda d: d.engagement_id, engagement_id, kind)
        own_ids = {r.doc_id for r in own}
        own_count: Counter[int] = Counter()
        own_same: Counter[int] = Counter()
        wanted_array = np.asarray(wanted, dtype=np.uint64)
        for r in own:
            hit = wanted_array[np.isin(wanted_array, np.frombuffer(r.sentence_keys, dtype=np.uint64))].tolist()
            own_count.update(hit)
            if r.firm_id == firm_id and firm_id is not None:
                own_same.update(hit)
        earlier = [r for r in self._documents(lambda d: d.object_hash, object_hash(object_key), kind)
                   if r.year and 0 < r.year < year and r.doc_id not in own_ids]
        previous: dict[int, list[int]] = {}
        for r in earlier:
            for k in wanted_array[np.isin(wanted_array, np.frombuffer(r.sentence_keys, dtype=np.uint64))].tolist():
                previous.setdefault(k, []).append(r.doc_id)
        counts: dict[int, int] = {}
        for part in batches(wanted, _IN_LIST):
            counts.update(s.execute(sa.select(K.key, K.count).where(K.kind == code, K.key.in_(part))).all())
        rare = [k for k, c in counts.items() if 0 < c - own_count[k] < list_limit]
        common = [k for k, c in counts.items() if c - own_count[k] >= list_limit]
        found: dict[int, Match] = {}
        if rare:
            rows = []
            for part in batches(rare, _IN_LIST):
                rows += s.execute(sa.select(P.key, P.doc_id, P.firm_id)
                                  .where(P.kind == code, P.key.in_(part))).all()
            for key, doc_id, doc_firm in rows:
                if doc_id in own_ids:
                    continue
                match = found.setdefault(key, Match())
                match.frequency += 1
                (match.same_firm if doc_firm == firm else match.other_firms).append(doc_id)
            for key, match in found.items():
                match.previous = [d for d in previous.get(key, ()) if d in set(match.same_firm) | set(match.other_firms)]
        if common:
            firm_uses: dict[int, int] = {}
            if firm_id is not None:
                for part in batches(common, _IN_LIST):
                    firm_uses.update(s.execute(sa.select(P.key, sa.func.count()).where(
                        P.kind == code, P.key.in_(part), P.firm_id == firm_id).group_by(P.key)).all())
            for key in common:
                frequency = counts[key] - own_count[key]
                same = firm_uses.get(key, 0) - own_same[key]
                # Only whether each group has the phrase matters for a stock phrase: one placeholder stands for it.
                found[key] = Match(same_firm=[-1] if same > 0 else [], other_firms=[-1] if frequency - same > 0 else [],
                                   previous=[-1] if previous.get(key) else [], frequency=frequency)
        return [found.get(int(k)) if k else None for k in keys]

    def near_duplicates(self, keys: np.ndarray, sig: np.ndarray, *, kind: str, engagement_id: int | None,
                        verify: int = 10) -> list[tuple[int, float]]:
        """As CorpusIndex.near_duplicates: candidates sharing an LSH band bucket, ranked by the Jaccard their
        signatures estimate, the ``verify`` best checked on their exact sentence keys."""
        from evalhub.screening.models import IndexBand as B, IndexedDocument as D

        if not len(keys):
            return []
        s = self.session
        code = kind_code(kind)
        candidates = set(s.execute(sa.select(B.doc_id).where(B.kind == code, B.bucket.in_(band_buckets(sig))))
                         .scalars())
        if not candidates:
            return []
        rows = []
        for part in batches(sorted(candidates), _IN_LIST):
            rows += s.execute(sa.select(D.doc_id, D.engagement_id, D.signature).where(D.doc_id.in_(part))).all()
        rows = [r for r in rows if engagement_id is None or r.engagement_id != engagement_id]
        if not rows:
            return []
        signatures = np.stack([np.frombuffer(r.signature, dtype=np.uint32) for r in rows])
        estimated = (signatures == np.asarray(sig, dtype=np.uint32)).mean(axis=1)
        keep = [rows[i].doc_id for i in np.argsort(-estimated, kind="stable")[:verify]]
        self.reports.load(keep)
        return _near_duplicates(keys, ((doc_id, self.reports[doc_id]) for doc_id in keep))


def _copy(session, table: sa.Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert many rows: COPY on PostgreSQL (several times faster than INSERTs), else executemany."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    connection.execute(sa.insert(table), [dict(zip(columns, row)) for row in rows])


class BufferedIndex:
    """Batch screening (a bulk import, re-screening a year) in the one process that runs it: lookups in an
    in-memory copy of the shared index loaded once, new texts written to the shared index in bulk every
    ``flush_every`` texts (``flush`` at the end). Web workers never build one; the batch job's copy lives as
    long as the job."""

    def __init__(self, session=None, *, flush_every: int = 500, load: bool = True) -> None:
        from evalhub.screening.models import IndexedDocument

        self.shared = SharedIndex(session)
        self.memory = CorpusIndex()
        self.pending: list[StoredReport] = []
        self.flush_every = flush_every
        if load:
            rows = self.shared.session.execute(sa.select(IndexedDocument).execution_options(yield_per=1000)).scalars()
            for row in rows:
                self.memory.add(_with_object(_stored(row), row.object_hash))
                self.shared.session.expunge(row)

    @property
    def reports(self):
        return self.memory.reports

    @property
    def count_by_kind(self) -> Counter[str]:
        return self.memory.count_by_kind

    def __len__(self) -> int:
        return len(self.memory)

    def boilerplate_threshold(self, kind: str) -> int:
        return self.memory.boilerplate_threshold(kind)

    def lookup(self, keys: list[int], *, object_key: str | None, **kw) -> list[Match | None]:
        return self.memory.lookup(keys, object_key=_object_id(object_key), **kw)

    def near_duplicates(self, keys: np.ndarray, sig: np.ndarray, **kw) -> list[tuple[int, float]]:
        return self.memory.near_duplicates(keys, sig, **kw)

    def add(self, report: StoredReport) -> None:
        self.memory.add(_with_object(report, object_hash(report.object_key)))
        self.pending.append(report)
        if len(self.pending) >= self.flush_every:
            self.flush()

    def discard(self, doc_id: int) -> None:
        self.flush()
        self.memory.discard(doc_id)
        self.shared.discard(doc_id)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        self.shared.add_many(pending)


def _object_id(object_key: str | None) -> str | None:
    """The in-memory copy names evaluated objects by their hash, as the shared index stores them."""
    hashed = object_hash(object_key)
    return str(hashed) if hashed is not None else None


def _with_object(report: StoredReport, hashed: int | None) -> StoredReport:
    from dataclasses import replace

    return replace(report, object_key=str(hashed) if hashed is not None else None)


def _bump(session, table, code: int, keys: list[int], step: int) -> None:
    """Add ``step`` to each key's document count (keys in ascending order, so two workers adding texts at
    once take the rows' locks in the same order and cannot deadlock)."""
    if not keys:
        return
    if step > 0:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[table.kind, table.key],
                                          set_={"count": table.count + stmt.excluded["count"]})
        for part in batches(keys, 2000):
            session.execute(stmt, [{"kind": code, "key": k, "count": step} for k in part])
        return
    for part in batches(keys, _IN_LIST):
        session.execute(sa.update(table).where(table.kind == code, table.key.in_(part))
                        .values(count=table.count + step))
    session.execute(sa.delete(table).where(table.kind == code, table.count <= 0))


# === section by section: whose text each chapter reuses =============================================
# The same firm reusing its own indicator system is normal; reusing its findings (or another firm's) is
# not. So copied sentences are split per chapter group, and a firm's in-house template — a sentence it has
# used in several of its own reports — is told apart from content lifted from one other report.

SECTION_GROUPS = {
    "indicators": ("绩效评价指标分析", "绩效评价工作开展情况"),           # the indicator system and how it was applied
    "findings": ("存在的问题及原因分析", "综合评价情况及评价结论"),         # what the evaluation found
    "recommendations": ("有关建议",),
}
IN_HOUSE_MIN = 3  # a sentence in this many of the firm's own other reports is its template, not a copy
SECTION_SHARES = ("in_house", "same_firm_content", "other_firms", "previous", "stock")


def section_copy(sentences: Iterable, matches: Iterable[Match | None], threshold: int, *,
                 is_stock: Callable[[Match], bool] | None = None) -> dict[str, dict[str, float]]:
    """Per chapter group, the share of its sentences that are: ``in_house`` (the firm's own template: in at
    least IN_HOUSE_MIN of its other reports), ``same_firm_content`` (in one or two of the firm's reports on
    other objects: content reused), ``other_firms`` (another firm's text), ``previous`` (this object's earlier
    report), ``stock`` (a phrase in ``threshold`` or more reports of every firm). ``sentences`` carry
    ``.chapter``; ``matches`` are ``lookup``'s, in the same order. Groups the text lacks are left out.
    ``is_stock``: another test of "stock" (bench/screening_real.py measures one by the number of other firms)."""
    is_stock = is_stock or (lambda match: match.frequency >= threshold)
    group_of = {chapter: group for group, chapters in SECTION_GROUPS.items() for chapter in chapters}
    counts: dict[str, Counter[str]] = {}
    for sentence, match in zip(sentences, matches):
        group = group_of.get(sentence.chapter or "")
        if group is None:
            continue
        row = counts.setdefault(group, Counter())
        row["sentences"] += 1
        if match is None:
            continue
        if is_stock(match):
            row["stock"] += 1
        elif len(match.same_firm) >= IN_HOUSE_MIN:  # the firm's own habit, even if another firm has it too
            row["in_house"] += 1
        elif match.other_firms:
            row["other_firms"] += 1
        elif match.previous:
            row["previous"] += 1
        elif match.same_firm:
            row["same_firm_content"] += 1
    return {group: {"sentences": row["sentences"], **{k: round(row[k] / row["sentences"], 4) for k in SECTION_SHARES}}
            for group, row in counts.items() if row["sentences"]}


def section_features(sections: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """Flat per-group figures for the feature set: ``section_<group>_copied`` (content from another firm,
    or from one other report of the same firm) and ``section_<group>_in_house`` (its own template); None for
    a group the text does not have (a fragment, a work plan)."""
    out: dict[str, float | None] = {}
    for group in SECTION_GROUPS:
        row = sections.get(group)
        out[f"section_{group}_copied"] = round(row["other_firms"] + row["same_firm_content"], 4) if row else None
        out[f"section_{group}_in_house"] = row["in_house"] if row else None
    return out
