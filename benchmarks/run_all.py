"""Run every stage's benchmark, each in its own process, and summarise.

Run from the worktree root::

    .venv/bin/python -m benchmarks.run_all            # full sizes (an hour or more on 2 cores)
    .venv/bin/python -m benchmarks.run_all --quick    # smoke sizes
    .venv/bin/python -m benchmarks.run_all --only snapping scale

Each ``benchmarks/bench_<stage>.py`` writes its own table to
``docs/benchmarks/<stage>.md``; a separate process per stage keeps one stage's peak
memory out of the next one's measurement. Stages whose script is missing on this
branch are listed as skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("network", "snapping", "risk", "routing", "maps", "scale", "calibration")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes")
    ap.add_argument("--only", nargs="+", choices=STAGES, help="run only these stages")
    args = ap.parse_args()
    rows = []
    for stage in args.only or STAGES:
        script = HERE / f"bench_{stage}.py"
        if not script.exists():
            rows.append((stage, "skipped (no script on this branch)", 0.0))
            continue
        cmd = [sys.executable, "-m", f"benchmarks.bench_{stage}"]
        if args.quick:
            cmd.append("--quick")
        print(f"== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE.parent)
        rows.append(
            (stage, "ok" if code == 0 else f"failed (exit {code})", time.perf_counter() - t0)
        )
    print("\n| stage | result | wall s | table |\n|---|---|---:|---|")
    for stage, result, seconds in rows:
        print(f"| {stage} | {result} | {seconds:.0f} | docs/benchmarks/{stage}.md |")
    return 0 if all(r[1] == "ok" or r[1].startswith("skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
