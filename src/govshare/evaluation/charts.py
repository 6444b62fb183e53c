"""Charts drawn on the server as SVG for the PDF report (WeasyPrint runs no JavaScript):
the line chart of a department's trend. (The ranking's bars are CSS in its table.)"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

FONT = "Noto Sans CJK SC, sans-serif"
PALETTE = ("#1f5fa8", "#2f9e72", "#c23531", "#e39b23", "#6c5bb8", "#3aa0c8")


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
