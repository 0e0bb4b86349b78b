"""Hand-made inline SVG charts for the HTML report: no plotting library, no script, no network.

Every mark carries its number in ``data-*`` attributes (and a ``<title>`` the
browser shows as a tooltip), so a test can read back what a chart draws.
Inline SVG in HTML needs no ``xmlns``, which keeps the page free of URLs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
GRID = "#e3e6ea"
INK = "#2b2f36"
MUTED = "#6b7280"


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar: a series name, its count, and its colour."""

    series: str
    label: str
    value: float
    colour: str


@dataclass(frozen=True)
class StackedRow:
    """One horizontal bar: a label, its parts, and the figure printed after it."""

    label: str
    segments: tuple[Segment, ...]
    attrs: dict[str, str]
    note: str


@dataclass(frozen=True)
class Column:
    """One month of a column chart: its stacked parts (bottom first) and its tooltip."""

    month: dt.date
    segments: tuple[Segment, ...]
    attrs: dict[str, str]
    tooltip: str


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {name}="{escape(str(value))}"' for name, value in attrs.items())


def _svg_open(chart_id: str, title: str, width: int, height: int) -> str:
    return (f'<svg id="chart-{chart_id}" data-chart="{chart_id}" role="img" aria-label="{escape(title)}" '
            f'viewBox="0 0 {width} {height}" width="100%" style="{FONT};max-width:{width}px">')


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts: list[str] = []
    for label, colour in items:
        parts.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{x + 17:.1f}" y="{y:.1f}" font-size="12" fill="{INK}">{escape(label)}</text>')
        x += 30 + 7.2 * len(label)
    return parts


def stacked_bars(
    chart_id: str, title: str, rows: Sequence[StackedRow], legend: Sequence[tuple[str, str]], width: int = 1040
) -> str:
    """Horizontal 100% stacked bars, one row per label (each row's parts share its full width)."""
    label_w, note_w, row_h, top = 230, 190, 26, 34
    bar_w = width - label_w - note_w
    height = top + row_h * len(rows) + 8
    out = [
        _svg_open(chart_id, title, width, height),
        f"<title>{escape(title)}</title>",
        *_legend(legend, label_w, 16),
    ]
    for i, row in enumerate(rows):
        y = top + i * row_h
        total = sum(s.value for s in row.segments)
        out.append(f'<g class="bar"{_attrs(row.attrs)}>')
        out.append(
            f'<text x="{label_w - 8}" y="{y + 17}" font-size="13" text-anchor="end" fill="{INK}">'
            f"{escape(_clip(row.label, 30))}</text>"
        )
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="{row_h - 8}" fill="{GRID}"/>')
        x = float(label_w)
        for s in row.segments:
            w = bar_w * s.value / total if total else 0.0
            share = 100 * s.value / total if total else 0.0
            out.append(
                f'<rect x="{x:.2f}" y="{y + 4}" width="{w:.2f}" height="{row_h - 8}" fill="{s.colour}" '
                f'data-series="{s.series}" data-value="{_number(s.value)}">'
                f"<title>{escape(row.label)}: {s.value:,.0f} {escape(s.label)} ({share:.1f}%)</title></rect>"
            )
            x += w
        out.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}" font-size="12" fill="{MUTED}">{escape(row.note)}</text>'
        )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def month_columns(
    chart_id: str,
    title: str,
    columns: Sequence[Column],
    legend: Sequence[tuple[str, str]],
    marker: tuple[dt.date, str] | None = None,
    money: bool = False,
    width: int = 1040,
    height: int = 300,
) -> str:
    """Vertical (stacked) columns, one per month, with a y axis, year labels and an optional marker line."""
    left, right, top, bottom = 64, 16, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(s.value for s in c.segments) for c in columns), default=0.0)
    ticks = nice_ticks(peak)
    scale = plot_h / ticks[-1] if ticks[-1] else 0.0
    step = plot_w / max(len(columns), 1)
    out = [
        _svg_open(chart_id, title, width, height),
        f"<title>{escape(title)}</title>",
        *_legend(legend, left, 16),
    ]
    for tick in ticks:
        y = top + plot_h - tick * scale
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="{MUTED}">'
            f"{compact(tick, money)}</text>"
        )
    every_month = len(columns) <= 18
    for i, column in enumerate(columns):
        x = left + i * step
        out.append(f'<g class="column"{_attrs(column.attrs)}><title>{escape(column.tooltip)}</title>')
        y = top + plot_h
        for s in column.segments:
            h = s.value * scale
            y -= h
            out.append(
                f'<rect x="{x + step * 0.12:.2f}" y="{y:.2f}" width="{step * 0.76:.2f}" height="{h:.2f}" '
                f'fill="{s.colour}" data-series="{s.series}" data-value="{_number(s.value)}"/>'
            )
        out.append("</g>")
        # the first month is labelled unless a January label follows too closely
        if every_month or column.month.month == 1 or (i == 0 and column.month.month <= 9):
            text = column.month.strftime("%b %Y" if every_month or i == 0 else "%Y")
            out.append(
                f'<text x="{x + step / 2:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle" '
                f'fill="{MUTED}">{text}</text>'
            )
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{MUTED}"/>')
    if marker and columns:
        months = [c.month for c in columns]
        day, label = marker
        first = months[0]
        index = (day.year - first.year) * 12 + day.month - first.month
        if 0 <= index <= len(months):
            x = left + (index + (day.day - 1) / 31) * step
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{top + plot_h}" stroke="{INK}" '
                f'stroke-dasharray="4 3"/>'
            )
            anchor, dx = ("end", -4) if x > width - right - 120 else ("start", 4)
            out.append(
                f'<text x="{x + dx:.1f}" y="{top + plot_h + 32}" font-size="11" text-anchor="{anchor}" '
                f'fill="{INK}">{escape(label)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def nice_ticks(peak: float, count: int = 5) -> list[float]:
    """Round axis values from 0 to at least ``peak`` (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if peak <= 0:
        return [0.0, 1.0]
    raw = peak / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [step * i for i in range(math.ceil(peak / step - 1e-9) + 1)]


def compact(value: float, money: bool = False) -> str:
    """A short axis label: 950, 1.5k, 20k, 1.2M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,.0f}" if not money or value == int(value) else f"{value:,.2f}"


def _number(value: float) -> str:
    """A value for a data attribute: exact to 4 decimals, no exponent, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


__all__ = ["Column", "Segment", "StackedRow", "compact", "month_columns", "nice_ticks", "stacked_bars"]
