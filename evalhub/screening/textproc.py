"""The text pipeline: normalise extracted text, split it into the outline chapters and into sentences, and
make the masked keys the copy features compare.

No word segmenter: copy detection compares whole sentences after masking, and near-duplicate detection
uses character shingles, so neither needs words (a segmenter would cost time and add a dependency).
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Iterable, Sequence

import numpy as np

NUMERAL = r"第[一二三四五六七八九十]+[章部分节]|[一二三四五六七八九十]+[、.．]|\d+[、.．]|[（(][一二三四五六七八九十]+[)）]"
_HEADING = re.compile(rf"^\s*({NUMERAL})?\s*(.+?)\s*$")
_PAGE_FURNITURE = re.compile(r"^(第\s*\d+\s*页(\s*[/，,]?\s*共\s*\d+\s*页)?|[-—–]\s*\d+\s*[-—–]|\d+\s*/\s*\d+|page\s*\d+.*)$",
                             re.IGNORECASE)
_TOC_LINE = re.compile(r"(\.{4,}|…{2,}|·{4,}|-{6,})\s*\d+\s*$")
_TOC_TITLE = re.compile(r"^目\s*录$")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_SENTENCE_END = re.compile(r"(?<=[。!?;])|\n")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_NOT_CONTENT = re.compile(r"[\s\W_]+")
NAME_MASK = "〔名〕"
MIN_COPY_CHARS = 12  # shorter sentences ("无。", table cells) say nothing about copying
SHINGLE = 5


def normalise(text: str | None) -> str:
    """NFKC (full-width digits and punctuation to half-width), one space between words, page headers,
    footers and the table of contents dropped; table rows (one per line from the extractor) kept."""
    text = unicodedata.normalize("NFKC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    # A short line that repeats on many pages is a running header or footer, unless it is a heading.
    repeated = {line for line, n in Counter(lines).items() if n >= 3 and len(line) <= 30 and not heading_numeral(line)}
    kept: list[str] = []
    toc: set[str] | None = None  # the contents' entries while we are inside a table of contents
    for line in lines:
        if _TOC_TITLE.match(line):
            toc = set()
            continue
        if _TOC_LINE.search(line):
            continue
        if toc is not None:
            # Contents entries without dot leaders: headings until one repeats, which starts the body.
            if heading_numeral(line) and len(line) <= 40 and line not in toc:
                toc.add(line)
                continue
            toc = None
        if _PAGE_FURNITURE.match(line) or line in repeated:
            continue
        kept.append(line)
    return "\n".join(kept)


def heading_numeral(line: str) -> str | None:
    match = _HEADING.match(line)
    return match.group(1) if match else None


def heading_title(line: str, chapters: Sequence[str]) -> str | None:
    """The outline chapter a heading line names (一、基本情况 / 第一章 基本情况 / 1. 基本情况), else None."""
    if len(line.strip()) > 40:
        return None
    match = _HEADING.match(line)
    if not match:
        return None
    title = match.group(2)
    for chapter in chapters:
        if title.startswith(chapter) and (match.group(1) or title == chapter):
            return chapter
    return None


@dataclass
class Sentence:
    text: str
    chapter: str | None
    position: int
    key: int = 0  # masked copy key; 0 when too short to count


@dataclass
class Chapter:
    title: str
    text: str = ""


@dataclass
class Document:
    """A normalised text split into chapters and sentences, with its masked copy keys."""

    text: str
    chapters: list[Chapter]
    heading_counts: dict[str, int]
    sentences: list[Sentence] = field(default_factory=list)

    @property
    def copy_sentences(self) -> list[Sentence]:
        return [s for s in self.sentences if s.key]

    def chapter_text(self, title: str) -> str:
        return "\n".join(c.text for c in self.chapters if c.title == title)


def mask_names(text: str, names: Iterable[str]) -> str:
    """Replace the report's own names (region, project, budget unit, firm) so a template with the names
    swapped still matches; longest first, so a unit name is not half-masked by its region."""
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        text = text.replace(name, NAME_MASK)
    return text


def copy_key(sentence: str, names: Iterable[str] = ()) -> int:
    """A 63-bit key of the sentence with names masked, every number collapsed and punctuation removed."""
    masked = _DIGITS.sub("0", mask_names(sentence, names))
    content = _NOT_CONTENT.sub("", masked)
    if len(content.replace("0", "").replace(NAME_MASK, "")) < MIN_COPY_CHARS:
        return 0
    return int.from_bytes(blake2b(content.encode("utf-8"), digest_size=8).digest(), "little") >> 1 or 1


def parse(text: str | None, chapters: Sequence[str], names: Iterable[str] = ()) -> Document:
    """Normalise, then split into chapters (text before the first heading is the title block) and into
    sentences carrying their chapter and copy key."""
    names = [n for n in names if n]
    normalised = normalise(text)
    parts: list[Chapter] = [Chapter(title="")]
    counts = {c: 0 for c in chapters}
    for line in normalised.split("\n"):
        title = heading_title(line, chapters) if line else None
        if title is not None:
            counts[title] += 1
            parts.append(Chapter(title=title))
            continue
        parts[-1].text += line + "\n"
    sentences: list[Sentence] = []
    for part in parts:
        for piece in _SENTENCE_END.split(part.text):
            piece = piece.strip()
            if piece:
                sentences.append(Sentence(piece, part.title or None, len(sentences), copy_key(piece, names)))
    return Document(text=normalised, chapters=[p for p in parts if p.title or p.text.strip()],
                    heading_counts=counts, sentences=sentences)


# --- shingles for MinHash ----------------------------------------------------------------------------

_P = np.uint64(1_000_003)


def shingle_hashes(text: str, names: Iterable[str] = (), k: int = SHINGLE) -> np.ndarray:
    """32-bit hashes of the character k-grams of the masked text (digits collapsed, spaces and
    punctuation removed), computed as one vectorised polynomial hash."""
    masked = _NOT_CONTENT.sub("", _DIGITS.sub("0", mask_names(text, names)))
    codes = np.frombuffer(masked.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < k:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = np.zeros(len(codes) - k + 1, dtype=np.uint64)
        for j in range(k):
            h = h * _P + codes[j:len(codes) - k + 1 + j]
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return np.unique(h & np.uint64(0xFFFFFFFF))
