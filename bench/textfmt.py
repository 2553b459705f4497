"""Formatting cost: Markdown -> Telegram HTML messages on adversarial model output, 1 to 64 KB.

Two figures per input family, each the median of several runs:
- one-shot: µs per KB of `split_html` plus `html_to_plain` on each part (what the final delivery of a
  whole answer costs) at 1..64 KB, and the ratio of the 64 KB to the 8 KB cost per KB (linear is 1x);
- streamed: a 64 KB answer fed in ~100-character deltas through `TextStreamer.layout`, the synchronous
  formatting each edit of a streamed answer runs on the event loop; the worst single edit in ms.
The heap is set up as the bot's is: the whole app imported, then `freeze_startup_heap()` (else a full
garbage collection walks every start-up object, a 60-75 ms pause that lands on some edit).
Figures only, no asserts.

    .venv/bin/python bench/textfmt.py [--runs 5] [--chunk 100] [--stream-kb 64] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.services.delivery import TextStreamer  # noqa: E402
from bot.services.textfmt import html_to_plain, split_html  # noqa: E402

SIZES_KB = (1, 2, 4, 8, 16, 32, 64)

# name -> the unit repeated up to the size; most open markup that nothing closes
INPUTS: dict[str, str] = {
    "unclosed **, one line": "**ab ",
    "unclosed ~~, one line": "~~ab ",
    "unclosed [, one line": "[ab ",
    "unclosed [ with ](, one line": "[a](http://x ",
    "backticks, one line": "``a ",
    "nested **~~[_*, one line": "**~~[_*ab ",
    "nested lists, unclosed": "- **item `x\n  - ~~sub [y\n    - _deep *z\n",
    "emoji, surrogates, one line": "😀**é😀 ~~ab😀 ",
    "code fence left open": "```py\nx = '**a** <b> & ~~c'  # [d\n",
    "``` on one line": "```a ",
    "headings with #s": "# a # # # # # #\n",
    "one word of many runs": "**a**b~~c~~",
    "plain prose": "The quick brown fox jumps over the lazy dog, again and again.\n",
    "closed markup, prose": "Some **bold** and _it_ with `code` and [a](https://x.io) ~~old~~.\n",
}


def document(unit: str, kb: int) -> str:
    size = kb * 1024
    return (unit * (size // len(unit) + 1))[:size]


def one_shot(text: str) -> float:
    t0 = time.perf_counter()
    for part in split_html(text):
        html_to_plain(part)
    return time.perf_counter() - t0


def worst_edit(text: str, chunk: int) -> float:
    """The longest single `layout` call while `text` arrives `chunk` characters at a time."""
    bot: Any = None  # layout never talks to Telegram
    streamer = TextStreamer(bot, 0)
    worst = 0.0
    for end in [*range(chunk, len(text), chunk), len(text)]:
        t0 = time.perf_counter()
        streamer.layout(text[:end])
        worst = max(worst, time.perf_counter() - t0)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure; the median is printed")
    parser.add_argument("--chunk", type=int, default=100, help="characters per streamed delta")
    parser.add_argument("--stream-kb", type=int, default=64, help="size of the streamed answer")
    parser.add_argument("--only", default="", help="only the families whose name holds this")
    args = parser.parse_args()
    import bot.app  # noqa: F401  (the bot's heap: everything it imports)
    from bot.core import freeze_startup_heap

    freeze_startup_heap()
    header = "".join(f"{kb:>6} KB" for kb in SIZES_KB)
    print(f"{'one-shot µs per KB':<30}{header}  64/8 KB  stream worst edit")
    worst_all, ratio_all = 0.0, 0.0
    for name, unit in INPUTS.items():
        if args.only not in name:
            continue
        per_kb = [statistics.median(one_shot(document(unit, kb)) for _ in range(args.runs)) / kb * 1e6
                  for kb in SIZES_KB]
        ratio = per_kb[SIZES_KB.index(64)] / per_kb[SIZES_KB.index(8)]
        streamed = document(unit, args.stream_kb)
        worst = statistics.median(worst_edit(streamed, args.chunk) for _ in range(max(1, args.runs // 2)))
        worst_all, ratio_all = max(worst_all, worst), max(ratio_all, ratio)
        cells = "".join(f"{v:>9.0f}" for v in per_kb)
        print(f"{name:<30}{cells}  {ratio:>6.1f}x  {worst * 1e3:>9.2f} ms", flush=True)
    print(f"largest 64/8 KB ratio: {ratio_all:.1f}x (target <= 10x); "
          f"worst streamed edit at {args.stream_kb} KB: {worst_all * 1e3:.2f} ms (target <= 20 ms)")


if __name__ == "__main__":
    main()
