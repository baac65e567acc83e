"""The dask engine gives the in-process engine's results (snapping exactly, scoring to 1e-12)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import convoyrisk as cr
from convoyrisk import density, engine
from convoyrisk.risk import RiskParams
from convoyrisk.simulate import simulate_world

from .helpers.graphs import PLANE, lines_graph

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with engine.dask_client(None) as c:
        yield c


@pytest.fixture(scope="module")
def incidents(default_graph) -> gpd.GeoDataFrame:
    """Simulated incidents, plus imprecise, far and repeated ones (every status, exact ties)."""
    world = simulate_world(default_graph, n_episodes=160, days=1460, seed=1)
    base = world.incidents.to_crs(default_graph.graph["crs"])
    extra = base.iloc[:40].copy()
    extra["precision_m"] = np.r_[np.full(20, 25_000.0), np.zeros(20)]
    far = extra.iloc[20:30].copy()
    far["geometry"] = far.geometry.translate(200_000.0, 0.0)  # far from every road
    out = pd.concat([base, extra.iloc[:20], far, extra.iloc[30:]]).reset_index(drop=True)
    out["row"] = np.arange(1, len(out) + 1)
    out["event_id"] = [f"e{i}" for i in range(len(out))]
    out.index = out.index * 7 + 3  # a non-default index survives
    return gpd.GeoDataFrame(out, geometry="geometry", crs=base.crs).to_crs("EPSG:4326")


@pytest.mark.parametrize("npartitions", [1, 3, 7])
def test_snap_is_identical(client, default_graph, incidents, npartitions) -> None:
    ours = engine.snap_incidents_dask(
        default_graph, incidents, max_distance_m=5_000.0, scheduler=client, npartitions=npartitions
    )
    ref = cr.snap_incidents(default_graph, incidents, max_distance_m=5_000.0)
    assert set(ref["status"]) == {"snapped", "spread", "too_far"}
    pd.testing.assert_frame_equal(ours, ref, check_exact=True)
    assert ours.crs == ref.crs


def test_snap_partition_rows_bounds_tasks(client, default_graph, incidents) -> None:
    ours = engine.snap_incidents_dask(
        default_graph, incidents, max_distance_m=5_000.0, scheduler=client, partition_rows=50
    )
    ref = cr.snap_incidents(default_graph, incidents, max_distance_m=5_000.0)
    pd.testing.assert_frame_equal(ours, ref, check_exact=True)


def _same_risk(ours: cr.RiskResult, ref: cr.RiskResult) -> None:
    a, b = ours.segments, ref.segments
    assert list(a.columns) == list(b.columns)
    floats = [c for c in a.columns if a[c].dtype.kind == "f"]
    for col in floats:
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-300)
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats), check_exact=True)
    pd.testing.assert_frame_equal(ours.incidents, ref.incidents, check_exact=True)
    assert ours.baseline_rate == pytest.approx(ref.baseline_rate, rel=1e-12)
    assert ours.overdispersion == pytest.approx(ref.overdispersion, rel=1e-6)


@pytest.mark.parametrize("npartitions", [1, 2, 5])
def test_score_is_identical(client, default_graph, incidents, npartitions) -> None:
    snapped = cr.snap_incidents(default_graph, incidents)
    ours = engine.score_segments_dask(
        default_graph, snapped, scheduler=client, npartitions=npartitions
    )
    ref = cr.score_segments(default_graph, snapped)
    assert (ref.segments["top_contributors"] != "").sum() > 10
    _same_risk(ours, ref)


def test_score_options_and_no_split(client, default_graph, incidents) -> None:
    snapped = cr.snap_incidents(default_graph, incidents)
    params = RiskParams(junction="none", kernel="triangular", top_contributors=0)
    ours = engine.score_segments_dask(
        default_graph, snapped, params=params, as_of="2024-06-30", scheduler=client, npartitions=4
    )
    ref = cr.score_segments(default_graph, snapped, params=params, as_of="2024-06-30")
    _same_risk(ours, ref)


def test_mass_adds_up_by_hand(client) -> None:
    # one 10 km road, incidents far from its ends: with conserved mass each incident's
    # kernel mass is its weight, so the total is the hand-summed weights (1 + near repeat)
    G = lines_graph([[(500_000.0, 2_000_000.0), (510_000.0, 2_000_000.0)]])
    xs = [504_000.0, 505_000.0, 506_000.0, 505_500.0]
    dates = pd.to_datetime(["2023-01-01", "2023-01-01", "2023-01-01", "2023-01-01"])
    pts = gpd.GeoDataFrame(
        {"row": range(1, 5), "date": dates, "killed": 0.0, "injured": 0.0, "precision_m": 0.0},
        geometry=gpd.points_from_xy(xs, [2_000_000.0] * 4),
        crs=PLANE,
    )
    snapped = engine.snap_incidents_dask(G, pts, max_distance_m=100.0, scheduler=client)
    assert snapped["offset_m"].tolist() == pytest.approx([4_000.0, 5_000.0, 6_000.0, 5_500.0])
    risk = engine.score_segments_dask(
        G, snapped, scheduler=client, npartitions=4, bandwidth_m=1_000.0, episode_m=0.0
    )
    assert risk.segments["mass"].sum() == pytest.approx(4.0, rel=1e-12)
    # 1 km lixels; an incident at x reaches the lixels meeting (x - 1 km, x + 1 km)
    assert risk.segments["incidents"].tolist() == [0, 0, 0, 1, 3, 3, 2, 0, 0, 0]


def test_merge_top_matches_a_sort() -> None:
    rng = np.random.default_rng(0)
    ids = [rng.integers(-1, 50, (30, 3)) for _ in range(4)]
    vals = [rng.uniform(0, 1, (30, 3)).round(1) for _ in range(4)]
    top_i, top_v = density.merge_top(ids, vals, 3)
    for row in range(30):
        pairs = sorted(
            (-v[row, j], i[row, j])
            for i, v in zip(ids, vals, strict=True)
            for j in range(3)
            if i[row, j] >= 0
        )[:3]
        assert top_i[row, : len(pairs)].tolist() == [p[1] for p in pairs]
        assert top_v[row, : len(pairs)].tolist() == [-p[0] for p in pairs]
        assert (top_i[row, len(pairs) :] == -1).all()


def test_default_local_cluster(default_graph) -> None:
    pts = cr.read_incidents().incidents
    ours = engine.snap_incidents_dask(default_graph, pts, max_distance_m=5_000.0)
    pd.testing.assert_frame_equal(ours, cr.snap_incidents(default_graph, pts, max_distance_m=5e3))


def _cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from convoyrisk.cli import main

    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def test_cli_snap_and_score_on_dask(tmp_path) -> None:
    for engine_name in ("local", "dask"):
        code, out = _cli(
            "snap", "--out", str(tmp_path / f"s_{engine_name}.csv"), "--engine", engine_name
        )
        assert code == 0, out
        code, out = _cli(
            "score", "--out", str(tmp_path / f"r_{engine_name}.csv"), "-q", "--engine", engine_name
        )
        assert code == 0, out
    a, b = pd.read_csv(tmp_path / "s_local.csv"), pd.read_csv(tmp_path / "s_dask.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    a, b = pd.read_csv(tmp_path / "r_local.csv"), pd.read_csv(tmp_path / "r_dask.csv")
    assert a["mass"].sum() > 0
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_cli_scheduler_needs_dask(tmp_path) -> None:
    code, out = _cli("snap", "--out", str(tmp_path / "s.csv"), "--scheduler", "tcp://x:8786")
    assert code == 2
    assert "--engine dask" in out


def test_cli_on_a_running_cluster(tmp_path) -> None:
    """`--scheduler ADDRESS`: a scheduler and a worker in their own processes, over TCP."""
    info = tmp_path / "scheduler.json"
    common = ["--dashboard-address", ":0"]
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--scheduler-file",
            str(info),
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "2",
                "--host",
                "127.0.0.1",
                *common,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with distributed.Client(address, timeout=60) as c:
            c.wait_for_workers(1, timeout=60)
        remote, local = tmp_path / "remote.csv", tmp_path / "local.csv"
        for out, extra in ((remote, ["--engine", "dask", "--scheduler", address]), (local, [])):
            proc = subprocess.run(
                [sys.executable, "-m", "convoyrisk", "score", "-q", "--out", str(out), *extra],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
        a, b = pd.read_csv(remote), pd.read_csv(local)
        assert a["mass"].sum() > 0
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
