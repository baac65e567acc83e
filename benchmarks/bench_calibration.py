"""Benchmark: is the risk model calibrated? Scored against simulated worlds with a known truth.

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_calibration            # 3 seeds per world
    .venv/bin/python -m benchmarks.bench_calibration --quick    # 1 seed, 60 and 600 episodes

The worlds come from :mod:`convoyrisk.simulate`, which shares nothing with the
estimator (no kernel, bandwidth or Empirical Bayes): a log-Gaussian field along
the roads times hot corridors, clustered IED episodes, ACLED-like location
error. Each world runs two years; the model is fitted with
``convoyrisk.score_segments`` (through :func:`convoyrisk.backtest.backtest`) on
the first year and judged

- against the **truth** (:func:`convoyrisk.backtest.calibration_table`): the
  ratio predicted / true rate and the coverage of the interval on the riskiest
  10 % of road and on the rest, and by decile of predicted rate;
- against the **second year's episodes**: PAI at 5 % of the model, raw counts
  and a planar KDE, and expected against observed counts by decile;
- for **extent invariance**: the same incidents scored after adding 1,600 km of
  empty road (a square of 400 km tracks, 1,500 km north, disconnected), and the
  change in rate on the original segments.

Writes docs/benchmarks/calibration.md (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import scipy

import convoyrisk as cr
from convoyrisk.backtest import backtest, calibration_table, flagged_share
from convoyrisk.risk import RiskParams
from convoyrisk.simulate import (
    SimulatedWorld,
    desert_network,
    simulate_world,
    with_empty_roads,
)
from convoyrisk.utils import write_text_atomic

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "calibration.md"
START, SPLIT, DAYS = "2020-01-01", "2021-01-01", 731  # train 366 days, test 365
TRAIN_DAYS, TEST_DAYS = 366, 365
METHODS = ("network_kde", "raw_counts", "planar_kde")


@dataclass
class Config:
    """One kind of world."""

    name: str
    n_train: int  # expected episodes in the training year
    network: dict[str, float | int]


SPARSE: dict[str, float | int] = {}  # desert_network's defaults: 12 towns, 400 km, 2 pieces
DENSE: dict[str, float | int] = {
    "n_towns": 40,
    "extent_km": 300.0,
    "pieces": 1,
    "extra_links": 30,
}


def run_world(cfg: Config, seed: int, *, extent: bool) -> dict[str, object]:
    """Simulate, fit on the first year, judge; returns the numbers of one world."""
    G = desert_network(seed=seed, **cfg.network)  # type: ignore[arg-type]
    world = simulate_world(
        G, n_episodes=cfg.n_train * DAYS / TRAIN_DAYS, days=DAYS, start=START, seed=seed + 100
    )
    snapped = cr.snap_incidents(G, world.incidents)
    params = RiskParams()
    t = time.perf_counter()
    bt = backtest(
        G, snapped, SPLIT, params=params, horizon_days=TEST_DAYS, group_column="episode_id"
    )
    seconds = time.perf_counter() - t
    segs = bt.risk.segments
    length = segs["length_m"].to_numpy(float)
    truth = world.true_rate(segs)
    cal = calibration_table(
        segs["rate"], segs["rate_low"], segs["rate_high"], truth, length
    ).set_index("group")
    pai = bt.table[bt.table["coverage"] == 0.05].set_index("method")["pai"]
    true_pai = {m: flagged_share(bt.scores[m], length, truth * length, 0.05)[1] for m in METHODS}
    train_eps = world.episodes["date"] < pd.Timestamp(SPLIT)
    out: dict[str, object] = {
        "config": cfg.name,
        "seed": seed,
        "km": float(length.sum() / 1000),
        "train_episodes": int(train_eps.sum()),
        "train_rows": int(world.incidents["episode_id"].isin(np.flatnonzero(train_eps)).sum()),
        "test_episodes": bt.n_test,
        "seconds": seconds,
        "top_ratio": cal.loc["top 10% of true rate", "ratio"],
        "top_coverage": cal.loc["top 10% of true rate", "coverage"],
        "rest_ratio": cal.loc["rest", "ratio"],
        "rest_coverage": cal.loc["rest", "coverage"],
        "all_ratio": cal.loc["all", "ratio"],
        "all_coverage": cal.loc["all", "coverage"],
        "decile_ratio": cal.loc[[str(b) for b in range(1, 11) if str(b) in cal.index], "ratio"],
        "heldout_ratio": bt.calibration.set_index("group")["ratio"],
        "heldout_inside_all": bt.interval_coverage["all"],
        "heldout_inside_top": bt.interval_coverage["top_decile"],
        "heldout_bins_inside": bt.interval_coverage["bins"],
        "heldout_bins_poisson": bt.interval_coverage["bins_poisson"],
        **{f"pai_{m}": float(pai[m]) for m in METHODS},
        **{f"true_pai_{m}": float(true_pai[m]) for m in METHODS},
    }
    if extent:
        out.update(extent_check(G, world, bt.risk, params))
    return out


def extent_check(
    G: nx.MultiDiGraph, world: SimulatedWorld, risk: cr.RiskResult, params: RiskParams
) -> dict[str, object]:
    """Score the same training incidents with 1,600 km of empty road added; compare rates."""
    incidents = world.incidents
    big = with_empty_roads(G)
    snapped = cr.snap_incidents(big, incidents)
    train = snapped[pd.to_datetime(snapped["date"]) < pd.Timestamp(SPLIT)]
    wide = cr.score_segments(big, train, params=params, as_of=SPLIT).segments
    key = ["u", "v", "key", "start_m"]
    a = risk.segments[[*key, "rate", "risk_class"]]
    b = wide[[*key, "rate", "risk_class"]]
    m = a.merge(b, on=key, suffixes=("", "_wide"))
    change = m["rate_wide"] / m["rate"] - 1.0
    return {
        "extent_matched": len(m) == len(a),
        "extent_km_added": float(wide["length_m"].sum() - risk.segments["length_m"].sum()) / 1000,
        "extent_median_change": float(change.median()),
        "extent_max_abs_change": float(change.abs().max()),
        "extent_class_changed": float((m["risk_class"] != m["risk_class_wide"]).mean()),
    }


def _range(values: pd.Series, fmt: str) -> str:
    lo, mid, hi = values.min(), values.mean(), values.max()
    if len(values) == 1 or lo == hi:
        return format(mid, fmt)
    return f"{format(mid, fmt)} ({format(lo, fmt)}–{format(hi, fmt)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 60 and 600 episodes")
    args = ap.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    configs = [
        Config("desert, 60", 60, SPARSE),
        Config("desert, 600", 600, SPARSE),
        Config("dense, 600", 600, DENSE),
    ]
    if not args.quick:
        configs.insert(2, Config("desert, 6000", 6000, SPARSE))
    t0 = time.perf_counter()
    results = []
    for cfg in configs:
        for seed in seeds:
            r = run_world(cfg, seed, extent=seed == 0)
            results.append(r)
            print(
                f"{cfg.name:>13} seed {seed}: {r['train_episodes']} train episodes "
                f"({r['train_rows']} rows) on {r['km']:.0f} km; top 10% ratio "
                f"{r['top_ratio']:.2f} cov {r['top_coverage']:.0%}; rest ratio "
                f"{r['rest_ratio']:.2f} cov {r['rest_coverage']:.0%}; PAI5 "
                + "/".join(f"{r[f'pai_{m}']:.2f}" for m in METHODS),
                flush=True,
            )
    frame = pd.DataFrame(results)
    text = render(frame, configs, seeds, time.perf_counter() - t0)
    print(text)
    if args.quick:  # a smoke run must not overwrite the full run's table in the docs
        print(f"(--quick: {OUT} left as it is)")
        return
    write_text_atomic(OUT, text)


def render(frame: pd.DataFrame, configs: list[Config], seeds: list[int], wall: float) -> str:
    """The Markdown page."""
    by = {c.name: frame[frame["config"] == c.name] for c in configs}
    summary = [
        (
            "| world | road km | train episodes | rows | top 10 %: predicted / true | "
            "top 10 %: 90 % interval covers | rest: predicted / true | rest: covers | "
            "all: predicted / true | all: covers |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in by.items():
        summary.append(
            f"| {name} | {_range(f['km'], '.0f')} | {_range(f['train_episodes'], '.0f')} "
            f"| {_range(f['train_rows'], '.0f')} | {_range(f['top_ratio'], '.2f')} | "
            f"{_range(f['top_coverage'], '.0%')} | {_range(f['rest_ratio'], '.2f')} | "
            f"{_range(f['rest_coverage'], '.0%')} | {_range(f['all_ratio'], '.2f')} | "
            f"{_range(f['all_coverage'], '.0%')} |"
        )
    pai = [
        (
            "| world | PAI 5 %, held-out: model | raw counts | planar KDE | "
            "share of true rate / 5 %: model | raw counts | planar KDE |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in by.items():
        cells = [_range(f[f"pai_{m}"], ".2f") for m in METHODS]
        cells += [_range(f[f"true_pai_{m}"], ".2f") for m in METHODS]
        pai.append(f"| {name} | " + " | ".join(cells) + " |")

    def decile_rows(column: str) -> list[str]:
        head = "| decile of predicted rate | " + " | ".join(by) + " |"
        rows = [head, "|---|" + "---:|" * len(by)]
        for b in range(1, 11):
            vals = []
            for f in by.values():
                got = [s.get(str(b), np.nan) for s in f[column]]
                vals.append("—" if np.all(np.isnan(got)) else f"{np.nanmean(got):.2f}")
            rows.append(f"| {b} | " + " | ".join(vals) + " |")
        return rows

    held = [
        (
            "| world | test episodes | observed counts inside their 90 % predictive interval "
            "(length share): all | top decile | deciles whose total is inside | "
            "deciles inside the Poisson 90 % interval of their expected count |"
        ),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in by.items():
        held.append(
            f"| {name} | {_range(f['test_episodes'], '.0f')} | "
            f"{_range(f['heldout_inside_all'], '.1%')} | {_range(f['heldout_inside_top'], '.1%')} "
            f"| {_range(f['heldout_bins_inside'], '.0%')} "
            f"| {_range(f['heldout_bins_poisson'], '.0%')} |"
        )
    ext = [
        (
            "| world (seed 0) | road added | median change of rate | largest change | "
            "segments changing class |"
        ),
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in by.items():
        r = f[f["seed"] == 0].iloc[0]
        ext.append(
            f"| {name} | {r['extent_km_added']:,.0f} km | {r['extent_median_change']:+.1%} | "
            f"{r['extent_max_abs_change']:.1%} | {r['extent_class_changed']:.1%} |"
        )
    versions = (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"convoyrisk {cr.__version__}"
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=OUT.parent,
    ).stdout.strip()
    nl = "\n"
    return f"""# Calibration on simulated worlds

