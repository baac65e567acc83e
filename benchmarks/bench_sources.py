"""Reading 1M incident rows from three files with merging, against plain pandas.read_csv.

Three synthetic files with the real formats' columns (ACLED export, UCDP GED, a
KoBo field log with geopoints and time-zoned dates) report events whose truth is
known: each event is reported by one to three of them, up to ~700 m and one day
apart. ``convoyrisk.read_sources`` reads, checks and merges them; the peer is
``pandas.read_csv`` of the same three files (no checks, no merging). Each runs in
its own child process, so peak RSS (``ru_maxrss``) is its own.

Usage::

    .venv/bin/python -m benchmarks.bench_sources            # 1,000,000 rows
    .venv/bin/python -m benchmarks.bench_sources --quick    # 30,000 rows
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from convoyrisk.incidents import ACLED_COLUMNS, GED_COLUMNS

ACLED = list(ACLED_COLUMNS)
GED = list(GED_COLUMNS)
SHARE = {"acled": 0.40, "ged": 0.25, "field": 0.35}  # of the rows
EVENTS_PER_ROW = 0.7  # true events per report: most events are reported by one or two files


def write_files(n_rows: int, folder: Path, seed: int = 7) -> tuple[list[Path], int, int]:
    """Three files of `n_rows` reports in all; the number of true events and of duplicates."""
    rng = np.random.default_rng(seed)
    n_events = int(n_rows * EVENTS_PER_ROW)
    lat = rng.uniform(14.0, 20.0, n_events)
    lon = rng.uniform(-4.0, 4.0, n_events)
    day = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1826, n_events), unit="D")
    ied = rng.random(n_events) < 0.6
    paths = []
    reports = np.zeros(n_events, dtype=np.int64)
    for name, share in SHARE.items():
        k = int(n_rows * share)
        ev = np.sort(rng.choice(n_events, size=k, replace=False))
        reports[ev] += 1
        # up to 500 m east and north (about 700 m), and up to a day late
        la = lat[ev] + rng.uniform(-500, 500, k) / 111_320
        lo = lon[ev] + rng.uniform(-500, 500, k) / (111_320 * np.cos(np.radians(lat[ev])))
        when = day[ev] + pd.to_timedelta(rng.integers(0, 2, k), unit="D")
        if name == "acled":
            f = pd.DataFrame(dict.fromkeys(ACLED, ""), index=range(k))
            f["event_id_cnty"] = [f"MLI{i}" for i in ev]
            f["event_date"] = when.strftime("%Y-%m-%d")
            f["time_precision"] = "1"
            f["event_type"] = np.where(ied[ev], "Explosions/Remote violence", "Battles")
            f["sub_event_type"] = np.where(ied[ev], "Remote explosive/landmine/IED", "Armed clash")
            f["country"] = "Mali"
            f["latitude"], f["longitude"] = la.round(5), lo.round(5)
            f["geo_precision"] = rng.integers(1, 3, k)
            f["source"] = "Synthetic wire"
            f["notes"] = "On this date, a synthetic IED struck a synthetic convoy; " * 4
            f["fatalities"] = rng.integers(0, 5, k)
            f["timestamp"] = 1_700_000_000
        elif name == "ged":
            f = pd.DataFrame(dict.fromkeys(GED, ""), index=range(k))
            f["id"] = ev
            f["type_of_violence"] = rng.integers(1, 4, k)
            f["where_prec"] = rng.integers(1, 3, k)
            f["latitude"], f["longitude"] = la.round(5), lo.round(5)
            f["date_prec"] = 1
            f["date_start"] = when.strftime("%Y-%m-%d 00:00:00.000")
            f["date_end"] = f["date_start"]
            f["best"] = rng.integers(0, 5, k)
            f["source_original"] = "Synthetic paper"
            f["country"], f["country_id"] = "Mali", 432
        else:
            f = pd.DataFrame(
                {
                    "start": (when + pd.Timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M:%S+01:00"),
                    "what": np.where(ied[ev], "IED", "ambush"),
                    "gps": [
                        f"{a:.6f} {o:.6f} 300 {acc}"
                        for a, o, acc in zip(la, lo, rng.integers(3, 30, k), strict=True)
                    ],
                    "injured": rng.integers(0, 4, k),
                    "reporter": "Field team",
                }
            )
        path = folder / f"{name}.csv"
        f.to_csv(path, index=False)
        paths.append(path)
    duplicates = int((reports[reports > 0] - 1).sum())
    return paths, int((reports > 0).sum()), duplicates


OURS = """
import json, resource, sys, time
from convoyrisk.sources import read_sources
t = time.perf_counter()
table = read_sources(sys.argv[1:], columns={"date": "start", "type": "what"})
s = time.perf_counter() - t
print(json.dumps({"s": s, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows": table.n_input, "incidents": len(table.incidents),
                  "merged": int((table.rejects["kind"] == "merged").sum()),
                  "rejected": int((table.rejects["kind"] != "merged").sum())}))
"""

PEER = """
import json, resource, sys, time
import pandas as pd
t = time.perf_counter()
frames = [pd.read_csv(p) for p in sys.argv[1:]]
rows = sum(len(f) for f in frames)
s = time.perf_counter() - t
print(json.dumps({"s": s, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows": rows}))
"""

BASE = """
import json, resource
import convoyrisk.sources
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, paths: list[Path]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30,000 rows (a smoke run)")
    parser.add_argument("--rows", type=int, default=None, help="rows in all (default 1,000,000)")
    args = parser.parse_args()
    n = args.rows or (30_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths, events, duplicates = write_files(n, Path(tmp))
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"{n:,} rows in 3 files ({size:.0f} MB: "
            + ", ".join(f"{p.stem} {p.stat().st_size / 1e6:.0f} MB" for p in paths)
            + f"), {events:,} true events, {duplicates:,} duplicate reports; "
            f"written in {time.perf_counter() - t:.0f} s"
        )
        base = child(BASE, [])
        peer = child(PEER, paths)
        ours = child(OURS, paths)
    print(
        f"pandas.read_csv x3 (no checks, no merging): {peer['s']:.1f} s, "
        f"peak RSS {peer['rss']:.0f} MB"
    )
    print(
        f"convoyrisk.read_sources (checks, geopoints, time zones, merging): {ours['s']:.1f} s, "
        f"peak RSS {ours['rss']:.0f} MB (of which {base['rss']:.0f} MB is the imports)"
    )
    print(
        f"  {ours['rows']:,.0f} rows -> {ours['incidents']:,.0f} incidents, "
        f"{ours['merged']:,.0f} merged, {ours['rejected']:,.0f} rejected/excluded "
        f"(truth: {events:,} events, {duplicates:,} duplicates)"
    )


if __name__ == "__main__":
    main()
