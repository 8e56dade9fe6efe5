"""Line-chart geometry for the system page: numbers only; `_charts.html` draws the SVG."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

CHART_COLOURS = ("#2563eb", "#d97706", "#dc2626", "#059669")
WIDTH, HEIGHT = 1000, 240
PAD_L, PAD_R, PAD_T, PAD_B = 70, 12, 24, 28


@dataclass(frozen=True)
class Line:
    name: str
    colour: str
    points: str  # "x,y x,y …" for <polyline points>
    dot: tuple[float, float] | None  # a lone sample is drawn as a dot too
    legend_x: float


@dataclass(frozen=True)
class Chart:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_L
    right: int = WIDTH - PAD_R
    grid: list[tuple[float, str]] = field(default_factory=list)  # (y, label)
    first: str = ""
    last: str = ""
    lines: list[Line] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.lines


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above value (the axis top)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def line_chart(
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    *,
    title: str,
    unit: str = "",
    fmt: Callable[[float], str] | None = None,
) -> Chart:
    """Scale one or more time series into the chart's box."""
    label = fmt or (lambda v: f"{v:,.0f}{unit}")
    points = [p for pts in series.values() for p in pts]
    if not points:
        return Chart(title=title)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    first, last = min(t for t, _ in points), max(t for t, _ in points)
    t0, span = first.timestamp(), max(last.timestamp() - first.timestamp(), 1.0)
    top = nice_max(max(v for _, v in points))

    def x(moment: datetime) -> float:
        return round(PAD_L + (moment.timestamp() - t0) / span * plot_w, 1)

    def y(value: float) -> float:
        return round(PAD_T + plot_h - (value / top) * plot_h, 1)

    lines = []
    for index, (name, pts) in enumerate(series.items()):
        colour = CHART_COLOURS[index % len(CHART_COLOURS)]
        lines.append(
            Line(
                name=name,
                colour=colour,
                points=" ".join(f"{x(t)},{y(v)}" for t, v in pts),
                dot=(x(pts[0][0]), y(pts[0][1])) if len(pts) == 1 else None,
                legend_x=PAD_L + plot_w - 110 * (len(series) - index),
            )
        )
    return Chart(
        title=title,
        grid=[(y(top * i / 4), label(top * i / 4)) for i in range(5)],
        first=f"{first:%Y-%m-%d %H:%M} UTC",
        last=f"{last:%Y-%m-%d %H:%M} UTC",
        lines=lines,
    )