Command: `.venv/bin/python -m benchmarks.bench_calibration` ({len(seeds)} seed(s) per world,
{wall:.0f} s in all; {platform.machine()}, {versions}). The model is whatever
`convoyrisk.score_segments` is at the commit that ran it ({commit or "unknown"}, plus any
uncommitted changes), with default parameters.

**Worlds** (`convoyrisk.simulate`, independent of the estimator): `desert_network`
(12 towns in a 400 km square joined by meandering tracks, 2 disconnected pieces; "dense": 40
towns in 300 km, 30 extra links, one piece); `simulate_world` over two years: true rate a
log-Gaussian field along the roads (exponential covariance, 40 km range, sd 1) times 3 hot
corridors (10–40 km, ×5–20), stationary; IED episodes of 1–3 devices within 300 m; 75 % of
episodes exact, 20 % known to 5–25 km, 5 % to 50–80 km. The model is fitted on the first year
(366 days; "train episodes" is the number drawn there, "rows" the incident rows, one per IED)
and its rate (per km per 30 days) compared with the true episode rate. Cells give the mean over
seeds (min–max). The "all" columns give the model's overall scale against the truth: a model
whose rate counts rows weighted by severity, not episodes, is off by that factor everywhere;
how the hot road and the rest compare *with each other* is the shape.

