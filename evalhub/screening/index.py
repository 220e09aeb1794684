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
        self._kind_ids: dict[str, int] = {}
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
        for key in report.keys.tolist():
            bucket = self.postings.get(key)
            if bucket is None:
                self.postings[key] = array("i", (number,))
            else:
                bucket.append(number)
        lsh = self.lsh.get(report.kind)
        if lsh is None:
            lsh = self.lsh[report.kind] = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
        lsh.insert(number, _lean(report.signature))
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
            self.lsh[report.kind].remove(number)
            self.count_by_kind[report.kind] -= 1
        self.generation += 1

    def boilerplate_threshold(self, kind: str) -> int:
        """A sentence found in this many reports is a stock phrase, not a copy of one report."""
        return max(5, self.count_by_kind[kind] // 200)

    def lookup(self, keys: list[int], *, kind: str, firm_id: int | None, engagement_id: int | None,
               object_key: str | None, year: int | None) -> list[Match | None]:
        """For each key, where else it occurs (other versions of the same engagement excluded)."""
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
                match = Match(same_firm=numbers[same].tolist(), other_firms=numbers[~same].tolist(),
                              previous=numbers[previous].tolist(), frequency=len(numbers))
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

    def near_duplicates(self, keys: np.ndarray, sig: np.ndarray, *, kind: str,
                        engagement_id: int | None) -> list[tuple[int, float]]:
        """LSH candidates verified by the exact Jaccard similarity of their sentence keys."""
        lsh = self.lsh.get(kind)
        if lsh is None or not len(keys):
            return []
        found = []
        for number in lsh.query(_lean(sig)):
            report = self.reports[number]
            if report is None or (engagement_id is not None and report.engagement_id == engagement_id):
                continue
            inter = len(np.intersect1d(keys, report.keys, assume_unique=True))
            union = len(keys) + len(report.keys) - inter
            jaccard = inter / union if union else 0.0
            if jaccard >= NEAR_DUPLICATE_JACCARD:
                found.append((number, jaccard))
        return sorted(found, key=lambda x: -x[1])
