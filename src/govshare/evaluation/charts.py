"""Charts drawn on the server as SVG for the PDF report (WeasyPrint runs no JavaScript):
a horizontal bar chart of the ranking and a line chart of a trend."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

FONT = "Noto Sans CJK SC, sans-serif"
BLUE = "#1f5fa8"
PALETTE = ("#1f5fa8", "#2f9e72", "#c23531", "#e39b23", "#6c5bb8", "#3aa0c8")


def bar_chart(labels: Sequence[str], values: Sequence[float | None], *, width: int = 680) -> str:
    """Horizontal bars, one row per label, values 0–100, the value written at the end."""
    row = 16
    left = 190
    plot = width - left - 50
    height = row * len(labels) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="10">'
    ]
    for tick in range(0, 101, 20):
        x = left + plot * tick / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle" fill="#666">{tick}</text>'
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = i * row
        parts.append(
            f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{escape(label[:18])}</text>'
        )
        if value is None:
            parts.append(f'<text x="{left + 4}" y="{y + 11}" fill="#999">—</text>')
            continue
        w = plot * max(0.0, min(value, 100.0)) / 100
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 5}" fill="{BLUE}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 11}">{value:.2f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    width: int = 680,
    height: int = 220,
) -> str:
    """Lines over the labels (months), y from 0 to 100, a legend on top; a missing
    value breaks its line."""
    left, top, bottom, right = 36, 28, 24, 12
    pw, ph = width - left - right, height - top - bottom
    n = max(1, len(labels) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + pw * (i / n if len(labels) > 1 else 0.5), top + ph * (1 - min(v, 100) / 100)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="10">'
    ]
    for tick in range(0, 101, 25):
        y = top + ph * (1 - tick / 100)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" fill="#666">{tick}</text>'
        )
    for i, label in enumerate(labels):
        x, _ = xy(i, 0)
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#666">'
            f"{escape(label)}</text>"
        )
    for k, (name, values) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<rect x="{left + k * 130}" y="4" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + k * 130 + 14}" y="13">{escape(name)}</text>'
        )
        segment: list[str] = []
        for i, v in enumerate(values):
            if v is None:
                if len(segment) > 1:
                    parts.append(_polyline(segment, color))
                segment = []
                continue
            x, y = xy(i, v)
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        if len(segment) > 1:
            parts.append(_polyline(segment, color))
    parts.append("</svg>")
    return "".join(parts)


def _polyline(points: list[str], color: str) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="1.5"/>'
    )
