"""Bar-chart geometry for the reports page: numbers only; `agent/_report_charts.html` draws
the SVG (as web/charts.py does for the system page's line charts)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tekudasai.web.charts import CHART_COLOURS, nice_max

WIDTH = 1000
HEIGHT = 260
PAD_L, PAD_R, PAD_T, PAD_B = 60, 12, 34, 28


def count_axis(value: float) -> int:
    """The axis top for counts: its quarters (the grid lines) are whole numbers."""
    top = max(nice_max(value), 4)
    return int(math.ceil(top / 4) * 4)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # which series (colour and pattern)
    label: str  # what a pointer shows: "2026-03-02: 4 created"


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    hatched: bool  # drawn with stripes: the series differ by more than colour
    legend_x: float


@dataclass(frozen=True)
class BarChart:
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_L
    right: int = WIDTH - PAD_R
    bottom: int = HEIGHT - PAD_B
    grid: list[tuple[float, str]] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    first: str = ""
    last: str = ""

    @property
    def empty(self) -> bool:
        return not any(bar.height > 0 for bar in self.bars)


def volume_chart(days: Sequence[dict[str, object]], *, title: str) -> BarChart:
    """Per day, a bar of tickets created and a (striped) bar of tickets resolved side by side."""
    names = (("created", "Created"), ("resolved", "Resolved"))
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    top = count_axis(max((int(str(d[k])) for d in days for k, _ in names), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.4, 0.5)
    bars = []
    for n, day in enumerate(days):
        for index, (key, label) in enumerate(names):
            value = int(str(day[key]))
            height = round(value / top * plot_h, 1)
            bars.append(
                Bar(
                    x=round(PAD_L + n * slot + slot * 0.1 + index * bar_w, 1),
                    y=round(PAD_T + plot_h - height, 1),
                    width=round(bar_w, 2),
                    height=height,
                    series=index,
                    label=f"{day['date']}: {value} {label.lower()}",
                )
            )
    total_c = sum(int(str(d["created"])) for d in days)
    total_r = sum(int(str(d["resolved"])) for d in days)
    return BarChart(
        title=title,
        description=(
            f"{len(days)} days from {days[0]['date']} to {days[-1]['date']}: "
            f"{total_c} tickets created and {total_r} resolved."
            if days
            else "No days."
        ),
        grid=[(round(PAD_T + plot_h - plot_h * i / 4, 1), f"{top * i / 4:,.0f}") for i in range(5)],
        bars=bars,
        series=[
            Series(label, CHART_COLOURS[index * 3], index == 1, PAD_L + plot_w - 230 + 120 * index)
            for index, (_, label) in enumerate(names)
        ],
        first=str(days[0]["date"]) if days else "",
        last=str(days[-1]["date"]) if days else "",
    )


ROW_W, ROW_LEFT = 640, 170  # narrower than the volume chart: its text stays legible on phones


@dataclass(frozen=True)
class Row:
    label: str
    value_text: str
    y: float
    width: float  # of the bar
    series: int


@dataclass(frozen=True)
class RowChart:
    """Horizontal bars, one per labelled row, each with its value written at its end."""

    title: str
    description: str
    width: int = ROW_W
    height: int = 0
    left: int = ROW_LEFT
    rows: list[Row] = field(default_factory=list)
    colours: tuple[str, ...] = CHART_COLOURS

    @property
    def empty(self) -> bool:
        return not self.rows


ROW_H = 34


def row_chart(
    values: Sequence[tuple[str, float | None]],
    *,
    title: str,
    fmt: Callable[[float], str],
    top: float | None = None,
) -> RowChart:
    """`values`: (label, value or None); None rows are written "no data" without a bar."""
    present = [v for _, v in values if v is not None]
    scale = top if top is not None else nice_max(max(present, default=0))
    plot_w = ROW_W - ROW_LEFT - 130
    rows = [
        Row(
            label=label,
            value_text=fmt(value) if value is not None else "no data",
            y=PAD_T + n * ROW_H,
            width=round(value / scale * plot_w, 1) if value else 0,
            series=n,
        )
        for n, (label, value) in enumerate(values)
    ]
    description = "; ".join(f"{r.label}: {r.value_text}" for r in rows)
    return RowChart(
        title=title,
        description=description,
        height=PAD_T + len(rows) * ROW_H + 6,
        rows=rows if present else [],
    )


def duration(minutes: float) -> str:
    """Minutes as people read them: 45 min, 3 h 20 min, 2 d 4 h."""
    whole = round(minutes)
    if whole < 60:
        return f"{minutes:.0f} min" if minutes >= 1 else f"{minutes * 60:.0f} s"
    hours, mins = divmod(whole, 60)
    if hours < 48:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.1f} %"
