"""Every failure a user can cause: exit 2, one line naming the file or option and the fix.

Most cases run in-process (CliRunner); `network` and `snap` also once as real processes.
The output cases check what is on disk afterwards: nothing damaged, nothing half-written.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import convoyrisk as cr
from convoyrisk import engine

from .helpers.cli import assert_one_line_error, cli, run
from .helpers.graphs import REPO

ROADS = REPO / "data" / "geo" / "roads.geojson"
INCIDENTS = REPO / "data" / "geo" / "incidents.csv"

# --------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------


def test_out_in_a_folder_that_cannot_be_made() -> None:
    assert_one_line_error(cli("map", "-q", "--out", "/proc/x/m.html"), "/proc/x", "folder")


def test_out_is_a_directory(tmp_path: Path) -> None:
    line = assert_one_line_error(cli("map", "-q", "--out", str(tmp_path)), "`--out`")
    assert "is a directory" in line
    assert list(tmp_path.iterdir()) == []


def test_out_equal_to_an_input_leaves_the_input_alone(tmp_path: Path) -> None:
    inc = tmp_path / "inc.csv"
    inc.write_bytes(INCIDENTS.read_bytes())
    assert_one_line_error(
        cli("map", "-q", "--incidents", str(inc), "--out", str(inc)), "also an input"
    )
    assert inc.read_bytes() == INCIDENTS.read_bytes()
    # the same file through another name (a symbolic link) is the same input
    link = tmp_path / "link.csv"
    link.symlink_to(inc)
    assert_one_line_error(
        cli("score", "-q", "--incidents", str(inc), "--out", str(link)), "also an input"
    )


def test_out_through_a_symlink_writes_the_target(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    proc = cli("score", "-q", "--out", str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert pd.read_csv(target)["rate"].notna().all()
    # no temporary file left beside either
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "link.csv",
        "link.params.json",
        "real.csv",
    ]


def test_out_a_fifo_or_a_device_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    assert_one_line_error(cli("map", "-q", "--out", str(fifo)), "special file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not replaced by a file
    if Path("/dev/null").exists():
        assert_one_line_error(cli("map", "-q", "--out", "/dev/null"), "special file")
        assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)


def test_related_files_are_written_all_or_none(tmp_path: Path) -> None:
    """The rejects (snap) or parameters (score) path is a directory: neither file appears."""
    (tmp_path / "placed_rejects.csv").mkdir()
    assert_one_line_error(
        cli("snap", "-q", "--out", str(tmp_path / "placed.csv")), "rejects", "directory"
    )
    assert not (tmp_path / "placed.csv").exists()
    (tmp_path / "seg.params.json").mkdir()
    assert_one_line_error(
        cli("score", "-q", "--out", str(tmp_path / "seg.gpkg")), "parameters", "directory"
    )
    assert not (tmp_path / "seg.gpkg").exists()


def test_atomic_paths_write_nothing_when_the_body_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a", encoding="utf-8")

    def write_then_fail() -> None:
        with cr.utils.atomic_paths(a, b) as (ta, tb):
            ta.write_text("new a", encoding="utf-8")
            tb.write_text("new b", encoding="utf-8")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert a.read_text(encoding="utf-8") == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_sigterm_removes_temporaries_like_sigint(tmp_path: Path) -> None:
    """A process killed with SIGTERM while writing leaves no hidden temporary file."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from convoyrisk.utils import atomic_path, exit_on_sigterm
        exit_on_sigterm()
        with atomic_path({str(tmp_path / "big.bin")!r}) as tmp:
            tmp.write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 128 + 15, proc.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# network build / info
# --------------------------------------------------------------------------------------


def test_network_build_bad_crs_and_tolerance_as_processes(tmp_path: Path) -> None:
    out = tmp_path / "g.gpkg"
    proc = run("network", "build", str(ROADS), "--out", str(out), "--crs", "banana")
    assert_one_line_error(proc, "`--crs` 'banana'", "EPSG")
    proc = run("network", "build", str(ROADS), "--out", str(out), "--tolerance", "1e9")
    assert_one_line_error(proc, "tolerance")
    assert not out.exists()


def test_network_info_names_its_argument_not_roads(tmp_path: Path) -> None:
    line = assert_one_line_error(run("network", "info", str(tmp_path / "none.gpkg")), "none.gpkg")
    assert "--roads" not in line


def test_network_build_out_equal_to_source(tmp_path: Path) -> None:
    src = tmp_path / "roads.gpkg"
    cli("network", "build", str(ROADS), "--out", str(src), "-q")
    before = src.read_bytes()
    assert_one_line_error(
        cli("network", "build", str(src), "--out", str(src), "-q"), "also an input"
    )
    assert src.read_bytes() == before


