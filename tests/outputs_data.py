"""The embedded Kidal–Gao run, with one bad incident row, for the output tests."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import pandas as pd

import convoyrisk as cr
from convoyrisk.routing import Route

DATA = Path(__file__).resolve().parents[1] / "data" / "geo"
AS_OF = "2023-11-04"


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
