"""The digest chart: spend per provider as bars, success rate as markers on a twin axis, as PNG bytes.

matplotlib's Agg canvas is used directly through the object API (`Figure`, not `pyplot`), so nothing
touches a display or pyplot's global figure registry, and a chart can be drawn in a worker thread.

matplotlib (with numpy) is imported on the first chart, not at start: it is ~40 MB of resident memory
that a bot process needs once a day, for the digest.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from providers.types import MICROS_PER_USD

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_BAR = "#4C78A8"
_LINE = "#E45756"


@dataclass(frozen=True, slots=True)
class ProviderPoint:
    """One provider on the chart: its spend and success rate (0..1, None when it had no attempts)."""

    provider: str
    spend_micros: int
    success_rate: float | None


def spend_and_success_png(points: Sequence[ProviderPoint], title: str = "", dpi: int = 110) -> bytes:
    """Draw the chart; with no data it still returns a valid PNG that says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if title:
        ax.set_title(title, parse_math=False)
    if not points:
        ax.text(0.5, 0.5, "No requests in this period", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        _draw(ax, points)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # A provider name in a script the font lacks is drawn as boxes; not worth a log line each time.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.tight_layout()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _draw(ax: Axes, points: Sequence[ProviderPoint]) -> None:
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    xs = list(range(len(points)))
    spend = [p.spend_micros / MICROS_PER_USD for p in points]
    top = max(max(spend) * 1.2, 1e-6)
    decimals = 2 if top >= 1 else 4  # cents are noise on big days, but all there is on small ones
    ax.bar(xs, spend, color=_BAR, label="Spend, USD")
    for x, usd in zip(xs, spend, strict=True):
        ax.annotate(f"${usd:,.{decimals}f}", (x, usd), ha="center", va="bottom", fontsize="small",
                    xytext=(0, 2), textcoords="offset points")
    ax.set_ylabel("Spend, USD", color=_BAR)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.{decimals}f}"))
    ax.set_ylim(bottom=0, top=top)
    ax.set_xticks(xs)
    crowded = len(points) > 4  # long provider names overlap when there are many bars
    ax.set_xticklabels([p.provider for p in points], rotation=30 if crowded else 0,
                       ha="right" if crowded else "center", parse_math=False)

    # Providers are categories, not a series: markers only, so no line suggests a trend between them.
    twin = ax.twinx()
    rated = [(x, p.success_rate) for x, p in zip(xs, points, strict=True) if p.success_rate is not None]
    twin.plot([x for x, _ in rated], [r for _, r in rated], color=_LINE, marker="D", linestyle="none",
              markersize=7, label="Success rate")
    twin.set_ylim(0, 1.05)
    twin.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    twin.set_ylabel("Success rate", color=_LINE)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.8)
