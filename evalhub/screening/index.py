"""The stored-report index the copy features look things up in: masked sentence keys → reports, and a
MinHash LSH over character shingles for near-duplicates.

One implementation serves the app (loaded from ``report_screening`` rows and kept per process), the
training command and the benchmark. Postings are compact ``array('i')`` lists of dense report numbers, so
20,000 reports of 8,000 characters fit in a few hundred MB.
"""
from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

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
        found = []
        for number in keep.tolist():
            report = self.reports[number]
            inter = len(np.intersect1d(keys, report.keys, assume_unique=True))
            union = len(keys) + len(report.keys) - inter
            jaccard = inter / union if union else 0.0
            if jaccard >= NEAR_DUPLICATE_JACCARD:
                found.append((number, jaccard))
        return sorted(found, key=lambda x: -x[1])
