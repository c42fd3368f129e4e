"""Interleaved A/B runs of ``make bench`` on two checkouts: is a change slower anywhere?

    python -m benchmarks.ab OLD_TREE NEW_TREE [--rounds 3] [--sections 1234]

Each tree needs its own ``.venv`` (``make .venv/.installed`` there, plus ``pip install -e
'.[bench]'``). The suite runs OLD, NEW, NEW, OLD, OLD, NEW ... so that load from elsewhere
on the machine, and going second, hit both alike; every row's medians are taken over the
rounds, and the table prints new/old with rows more than 3% slower (throughput: less) marked.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

SLOWER = 1.03
UNITS = {"ms": 1.0, "us": 1e-3, "s": 1000.0}


def run_suite(tree: Path, sections: str) -> dict[tuple[str, str, str], float]:
    """One ``python -m benchmarks`` run: (section, case, measure) -> the median it printed."""
    out = subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "-m", "benchmarks", "--sections", sections, "--no-profile"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    ).stdout
    rows: dict[tuple[str, str, str], float] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[0][:1].isdigit():
            continue
        match = re.match(r"([0-9.]+)\s*(ms|us|s|req/s|MiB|x)?", cells[3])
        if match:
            value = float(match.group(1)) * UNITS.get(match.group(2) or "", 1.0)
            rows[(cells[0], cells[1], cells[2])] = value
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sections", default="1234")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[tuple[str, str, str], float]]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name in ("old", "new") if r % 2 == 0 else ("new", "old"):  # ABBA: no side always second
            print(f"round {r + 1}: {name}", file=sys.stderr, flush=True)
            runs[name].append(run_suite(getattr(args, name), args.sections))
    keys = [k for k in runs["old"][0] if all(k in run for run in runs["old"] + runs["new"])]
    print("| section | case | measure | old median | new median | new/old |  |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for key in keys:
        old = statistics.median(run[key] for run in runs["old"])
        new = statistics.median(run[key] for run in runs["new"])
        ratio = new / old if old else float("nan")
        higher_is_better = "req/s" in key[2] or key[0].startswith("3")
        slower = (1 / ratio if higher_is_better else ratio) if ratio else 1.0
        worst = max(worst, slower)
        mark = "SLOWER" if slower > SLOWER else ""
        print(f"| {key[0]} | {key[1]} | {key[2]} | {old:.4g} | {new:.4g} | {ratio:.3f} | {mark} |")
    print(f"\nworst row: {worst:.3f}x of the old ({'within' if worst <= SLOWER else 'over'} 3%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
