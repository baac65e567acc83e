"""`convoyrisk score` and `convoyrisk backtest` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from .helpers.cli import assert_one_line_error, cli, run


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".parquet", ".csv"])
def test_score_writes_segments(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"segments{ext}"
    proc = (run if ext == ".gpkg" else cli)(
        "score", "--out", str(out), "-q", "--as-of", "2023-11-10"
    )
    assert proc.returncode == 0, proc.stderr
    if ext == ".csv":
        segs = pd.read_csv(out)
    elif ext == ".parquet":
        segs = gpd.read_parquet(out)
    else:
        segs = gpd.read_file(out)
    for col in (
        "segment_id",
        "u",
        "v",
        "key",
        "start_m",
        "end_m",
        "length_m",
        "rate",
        "rate_low",
        "rate_high",
        "risk_class",
        "incidents",
        "top_contributors",
    ):
        assert col in segs.columns, col
    assert (segs["rate_low"] <= segs["rate"]).all() and (segs["rate"] <= segs["rate_high"]).all()
    if ext == ".geojson":
        assert segs.crs.to_epsg() == 4326
    meta = json.loads((tmp_path / "segments.params.json").read_text(encoding="utf-8"))
    assert meta["as_of"] == "2023-11-10"
    assert meta["params"]["bandwidth_m"] == 5000.0


def test_score_config_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "risk.toml"
    cfg.write_text('[risk]\nbandwidth_m = 2000\nkernel = "uniform"\nhalf_life_days = 30\n')
    out = tmp_path / "s.csv"
    proc = cli(
        "score",
        "--out",
        str(out),
        "-q",
        "--config",
        str(cfg),
        "--half-life",
        "45",
        "--set",
        "junction=none",
    )
    assert proc.returncode == 0, proc.stderr
    p = json.loads((tmp_path / "s.params.json").read_text())["params"]
    # config beats defaults, explicit options beat the config, --set is applied last
    assert (p["bandwidth_m"], p["kernel"], p["half_life_days"], p["junction"]) == (
        2000.0,
        "uniform",
        45.0,
        "none",
    )


def test_score_errors(tmp_path: Path) -> None:
    assert_one_line_error(cli("score", "--out", str(tmp_path / "x.txt")), ".gpkg")
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nbandwith_m = 1\n")
    assert_one_line_error(
        cli("score", "--out", str(tmp_path / "x.csv"), "--config", str(bad), "-q"), "bandwith_m"
    )
    assert_one_line_error(
        cli("score", "--out", str(tmp_path / "x.csv"), "--set", "kernel=gauss", "-q"), "kernel"
    )
    # a record that starts after the as-of date (a bare TOML date is read as its text)
    out = str(tmp_path / "x.csv")
    late = cli("score", "--out", out, "--set", "observed_since=2030-01-01", "-q")
    assert_one_line_error(late, "observed_since", "after the as-of date")
    assert not (tmp_path / "x.csv").exists()


def test_backtest_table_and_json() -> None:
    proc = run("backtest", "--split", "2023-11-03", "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    # episodes: the two IEDs of 31 Oct are one attack, and so are the two of 4 Nov
    assert (doc["n_train"], doc["n_test"]) == (2, 2)
    methods = {(r["method"], r["coverage"]) for r in doc["results"]}
    assert methods == {
        (m, c) for m in ("network_kde", "raw_counts", "planar_kde") for c in (0.01, 0.05, 0.1)
    }
    # calibration: every test incident counted once across the deciles
    assert sum(r["observed"] for r in doc["calibration"]) == doc["n_test"]
    assert set(doc["interval_coverage"]) == {"all", "top_decile", "bins", "bins_poisson"}
    table = cli("backtest", "--split", "2023-11-03")
    assert table.returncode == 0, table.stderr
    assert "PAI" in table.stdout and "planar_kde" in table.stdout
    assert "Calibration" in table.stdout and "predictive interval" in table.stdout
    assert_one_line_error(cli("backtest", "--split", "2030-01-01", "-q"), "earlier")


def test_score_workers_and_no_bar_off_a_terminal(tmp_path: Path) -> None:
    """`--workers` sets threads (same result as one); a pipe gets no progress-bar characters."""
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    for out, workers in ((one, "1"), (two, "2")):
        proc = cli("score", "--out", str(out), "--workers", workers, "--as-of", "2023-11-10")
        assert proc.returncode == 0, proc.stderr
        assert "━" not in proc.stderr and "\x1b[" not in proc.stderr
    a, b = pd.read_csv(one), pd.read_csv(two)
    pd.testing.assert_series_equal(a["rate"], b["rate"], rtol=1e-12)
    top_a, top_b = (f["top_contributors"].astype("string").fillna("") for f in (a, b))
    assert (top_a == top_b).all()


def test_score_workers_is_for_this_process(tmp_path: Path) -> None:
    proc = cli("score", "--out", str(tmp_path / "s.csv"), "--workers", "2", "--engine", "dask")
    assert_one_line_error(proc, "--workers", "--engine dask")
    proc = cli("score", "--out", str(tmp_path / "s.csv"), "--workers", "0")
    assert proc.returncode == 2
