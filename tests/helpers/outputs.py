"""The embedded Kidal–Gao run, with one bad incident row, for the output tests."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

import convoyrisk as cr
from convoyrisk.routing import Route, route_geometry

DATA = Path(__file__).resolve().parents[2] / "data" / "geo"
AS_OF = "2023-11-04"

GPX_XSD = Path(__file__).resolve().parents[1] / "data" / "gpx-1.1.xsd"
"""The GPX 1.1 schema shipped with the tests (tests/data/README.md says where from)."""


@dataclass
class Run:
    G: nx.MultiDiGraph
    places: gpd.GeoDataFrame
    table: cr.IncidentTable
    risk: cr.RiskResult
    routes: list[Route]
    info: dict[str, Any]


@functools.cache
def default_run() -> Run:
    """Kidal → Gao, k = 3, on the embedded data plus one row with a latitude of 95."""
    places = cr.load_places()
    G = cr.name_nodes(cr.load_graph(), places)
    rows = pd.read_csv(DATA / "incidents.csv", dtype=str, keep_default_na=False)
    bad = rows.iloc[[0]].assign(event_id="BAD-1", latitude="95")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incidents.csv"
        pd.concat([rows, bad]).to_csv(path, index=False)
        table = cr.read_incidents(path)
    snapped = cr.snap_incidents(G, table.incidents)
    risk = cr.score_segments(G, snapped, as_of=AS_OF)
    by_name = places.set_index("name")
    kidal, gao = (
        cr.nearest_node(G, by_name.loc[n, "latitude"], by_name.loc[n, "longitude"])[0]
        for n in ("Kidal", "Gao")
    )
    routes = cr.score_routes(G, cr.alternative_routes(G, kidal, gao, k=3), risk)
    info = {"chokepoints": cr.chokepoints(G, kidal, gao, routes)}
    return Run(G, places, table, risk, routes, info)


ANEFIS_HOT_SPOT = ((14, 4, 3_000.0, 50_000.0),)
"""IED sites on the roads around Anéfis: (sites, IEDs at each, from, to metres from the town).

Repeat sites, dense at the town: few markers on the page, a hot spot in the risk."""


def hot_spot_rows(G: nx.MultiDiGraph, places: gpd.GeoDataFrame, seed: int = 7) -> pd.DataFrame:
    """Precise IED reports on the roads near Anéfis, spread over the year before `AS_OF`."""
    rng = np.random.default_rng(seed)
    crs = G.graph["crs"]
    anefis = places.set_index("name").loc[["Anéfis"]].to_crs(crs).geometry.iloc[0]
    roads = shapely.union_all([d["geometry"] for _, _, d in G.edges(data=True)])
    pts = []
    for sites, n, r0, r1 in ANEFIS_HOT_SPOT:
        ring = anefis.buffer(r1).difference(anefis.buffer(r0))
        lines = shapely.get_parts(roads.intersection(ring))
        lengths = shapely.length(lines)
        for i in rng.choice(len(lines), size=sites, p=lengths / lengths.sum()):
            pts += [lines[i].interpolate(rng.uniform(0.0, 1.0), normalized=True)] * n
    ll = gpd.GeoSeries(pts, crs=crs).to_crs("EPSG:4326")
    dates = pd.Timestamp(AS_OF) - pd.to_timedelta(rng.uniform(1.0, 365.0, len(pts)), unit="D")
    return pd.DataFrame(
        {
            "event_id": [f"HOT-{i}" for i in range(len(pts))],
            "date": dates.strftime("%Y-%m-%d"),
            "latitude": ll.y.round(6),
            "longitude": ll.x.round(6),
            "precision_m": 0,
            "type": "IED",
            "source": "test hot spot",
        }
    )


@functools.cache
def hot_spot_run() -> Run:
    """Kidal → Gao, k = 3, through the pipeline: the embedded incidents plus a hot spot.

    Fifty-two precise IEDs at twelve sites on the roads around Anéfis in the year before `AS_OF`
    (:func:`hot_spot_rows`) and one row with a latitude of 95, so the risk has
    severe, high and elevated roads there (checked by the tests that need them).
    """
    places = cr.load_places()
    G = cr.name_nodes(cr.load_graph(), places)
    hot = hot_spot_rows(G, places)
    bad = hot.iloc[[0]].assign(event_id="BAD-1", latitude=95.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hot_spot.csv"
        pd.concat([hot, bad]).to_csv(path, index=False)
        b = cr.run(
            incidents=[DATA / "incidents.csv", path],
            as_of=AS_OF,
            request=cr.RouteRequest(origin="Kidal", destination="Gao", k=3),
        )
    return Run(b.G, b.places, b.table, b.risk, b.routes, b.info)


CLASS_ORDER = ("severe", "high", "elevated", "low")
"""Risk classes from the worst down; any other class (e.g. "insufficient data") comes after."""


def classes_worst_first(run: Run) -> list[str]:
    """The classes the run's segments hold, worst first, the unranked ones last."""
    present = list(dict.fromkeys(str(c) for c in run.risk.segments["risk_class"]))
    return [c for c in CLASS_ORDER if c in present] + [c for c in present if c not in CLASS_ORDER]


def expected_via(run: Run, route: Route, within_m: float = 2000.0) -> list[str]:
    """Gazetteer places within `within_m` of the route's inner nodes, in travel order.

    Found from the places' and nodes' coordinates with geopandas, not from the
    node names the router reads.
    """
    crs = run.G.graph["crs"]
    pts = run.places.to_crs(crs).reset_index(drop=True)
    names: list[str] = []
    for n in route.nodes[1:-1]:
        node = shapely.Point(run.G.nodes[n]["x"], run.G.nodes[n]["y"])
        d = pts.geometry.distance(node)
        if float(d.min()) <= within_m:
            names.append(str(pts.loc[d.idxmin(), "name"]))
    return list(dict.fromkeys(names))


def route_segments(run: Run, route: Route) -> pd.DataFrame:
    """The scored segments whose middle lies on the route line, with ``mid_km`` along it."""
    line = route_geometry(run.G, route)
    segs = run.risk.segments
    mids = segs.geometry.interpolate(0.5, normalized=True)
    on = segs.loc[mids.distance(line) < 0.5].copy()
    on["mid_km"] = [line.project(p) / 1000.0 for p in mids[on.index]]
    return on.sort_values("mid_km")


def worst_on_route(run: Run, route: Route) -> pd.Series:
    """The route's segment of highest rate, with ``start_km`` (chainage of its start)."""
    on = route_segments(run, route)
    worst = on.loc[on["rate"].idxmax()].copy()
    worst["start_km"] = worst["mid_km"] - worst["length_m"] / 2000.0
    return worst
