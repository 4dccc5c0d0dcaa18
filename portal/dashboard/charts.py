"""Bar charts drawn on the server as SVG: succeeded and failed runs stacked per bucket.

No JavaScript and no inline style (the Content Security Policy forbids both): colours come
from classes in uikit/uikit.css, sizes from SVG attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD_BOTTOM, PAD_TOP = 600, 140, 18, 8


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    label: str
    title: str
    show_label: bool


def stacked_bars(buckets: list[dict], *, label_every: int) -> dict:
    """Geometry for ``buckets`` (``{"label", "title", "succeeded", "failed"}``, oldest
    first): the bars, the y-axis maximum and the chart's size."""
    top = max([b["succeeded"] + b["failed"] for b in buckets] + [1])
    plot = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = WIDTH / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        ok_h = plot * bucket["succeeded"] / top
        failed_h = plot * bucket["failed"] / top
        base = HEIGHT - PAD_BOTTOM
        bars.append(
            Bar(
                x=round(index * step + step * 0.15, 2),
                width=round(step * 0.7, 2),
                ok_y=round(base - ok_h, 2),
                ok_height=round(ok_h, 2),
                failed_y=round(base - ok_h - failed_h, 2),
                failed_height=round(failed_h, 2),
                label=bucket["label"],
                title=bucket["title"],
                show_label=index % label_every == 0,
            )
        )
    return {
        "bars": bars,
        "max": top,
        "width": WIDTH,
        "height": HEIGHT,
        "baseline": HEIGHT - PAD_BOTTOM,
        "label_y": HEIGHT - 4,
    }