# --------------------------------------------------------------------------------------
# incidents
# --------------------------------------------------------------------------------------


def test_snap_incidents_a_directory_as_a_process(tmp_path: Path) -> None:
    proc = run("snap", "--incidents", str(tmp_path), "--out", str(tmp_path / "p.csv"))
    assert_one_line_error(proc, "is a directory", "--incidents")


def test_snap_incidents_a_broken_spreadsheet(tmp_path: Path) -> None:
    book = tmp_path / "acled.xlsx"
    book.write_bytes(b"PK\x03\x04 not really")
    assert_one_line_error(
        cli("snap", "--incidents", str(book), "--out", str(tmp_path / "p.csv")), "acled.xlsx"
    )
    old = tmp_path / "acled.ods"
    old.write_bytes(b"not really")
    assert_one_line_error(
        cli("snap", "--incidents", str(old), "--out", str(tmp_path / "p.csv")), ".xlsx or CSV"
    )


def test_snap_incidents_a_line_layer(tmp_path: Path) -> None:
    assert_one_line_error(
        cli("snap", "--incidents", str(ROADS), "--out", str(tmp_path / "p.csv")),
        "LineString",
        "points",
    )


def test_empty_feature_collection_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "none.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    line = assert_one_line_error(cli("routes", "--incidents", str(empty)), "no features")
    assert "date" not in line


def test_point_layer_without_dates_can_be_snapped(tmp_path: Path) -> None:
    """Snapping needs no dates (scoring does): a point layer without them is placed."""
    pts = tmp_path / "crimes.geojson"
    features = [
        {
            "type": "Feature",
            "properties": {"name": "on the road"},
            "geometry": {"type": "Point", "coordinates": [0.601, 18.04]},
        }
    ]
    pts.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    out = tmp_path / "placed.csv"
    proc = cli("snap", "--incidents", str(pts), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    placed = pd.read_csv(out)
    assert list(placed["status"]) == ["snapped"]
    assert_one_line_error(cli("routes", "--incidents", str(pts)), "date")


def test_unknown_column_keys_are_refused(tmp_path: Path) -> None:
    assert_one_line_error(
        cli("snap", "--column", "foo=lat", "--out", str(tmp_path / "p.csv")),
        "foo",
        "latitude",
    )


def test_incidents_repeatable_and_merged_alike_in_snap_and_routes(tmp_path: Path) -> None:
    """Two sources with one shared event: snap and routes use the same two incidents."""
    a, b = tmp_path / "un.csv", tmp_path / "press.csv"
    a.write_text("latitude,longitude,date,source\n18.04,0.601,2023-11-04,UN\n")
    b.write_text(
        "latitude,longitude,date,source\n18.041,0.601,2023-11-04,press\n"
        "16.272,-0.045,2023-11-02,press\n"
    )
    out = tmp_path / "placed.csv"
    proc = cli("snap", "--incidents", str(a), "--incidents", str(b), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3 rows" in proc.stdout and "1 merged" in proc.stdout
    assert len(pd.read_csv(out)) == 2
    routes = cli("routes", "--incidents", str(a), "--incidents", str(b), "--format", "json")
    assert routes.returncode == 0, routes.stderr
    assert "3 rows: 1 merged" in routes.stderr
    assert json.loads(routes.stdout)["risk"]["incidents_used"] == 2


def test_zero_usable_incidents(tmp_path: Path) -> None:
    far = tmp_path / "far.csv"
    far.write_text("latitude,longitude,date\n10.0,10.0,2023-11-04\n")
    assert_one_line_error(cli("routes", "-q", "--incidents", str(far)), "No usable incidents")
    out = tmp_path / "m.html"
    proc = cli("map", "-q", "--incidents", str(far), "--allow-empty", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "0 incidents used" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args",
    [
        ["routes", "--as-of", "04/11/2023"],
        ["backtest", "--split", "04/11/2023"],
        ["routes", "--date-from", "4 Nov 2023"],
    ],
)
def test_dates_only_as_iso_days(args: list[str]) -> None:
    assert_one_line_error(cli(*args), "YYYY-MM-DD", args[1])


# --------------------------------------------------------------------------------------
# places, config, routes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"\x00\x01garbage\xff\n", "UTF-8"),
        (b"garbage\n", "name, latitude, longitude"),
        (
            (
                b"2034937\tKidal\tKidal\t\t18.44\t1.40\tP\tPPL\tML\t\t00\t\t\t\t0\t\t400\t"
                b"Africa/Bamako\t2020-01-01\n"
            ),
            "GeoNames",
        ),
        (b"name,latitude,longitude\nKidal,abc,1.4\nGao,16.27,-0.04\n", "row 1"),
        (b"name,latitude,longitude\nKidal,18.4,1.4\nGao,96,-0.04\n", "row 2"),
    ],
)
def test_bad_gazetteers(tmp_path: Path, content: bytes, needle: str) -> None:
    places = tmp_path / "places.csv"
    places.write_bytes(content)
    assert_one_line_error(cli("routes", "--places", str(places)), "places.csv", needle)


