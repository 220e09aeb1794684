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

from evalhub.core.outline import divides, heading_numeral, heading_title, heading_titles, simplified  # noqa: F401  (chapters)

_PAGE_FURNITURE = re.compile(r"^(第\s*\d+\s*页(\s*[/，,]?\s*共\s*\d+\s*页)?|[-—–]\s*\d+\s*[-—–]|\d+\s*/\s*\d+|page\s*\d+.*)$",
                             re.IGNORECASE)
_TOC_LINE = re.compile(r"(\.{4,}|…{2,}|·{4,}|-{6,})\s*\d+\s*$")
_TOC_TITLE = re.compile(r"^目\s*录$")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|\n")
_CJK = r"\u3000-\u303f\u4e00-\u9fff\uff08\uff09\u201c\u201d"
# NFKC turns the Chinese comma, colon and brackets into ASCII; put them back beside Chinese text so
# passages read as the firm wrote them.
_WIDE = {",": "，", ";": "；", ":": "：", "!": "！", "?": "？", "(": "（", ")": "）"}
_NARROWED = re.compile(rf"(?<=[{_CJK}])[,;:!?()]|[,;:!?(](?=[{_CJK}])")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_NOT_CONTENT = re.compile(r"[\s\W_]+")
NAME_MASK = "〔名〕"
MIN_COPY_CHARS = 12  # shorter sentences ("无。", table cells) say nothing about copying
SHINGLE = 5


_KEPT_WIDE = "，；：！？（）"
_FULL_WIDTH = re.compile(r"[\u3000\uff02-\uff07\uff0a\uff0b\uff0d-\uff19\uff1c-\uff1e\uff20-\uff5e]")
_KEPT = re.compile(f"[{_KEPT_WIDE}]")


def _half(match: re.Match) -> str:
    ch = match.group(0)
    return " " if ch == "\u3000" else chr(ord(ch) - 0xFEE0)


def _nfkc(text: str) -> str:
    """NFKC with the Chinese punctuation kept. Fast path: full-width digits, letters and signs are mapped
    directly; the full normalisation (about 1 ms for a report) runs only when anything else needs it."""
    text = _FULL_WIDTH.sub(_half, text)
    if unicodedata.is_normalized("NFKC", _KEPT.sub("", text)):
        return text
    return _NARROWED.sub(lambda m: _WIDE[m.group(0)], unicodedata.normalize("NFKC", text))


# Web-page chrome around a published report (索引号, 发布机构, 浏览量 …): metadata lines, not the report's
# words. Left in, they count as "numbers" and "entities" and make every copied page look specific.
_CHROME = re.compile(r"索\s*引\s*号|发布机构|浏览量|浏览次数|阅读次数|点击数|访问量|访问次数|【\s*字\s*体|选择阅读字号|打印本页|"
                     r"关闭本页|关闭窗口|当前位置|现在的位置|组配分类|体裁分类|统一登记号|无障碍|适老化|长者模式|分享到|"
                     r"加入收藏|政府信箱|今天是[:：]|归档时间|上传时间|下载积分|文档编号|版权说明|本文档由用户|我要投稿|责任编辑|"
                     # field labels that are ordinary words inside a sentence: chrome only as "label:" or "label |"
                     r"(?:发布日期|发布时间|时效性|主题分类|信息分类|内容分类|公开目录|公开方式|公开范围|公开形式|公开责任部门|"
                     r"有效性|成文日期|生效日期|废止日期|废止时间|发文字号|发文编号|信息来源|文章来源|(?<![金据])来源|字号)"
                     r"\s*(?:[:：|\]】]|$)")
_CHROME_BULLET = re.compile(r"^[•·\-|\[\]【】\s]+$")


def is_chrome(line: str) -> bool:
    """A line of page chrome: short, names a metadata field and is not a sentence of the report."""
    if _CHROME_BULLET.match(line):
        return True
    return len(line) <= 160 and "。" not in line and bool(_CHROME.search(line))


def strip_chrome(text: str | None) -> str:
    """The text without its page-chrome lines (see ``is_chrome``)."""
    return "\n".join(line for line in (text or "").split("\n") if not is_chrome(line.strip()))


def normalise(text: str | None) -> str:
    """NFKC (full-width digits, letters and % to half-width; Chinese punctuation kept), traditional characters to
    simplified, one space between words, page headers, footers, page chrome (索引号, 发布机构, 浏览量 …) and the table
    of contents dropped; table rows (one per line from the extractor) kept."""
    text = simplified(_nfkc(text or "")).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.strip() for line in _SPACES.sub(" ", text).split("\n")]
    lines = [line for line in lines if line and not is_chrome(line)]
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


@dataclass(slots=True)
class Sentence:
    text: str
    chapter: str | None
    position: int
    key: int = 0  # masked copy key; 0 when too short to count


@dataclass
class Chapter:
    title: str
    text: str = ""
    # the other chapters its heading also named (五、主要经验及做法、存在的问题及原因分析): its text is theirs too
    also: tuple[str, ...] = ()


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
        return "\n".join(c.text for c in self.chapters if c.title == title or title in c.also)


class NameMask:
    """Replaces the report's own names (region, project, budget unit, firm) so a template with the names
    swapped still matches; longest name first, so a unit name is not half-masked by its region's name."""

    def __init__(self, names: Iterable[str]):
        self.names = sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for name in self.names:  # a handful of names: plain replace beats compiling a pattern per report
            text = text.replace(name, NAME_MASK)
        return text