## Against the truth: the riskiest tenth of road and the rest

"Top 10 %" is the road with the highest *true* rate, 10 % of the length; predicted / true is
the ratio of length-weighted mean rates; "covers" the length share where the 90 % interval holds
the true rate.

{nl.join(summary)}

## Calibration by decile of predicted rate (predicted / true)

Length-weighted deciles (1 = the lowest predicted tenth of road; tied rates stay in one decile,
so a decile may be missing: —).

{nl.join(decile_rows("decile_ratio"))}

## Ranking: PAI at 5 % of road flagged

PAI = share of the second year's episodes on the top-scored 5 % of road / 0.05 (left), and the
share of the *true* expected rate there / 0.05 (right; no sampling noise). Raw counts are the
first year's rows per km; the planar KDE uses the model's kernel, bandwidth and weights over
straight-line distance.

{nl.join(pai)}

## Held-out year: expected against observed, by decile

Observed / expected episodes in the second year, by decile of predicted rate
(`BacktestResult.calibration`). The predictive interval of a count is
[Poisson 5 % point at the low expected count, 95 % point at the high one], at least as wide as
a posterior predictive interval; a decile's from the sums of its segments' low and high expected
counts (wider still). The last column is the sharp check of the point prediction: the decile's
count against the Poisson 90 % interval of its expected count.

{nl.join(decile_rows("heldout_ratio"))}

{nl.join(held)}

## Extent invariance

The first year's incidents scored again after adding a square of four 400 km empty tracks
1,500 km north, connected to nothing; the change of rate on the original segments
(rate with the empty road / rate without − 1).

{nl.join(ext)}
"""


if __name__ == "__main__":
    main()
