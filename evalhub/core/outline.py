"""Outline headings of Chinese official documents (一、基本情况 / 第一章 基本情况 / 1. 基本情况 / （一）…).

Used by the review's machine checks (which chapters a report has), the findings drafted from a report and the
screening pipeline (chapter splitting), so it lives below all three — and so does ``simplified``, which each of
them reads a report through first: the three must agree on which chapters a report in traditional characters has.
"""
from __future__ import annotations

import re
from typing import Sequence

NUMERAL = r"第[一二三四五六七八九十]+[章部分节]|[一二三四五六七八九十]+[、.．]|\d+[、.．]|[（(][一二三四五六七八九十]+[)）]"
_HEADING = re.compile(rf"^\s*({NUMERAL})?\s*(.+?)\s*$")


def heading_numeral(line: str) -> str | None:
    match = _HEADING.match(line)
    return match.group(1) if match else None


_HEADING_CHARS = 40  # a heading line naming one chapter is at most this long; naming several, twice this
_JOINER = re.compile(r"^[\s、，,；;和及与暨/]+")
_SUB_NUMERAL = re.compile(r"^(?:[（(]|\d)")
_PUNCTUATION = re.compile(r"[\s\W_]+")


def heading_titles(line: str, chapters: Sequence[str]) -> list[str]:
    """The outline chapters a heading line names, in order: one (一、基本情况 / 第一章 基本情况 / 1. 基本情况) or
    several joined in one heading, as the ministry's reference outline writes its fifth chapter
    (五、主要经验及做法、存在的问题及原因分析); [] for a line that is not such a heading."""
    if len(line.strip()) > 2 * _HEADING_CHARS:
        return []
    match = _HEADING.match(line)
    if not match:
        return []
    title, found = match.group(2), []
    while title:
        # the longest chapter the rest starts with, so a chapter that begins another is not taken for it
        chapter = max((c for c in chapters if c and title.startswith(c) and c not in found), key=len, default=None)
        if chapter is None:
            break
        found.append(chapter)
        rest = title[len(chapter):]
        title = _JOINER.sub("", rest)
        if title == rest:  # no joiner: the heading goes on in words of its own (基本情况概述)
            break
    if not found or not (match.group(1) or match.group(2) == found[0]):
        return []
    if len(found) == 1 and len(line.strip()) > _HEADING_CHARS:  # a sentence that begins with a chapter's name
        return []
    if len(found) > 1:
        # as the reference outline joins them: two chapters next to each other, and nothing after the second but
        # punctuation — not a line listing the outline, nor a sentence naming two chapters, to fake a heading
        order = [chapters.index(c) for c in found]
        if len(found) > 2 or order[1] != order[0] + 1 or _PUNCTUATION.sub("", title):
            return []
    return found


def heading_title(line: str, chapters: Sequence[str]) -> str | None:
    """The (first) outline chapter a heading line names, else None."""
    titles = heading_titles(line, chapters)
    return titles[0] if titles else None


def divides(line: str, titles: Sequence[str], current: Sequence[str]) -> bool:
    """Whether a heading naming ``titles`` is a sub-heading ((二)存在的问题及原因分析 / 2. …) of the current heading
    that joined several chapters, ``current``: it divides that heading's text, it is not a second such chapter."""
    if len(current) < 2 or not set(titles) <= set(current):
        return False
    numeral = heading_numeral(line)
    return bool(numeral and _SUB_NUMERAL.match(numeral))


# Frequent characters of traditional writing that simplified text never uses (each has a simplified form): a text
# holding one is converted whole; the others skip the conversion (about 5 ms for a report, 0.02 ms for the look).
_TRADITIONAL = re.compile("[這們來對說時會發與為國過還學實現點關體當經從問題應該裡開麼樣邊頭讓給長場區機構務員計劃項報資費"
                          "設備總評價績預執標進數據況險]")
_converter = None


def simplified(text: str) -> str:
    """Traditional characters converted to simplified (OpenCC's t2s, phrase-aware: 乾燥 → 干燥, 幹部 → 干部), so a
    report written in traditional characters meets the outline's headings and the feature patterns, which are
    simplified. Its passages are then shown in simplified characters."""
    global _converter
    if not _TRADITIONAL.search(text):
        return text
    if _converter is None:
        from opencc_purepy import OpenCC

        _converter = OpenCC("t2s")
    return _converter.convert(text)