def mask_names(text: str, names: Iterable[str]) -> str:
    return NameMask(names)(text)


_NOT_CONTENT_KEEP_ENDS = re.compile(r"[^\w。！？；!?;\n]+|_")
_ENDS = "。！？；!?;"
_MASK_CORE = NAME_MASK.strip("〔〕")


def _key(content: str) -> int:
    """``content``: a masked sentence with numbers collapsed and only its end punctuation left."""
    content = content.rstrip(_ENDS)
    if len(content) - content.count("0") - 2 * content.count(_MASK_CORE) < MIN_COPY_CHARS:
        return 0
    return int.from_bytes(blake2b(content.encode("utf-8"), digest_size=8).digest(), "little") >> 1 or 1


def _content(masked: str) -> str:
    return _NOT_CONTENT_KEEP_ENDS.sub("", _DIGITS.sub("0", masked))


def copy_key(sentence: str, names: Iterable[str] = ()) -> int:
    """A 63-bit key of the sentence with names masked, every number collapsed and punctuation removed."""
    return _key(_content(mask_names(sentence, names)))


def parse(text: str | None, chapters: Sequence[str], names: Iterable[str] = ()) -> Document:
    """Normalise, then split into chapters (text before the first heading is the title block) and into
    sentences carrying their chapter and copy key."""
    mask = NameMask(names)
    normalised = normalise(text)
    parts: list[Chapter] = [Chapter(title="")]
    counts = {c: 0 for c in chapters}
    lines: list[str] = []
    joined: list[str] = []  # the chapters the current heading named, when it named several
    for line in normalised.split("\n"):
        titles = heading_titles(line, chapters) if line else []
        if titles:
            parts[-1].text = "\n".join(lines) + ("\n" if lines else "")
            lines = []
            if divides(line, titles, joined):  # (二)存在的问题及原因分析 under the joined heading: not counted again
                parts.append(Chapter(title=titles[-1]))
                continue
            for title in titles:
                counts[title] += 1
            joined = titles if len(titles) > 1 else []
            # A joined heading's sentences go to its last chapter (the reference outline puts the problems after the
            # experience), its text to each chapter it names.
            parts.append(Chapter(title=titles[-1], also=tuple(titles[:-1])))
            continue
        lines.append(line)
    parts[-1].text = "\n".join(lines) + ("\n" if lines else "")
    sentences: list[Sentence] = []
    for part in parts:
        pieces = _SENTENCE_END.split(part.text)
        # Mask, collapse numbers and drop punctuation once per chapter, not per sentence; none of it touches
        # the sentence ends, so the pieces line up with the original ones.
        masked = _SENTENCE_END.split(_content(mask(part.text)))
        if len(masked) != len(pieces):
            masked = [_content(mask(p)) for p in pieces]
        for piece, masked_piece in zip(pieces, masked):
            piece = piece.strip()
            if piece:
                sentences.append(Sentence(piece, part.title or None, len(sentences), _key(masked_piece)))
    return Document(text=normalised, chapters=[p for p in parts if p.title or p.text.strip()],
                    heading_counts=counts, sentences=sentences)


# --- shingles for MinHash ----------------------------------------------------------------------------

_P = np.uint64(1_000_003)


def shingle_hashes(text: str, names: "Iterable[str] | NameMask" = (), k: int = SHINGLE) -> np.ndarray:
    """32-bit hashes of the character k-grams of the masked text (digits collapsed, spaces and
    punctuation removed), computed as one vectorised polynomial hash."""
    masked = _NOT_CONTENT.sub("", _DIGITS.sub("0", names(text) if isinstance(names, NameMask) else mask_names(text, names)))
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
    return h & np.uint64(0xFFFFFFFF)  # repeats are harmless: MinHash keeps minima


# --- whole report or fragment --------------------------------------------------------------------------

TOP_HEADING = re.compile(r"^\s*(第[一二三四五六七八九十]+[章部分]|[一二三四五六七八九十]+[、.．])\s*(\S.{0,38})$")
WHOLE_MIN_CHARS = 1500  # a whole report is thousands of characters; a conclusion or a problems section is hundreds
WHOLE_MIN_CHAPTERS = 3  # of the bureau's configured outline chapters
WHOLE_MIN_TOP_HEADINGS = 4  # any top-level headings (一、二、三、四、) when the outline is not the bureau's


def content_chars(text: str) -> int:
    return len(re.sub(r"\s", "", text))


def top_headings(text: str) -> list[str]:
    """Distinct top-level headings (一、… / 第一章 …) in order of first appearance."""
    seen: dict[str, None] = {}
    for line in text.split("\n"):
        match = TOP_HEADING.match(line)
        if match:
            seen.setdefault(match.group(2).strip(), None)
    return list(seen)


def detect_kind(doc: "Document") -> str:
    """"report" when the text looks like a whole report (long enough, with most of an outline), else "fragment".
    Decided from the text alone, so an excerpt quoting "一、基本情况" is not judged as a report missing seven
    chapters."""
    if content_chars(doc.text) < WHOLE_MIN_CHARS:
        return "fragment"
    matched = sum(1 for n in doc.heading_counts.values() if n)
    if matched >= WHOLE_MIN_CHAPTERS or len(top_headings(doc.text)) >= WHOLE_MIN_TOP_HEADINGS:
        return "report"
    return "fragment"
