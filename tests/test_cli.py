"""The command line: one real process per command, the rest in-process (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers.cli import assert_one_line_error, cli, run


def test_routes_json() -> None:
    proc = run("routes", "--from", "Kidal", "--to", "Gao", "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    routes = doc["routes"]
    assert [r["rank"] for r in routes] == [1, 2]
    for r in routes:
        for key in (
            "length_km",
            "expected_incidents",
            "p_incident",
            "p_incident_low",
            "p_incident_high",
            "via",
            "shared_fraction",
            "worst_segments",
        ):
            assert key in r
        assert 0 <= r["p_incident"] <= 1
    # objective "shortest" (the default) ranks by length, whatever the risk
    assert doc["objective"] == "shortest"
    assert routes[0]["length_km"] <= routes[1]["length_km"]
    assert doc["risk"]["as_of"] == "2023-11-04"


def test_routes_accent_insensitive_and_latlon() -> None:
    a = json.loads(cli("routes", "--from", "KIDAL", "--to", "gao", "--format", "json", "-q").stdout)
    b = json.loads(
        cli(
            "routes", "--from", "18.441,1.408", "--to", "16.272,-0.045", "--format", "json", "-q"
        ).stdout
    )
    assert [r["length_km"] for r in a["routes"]] == [r["length_km"] for r in b["routes"]]


def test_routes_table() -> None:
    proc = cli("routes")
    assert proc.returncode == 0, proc.stderr
    assert "Anéfis" in proc.stdout and "Bourem" in proc.stdout and "E[incidents]" in proc.stdout


def test_map_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "m.html"
    proc = run("map", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 100_000
    assert f"map written to {out}" in proc.stdout
    assert list(tmp_path.iterdir()) == [out]  # no temporary files left


def test_unknown_place() -> None:
    assert_one_line_error(
        cli("routes", "--to", "Anefiss"), "Unknown place 'Anefiss'", "Did you mean Anéfis"
    )


def test_latlon_out_of_range() -> None:
    assert_one_line_error(cli("routes", "--from", "95,1"), "out of range")


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(cli("routes", "--incidents", str(tmp_path / "no.csv")), "does not exist")


def test_malformed_csv(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('latitude,longitude,date\n18,0.6,"2023-11-04\n', encoding="utf-8")
    assert_one_line_error(cli("routes", "--incidents", str(bad)), "bad.csv")


def test_empty_roads(tmp_path: Path) -> None:
    empty = tmp_path / "roads.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    out = tmp_path / "m.html"
    assert_one_line_error(cli("map", "--roads", str(empty), "--out", str(out)), "empty")
    assert not out.exists()


@pytest.mark.parametrize("args", [["map", "--segment-length", "0"], ["routes", "-k", "0"]])
def test_bad_option_values(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_rejected_rows_are_reported(tmp_path: Path) -> None:
    inc = tmp_path / "inc.csv"
    inc.write_text(
        "latitude,longitude,date\n18.04,0.601,2023-11-04\n95,0.6,2023-11-04\n", encoding="utf-8"
    )
    proc = cli("routes", "--incidents", str(inc))
    assert proc.returncode == 0, proc.stderr
    assert "2 rows: 1 rejected, 1 used" in proc.stderr
    assert "rejected row 2: latitude out of range" in proc.stderr


def test_event_type_and_date_filters_exclude_rows(tmp_path: Path) -> None:
    inc = tmp_path / "inc.csv"
    inc.write_text(
        "latitude,longitude,date,type\n"
        "18.04,0.601,2023-11-04,Remote explosive/landmine/IED\n"
        "18.04,0.601,2023-11-04,Peaceful protest\n"
        "18.04,0.601,2021-01-01,Remote explosive/landmine/IED\n",
        encoding="utf-8",
    )
    proc = cli(
        "routes",
        "--incidents",
        str(inc),
        "--event-type",
        "remote explosive/landmine/ied",
        "--date-from",
        "2023-01-01",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 rows: 2 excluded, 1 used" in proc.stderr
    assert json.loads(proc.stdout)["risk"]["incidents_used"] == 1


def test_bad_filter_date() -> None:
    assert_one_line_error(cli("routes", "--date-from", "soon"), "not a date")
