"""The prefecture's county chart, drawn server-side as inline SVG: no script, no CDN, the page's own fonts
(the CSP allows neither remote scripts nor inline styles; SVG presentation attributes are neither)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

FONT = "WenQuanYi Zen Hei, Noto Sans CJK SC, Microsoft YaHei, sans-serif"
ROW = 26
LABEL = 110
BAR = 220
GAP = 70


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    return float(value) if isinstance(value, (int, float, Decimal)) else 0.0


def county_chart_svg(counties: list[dict]) -> Markup:
    """Two bar charts side by side, one row per county: the rectification rate (%) and the budget reduced
    (万元) — the completion figures of the county table. Empty when there is no county."""
    if not counties:
        return Markup("")
    rates = [_number(c.get("rate")) for c in counties]
    reduced = [_number(c.get("reduced")) / 10000 for c in counties]
    top = max(reduced) or 1.0
    width = LABEL + BAR + GAP + BAR + 60
    height = 40 + ROW * len(counties) + 10
    x2 = LABEL + BAR + GAP
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12" data-testid="county-chart" '
             f'aria-label="下级财政局整改率和调减预算">',
             '<title>下级财政局整改率（%）和调减预算（万元）</title>',
             f'<text x="{LABEL}" y="16" font-weight="bold">整改率（%）</text>',
             f'<text x="{x2}" y="16" font-weight="bold">调减预算（万元）</text>']
    for n, (county, rate, cut) in enumerate(zip(counties, rates, reduced)):
        y = 30 + n * ROW
        name = escape(county["bureau"].short_name)
        w1 = BAR * min(max(rate, 0.0), 100.0) / 100
        w2 = BAR * max(cut, 0.0) / top
        shown_rate = "—" if county.get("rate") is None else f"{rate:g}"
        parts += [f'<text x="{LABEL - 6}" y="{y + 14}" text-anchor="end">{name}</text>',
                  f'<rect x="{LABEL}" y="{y}" width="{BAR}" height="18" fill="#eef1f4"/>',
                  f'<rect x="{LABEL}" y="{y}" width="{w1:.1f}" height="18" fill="#2e7d32"/>',
                  f'<text x="{LABEL + w1 + 4:.1f}" y="{y + 14}">{shown_rate}</text>',
                  f'<rect x="{x2}" y="{y}" width="{BAR}" height="18" fill="#eef1f4"/>',
                  f'<rect x="{x2}" y="{y}" width="{w2:.1f}" height="18" fill="#1565c0"/>',
                  f'<text x="{x2 + w2 + 4:.1f}" y="{y + 14}">{cut:,.2f}</text>']
    parts.append("</svg>")
    return Markup("".join(parts))
