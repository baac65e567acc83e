from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

import convoyrisk as cr
from convoyrisk.maps import risk_map, save_map


def _node(G, name: str) -> int:
    return next(n for n, d in G.nodes(data=True) if d.get("name") == name)


def _segment_ids(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'"segment": (\d+)\}', page)]


def test_default_map_holds_every_road_segment_and_incident(
    tmp_path: Path, default_graph, default_risk, places
) -> None:
    routes = cr.score_routes(
        default_graph,
        cr.alternative_routes(
            default_graph, _node(default_graph, "Kidal"), _node(default_graph, "Gao")
        ),
        default_risk,
    )
    m = risk_map(default_graph, default_risk, routes=routes, places=places, sources=["test"])
    path = save_map(m, tmp_path / "map.html")
    page = path.read_text(encoding="utf-8")
    drawn = _segment_ids(page)
    assert sorted(drawn) == sorted(default_risk.segments["segment_id"])  # each exactly once
    segment_ids = set(drawn)
    roads = set(
        default_risk.segments.loc[default_risk.segments["segment_id"].isin(segment_ids), "road_id"]
    )
    assert roads == {d["road_id"] for *_, d in default_graph.edges(data=True)}
    assert page.count('"className": "convoyrisk-incident"') == len(default_risk.incidents)
    assert "Road geometry approximate" in page
    for name in ("low", "elevated", "high", "severe"):
        assert f"{name} (" in page  # legend
    assert "Route 1:" in page and "Route 2:" in page


def test_offline_map_links_nothing_on_the_network(
    tmp_path: Path, default_graph, default_risk
) -> None:
    path = save_map(risk_map(default_graph, default_risk), tmp_path / "map.html")
    page = path.read_text(encoding="utf-8")
    assert not re.search(r'<script[^>]+src="https?://', page)
    assert not re.search(r'<link[^>]+href="https?://', page)
    assert "L.map(" in page and "Leaflet" in page  # Leaflet itself is embedded


def test_online_map_links_cdn(tmp_path: Path, default_graph, default_risk) -> None:
    path = save_map(risk_map(default_graph, default_risk), tmp_path / "map.html", offline=False)
    assert re.search(r'<script src="https://cdn', path.read_text(encoding="utf-8"))


def test_hostile_notes_are_escaped(tmp_path: Path, default_graph, default_risk) -> None:
    risk = default_risk
    inc = risk.incidents.copy()
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'"
    inc["notes"] = evil
    inc["event_id"] = evil
    hostile = cr.RiskResult(
        segments=risk.segments,
        incidents=inc,
        params=risk.params,
        as_of=risk.as_of,
        exposure_days=risk.exposure_days,
    )
    page = save_map(risk_map(default_graph, hostile), tmp_path / "map.html").read_text(
        encoding="utf-8"
    )
    assert "<img src=x" not in page
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_map_dates_are_shown(tmp_path: Path, default_graph, default_risk) -> None:
    page = save_map(risk_map(default_graph, default_risk), tmp_path / "m.html").read_text(
        encoding="utf-8"
    )
    for d in pd.to_datetime(default_risk.incidents["date"]).dt.strftime("%Y-%m-%d").unique():
        assert d in page
