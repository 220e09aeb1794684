"""Outline headings of Chinese official documents (一、基本情况 / 第一章 基本情况 / 1. 基本情况 / （一）…).

Used by the review's machine checks (which chapters a report has) and by the screening pipeline (chapter
splitting), so it lives below both.
"""
from __future__ import annotations

import re
from typing import Sequence

NUMERAL = r"第[一二三四五六七八九十]+[章部分节]|[一二三四五六七八九十]+[、.．]|\d+[、.．]|[（(][一二三四五六七八九十]+[)）]"
_HEADING = re.compile(rf"^\s*({NUMERAL})?\s*(.+?)\s*$")


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