def test_config_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(cli("routes", "--config", str(tmp_path)), "--config", "not a file")


def test_gpx_with_a_bad_coordinate(tmp_path: Path) -> None:
    gpx = tmp_path / "t.gpx"
    gpx.write_text(
        '<gpx><trk><trkseg><trkpt lat="abc" lon="1.4"/><trkpt lat="16.2" lon="-0.04"/>'
        "</trkseg></trk></gpx>",
        encoding="utf-8",
    )
    assert_one_line_error(cli("routes", "--route-file", str(gpx)), "t.gpx", "'abc'", "point 1")


def test_route_with_an_empty_stop() -> None:
    assert_one_line_error(cli("routes", "--route", "Kidal,,Gao"), "empty stop")


@pytest.mark.parametrize(
    "route", ["Kidal;16.272,-0.045", "Kidal,16.272 -0.045", "Kidal,16.272,-0.045"]
)
def test_route_stops_as_coordinates(route: str) -> None:
    """Gao given by its coordinates: the same route as by its name."""
    by_name = json.loads(cli("routes", "-q", "--route", "Kidal,Gao", "--format", "json").stdout)
    proc = cli("routes", "-q", "--route", route, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["routes"][0]["length_km"] == by_name["routes"][0]["length_km"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--risk-weight", "nan", "--objective", "balanced"], ("--risk-weight", "nan")),
        (["--speed-kph", "inf"], ("--speed-kph", "inf")),
    ],
)
def test_non_finite_route_options(args: list[str], needles: tuple[str, ...]) -> None:
    line = assert_one_line_error(cli("routes", *args), *needles)
    assert "no road connects" not in line and "travel_days" not in line


def test_given_routes_ranked_under_the_objective() -> None:
    """Under "shortest" the shorter route is first, under "safest" the fewer incidents."""
    args = ["--route", "Kidal,Anéfis,Bourem,Gao", "--route", "Kidal,Anéfis,Tabankort,Gao"]
    for objective, key in (("shortest", "length_km"), ("safest", "expected_incidents")):
        proc = cli("routes", "-q", *args, "--objective", objective, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        values = [r[key] for r in json.loads(proc.stdout)["routes"]]
        assert values == sorted(values)
        assert json.loads(proc.stdout)["objective"] == objective


# --------------------------------------------------------------------------------------
# the dask scheduler
# --------------------------------------------------------------------------------------


def test_scheduler_not_an_address(tmp_path: Path) -> None:
    proc = cli(
        "score", "--engine", "dask", "--scheduler", "banana", "--out", str(tmp_path / "s.csv")
    )
    assert_one_line_error(proc, "`--scheduler` 'banana'", "tcp://")


@pytest.fixture
def fake_scheduler(request: pytest.FixtureRequest) -> Iterator[str]:
    """A loopback server that is no dask scheduler: silent, or answering like HTTP."""
    reply: bytes = request.param
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    done = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            if reply:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join(timeout=5)
    for conn in conns:
        conn.close()
    server.close()


@pytest.mark.parametrize(
    "fake_scheduler",
    [b"", b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"],
    indirect=True,
    ids=["silent", "http"],
)
def test_scheduler_that_does_not_answer_the_handshake(
    fake_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(cr.InputError, match="within 2 s"), engine.dask_client(fake_scheduler):
        pass


def test_documented_handshake_timeout() -> None:
    text = (REPO / "docs" / "scale.md").read_text(encoding="utf-8")
    assert f"within {engine.CONNECT_TIMEOUT_S:g} s" in text


@pytest.mark.parametrize(
    "fake_scheduler", [b"HTTP/1.0 400 Bad Request\r\n\r\n"], indirect=True, ids=["http"]
)
def test_snap_on_a_scheduler_that_is_an_http_server(
    fake_scheduler: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One line, not "Unable to allocate 3.07 EiB" nor a hang."""
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2.0)
    out = tmp_path / "p.csv"
    proc = cli("snap", "-q", "--engine", "dask", "--scheduler", fake_scheduler, "--out", str(out))
    assert_one_line_error(proc, fake_scheduler, "dask-scheduler")
    assert not out.exists()
