"""`convoyrisk.run`: the whole job in one call, the README's example, route stops."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from pyproj import Geod

import convoyrisk as cr
from convoyrisk.pipeline import parse_stops, read_incident_sources

from .helpers.graphs import REPO


def readme_library_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Library") :]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None
    return match.group(1)


def test_readme_library_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(readme_library_block(), "README.md", "exec"), scope)
    assert (tmp_path / "out" / "briefing.html").stat().st_size > 100_000
    one_call = {tuple(r.edges): r for r in scope["b"].routes}  # type: ignore[attr-defined]
    by_steps = {tuple(r.edges): r for r in scope["routes"]}  # type: ignore[attr-defined]
    # the one call and the steps find the same routes with the same exposure
    assert one_call.keys() == by_steps.keys()
    for edges, r in one_call.items():
        assert r.metrics["expected_incidents"] == pytest.approx(
            by_steps[edges].metrics["expected_incidents"]
        )
        assert r.metrics["travel_days"] == pytest.approx(7.0)
    # the one call ranks by the request's objective ("shortest"): shortest first
    km = [r.metrics["length_km"] for r in scope["b"].routes]  # type: ignore[attr-defined]
    assert km == sorted(km)


def test_run_without_request_scores_segments_only() -> None:
    b = cr.run()
    assert b.routes == [] and b.origin == ""
    assert b.table.n_input == 6 and len(b.snapped) == 6
    # the segments cover the embedded roads: their lengths add up to the lines' geodesic
    # length (within the 1.2 % a UTM zone's scale error allows at Mali's longitudes)
    roads = gpd.read_file(REPO / "data" / "geo" / "roads.geojson").to_crs(4326)
    geod = Geod(ellps="WGS84")
    km = sum(geod.geometry_length(line) for line in roads.geometry) / 1000
    assert b.risk.segments["length_m"].sum() / 1000 == pytest.approx(km, rel=0.012)


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("Kidal,Anéfis,Gao", ["Kidal", "Anéfis", "Gao"]),
        ("Kidal;16.27,-0.04;Gao", ["Kidal", "16.27,-0.04", "Gao"]),
        ("Kidal,16.27 -0.04,Gao", ["Kidal", "16.27,-0.04", "Gao"]),
        ("Kidal,16.27,-0.04", ["Kidal", "16.27,-0.04"]),
        ("18.44,1.41;16.27,-0.04", ["18.44,1.41", "16.27,-0.04"]),
    ],
)
def test_parse_stops(text: str, stops: list[str]) -> None:
    assert parse_stops(text) == stops


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Kidal,,Gao", "empty stop"),
        ("Kidal", "at least two"),
        ("Kidal,16.27,Gao", "not followed by a longitude"),
        ("Kidal;;Gao", "empty stop"),
    ],
)
def test_parse_stops_refuses(text: str, needle: str) -> None:
    with pytest.raises(cr.InputError, match=needle):
        parse_stops(text)


def test_incident_lists_are_concatenated_and_merged_like_snap() -> None:
    """Two sources reporting one event: one incident, the other counted as merged."""
    a = pd.DataFrame(
        {"latitude": [18.04], "longitude": [0.601], "date": ["2023-11-04"], "source": ["UN"]}
    )
    b = pd.DataFrame(
        {
            "latitude": [18.045, 17.0],
            "longitude": [0.602, 0.5],
            "date": ["2023-11-04", "2023-10-01"],
            "source": ["press", "press"],
        }
    )
    table = read_incident_sources([a, b])
    assert table.n_input == 3
    assert len(table.incidents) == 2
    # rows are numbered within each input, which is named
    kept = table.incidents.set_index(["input", "row"])
    assert sorted(kept.index) == [("table1", 1), ("table2", 2)]
    merged = table.rejects[table.rejects["kind"] == "merged"]
    assert list(zip(merged["input"], merged["row"], strict=True)) == [("table2", 1)]
    assert list(zip(merged["merged_into_input"], merged["merged_into"], strict=True)) == [
        ("table1", 1)
    ]
    assert kept.loc[("table1", 1), "source"] == "UN; press"
    assert kept.loc[("table1", 1), "sources"] == "table1:#1; table2:#1"


def test_run_refuses_zero_usable_incidents_unless_allowed() -> None:
    far = pd.DataFrame({"latitude": [10.0], "longitude": [10.0], "date": ["2023-11-04"]})
    with pytest.raises(cr.InputError, match="No usable incidents"):
        cr.run(incidents=far)
    b = cr.run(incidents=far, allow_empty=True)
    assert b.risk.describe()["incidents_used"] == 0


def test_given_routes_rank_by_the_objective() -> None:
    """Under "shortest" the shorter given route comes first, whatever its risk."""
    long_way = "Kidal,Anéfis,Bourem,Gao"
    short_way = "Kidal,Anéfis,Tabankort,Gao"
    b = cr.run(request=cr.RouteRequest(routes=[long_way, short_way]))
    km = [r.metrics["length_km"] for r in b.routes]
    assert km == sorted(km) and b.routes[0].name == "Kidal, Anéfis, Tabankort, Gao"
    safest = cr.run(request=cr.RouteRequest(routes=[long_way, short_way], objective="safest"))
    e = [r.metrics["expected_incidents"] for r in safest.routes]
    assert e == sorted(e)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"risk_weight": float("nan")}, "--risk-weight"),
        ({"pace": None}, ""),
    ],
)
def test_request_values_are_checked(kwargs: dict[str, object], needle: str) -> None:
    if kwargs.get("pace", 0) is None:
        with pytest.raises(cr.InputError, match="--speed-kph"):
            cr.Pace(speed_kph=float("inf"))
        return
    with pytest.raises(cr.InputError, match=needle):
        cr.RouteRequest(**kwargs)  # type: ignore[arg-type]


def test_run_freezes_the_network_for_the_collector_only_when_asked() -> None:
    """``freeze=True`` (the command line's) moves the objects alive after the build out of
    the collector's sight; the default leaves the collector as it was."""
    gc.unfreeze()
    cr.run()
    assert gc.get_freeze_count() == 0
    briefing = cr.run(freeze=True)
    try:
        assert gc.get_freeze_count() > briefing.G.number_of_edges()  # its dicts, at least
    finally:
        gc.unfreeze()
