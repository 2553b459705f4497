"""Formatting cost: Markdown -> Telegram HTML parts on adversarial model output, 1 to 64 KB.

Every edit of a streamed answer re-formats the whole text (TextStreamer calls `split_html` and
`html_to_plain` on it), on the event loop, so a formatter that is quadratic somewhere freezes the bot
once answers grow. Each input below is built to hit one such spot: many unclosed `**`, `~~`, `[` or
backticks, markers nested, all on one long line or over many lines, and one giant "word" whose pieces
switch formatting. Printed per input: µs per KB at each size, the ratio of the 64 KB to the 8 KB cost
per KB (target: at most 10x), and the worst single call at 64 KB (target: at most 20 ms). Figures only,
no asserts.

    .venv/bin/python bench/textfmt.py [--budget 0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.services.textfmt import html_to_plain, split_html  # noqa: E402

SIZES_KB = (1, 2, 4, 8, 16, 32, 64)

# name -> the unit repeated up to the size; each unit opens markup that nothing closes
INPUTS: dict[str, str] = {
    "unclosed **, one line": "**ab ",
    "unclosed ~~, one line": "~~ab ",
    "unclosed [, one line": "[ab ",
    "unclosed [ with ](, one line": "[a](http://x ",
    "backticks, one line": "``a ",
    "nested **~~[_*, one line": "**~~[_*ab ",
    "unclosed markers, many lines": "**a ~~b [c `d _e\n",
    "headings with #s": "# a # # # # # #\n",
    "one word of many runs": "**a**b~~c~~",
    "closed markup, prose": "Some **bold** and _it_ with `code` and [a](https://x.io) ~~old~~.\n",
}


def document(unit: str, kb: int) -> str:
    size = kb * 1024
    return (unit * (size // len(unit) + 1))[:size]


def format_once(text: str) -> None:
    # what one streamed edit costs: the parts, and their plain text to drop empty ones
    for part in split_html(text):
        html_to_plain(part)


def measure(call: Callable[[], None], budget: float) -> tuple[float, float]:
    """Mean and worst seconds per call, repeating until `budget` seconds are spent (at least once)."""
    times: list[float] = []
    started = time.perf_counter()
    while not times or time.perf_counter() - started < budget:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return sum(times) / len(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.2, help="seconds spent per input and size")
    args = parser.parse_args()
    header = "".join(f"{kb:>7} KB" for kb in SIZES_KB)
    print(f"{'µs per KB':<30}{header}  64/8 KB  worst @64 KB")
    worst_overall = 0.0
    for name, unit in INPUTS.items():
        per_kb: list[float] = []
        worst = 0.0
        for kb in SIZES_KB:
            text = document(unit, kb)
            mean, worst = measure(lambda text=text: format_once(text), args.budget)  # type: ignore[misc]
            per_kb.append(mean / kb * 1e6)
        ratio = per_kb[SIZES_KB.index(64)] / per_kb[SIZES_KB.index(8)]
        worst_overall = max(worst_overall, worst)
        cells = "".join(f"{v:>10.0f}" for v in per_kb)
        print(f"{name:<30}{cells}  {ratio:>6.1f}x  {worst * 1e3:>8.1f} ms")
    print(f"worst single 64 KB call: {worst_overall * 1e3:.1f} ms (target <= 20 ms); ratio target <= 10x")


if __name__ == "__main__":
    main()
