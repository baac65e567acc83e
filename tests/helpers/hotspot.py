"""A scenario whose data really make Anéfis a hot spot: for tests that draw hot spots.

The embedded six incidents (10–56 km location uncertainty) score mostly "low" and
"insufficient data" under the risk model; these tests need severe segments. So the
embedded rows are kept and `n` precise (``precision_m`` 0) IEDs are added on the
Kidal–Tabankort road within `spread_m` of Anéfis, dated evenly over the year before
the as-of date (2023-11-04, the latest embedded incident): a steady hot spot, not one
episode.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

EMBEDDED = Path(__file__).resolve().parents[2] / "data" / "geo" / "incidents.csv"


def node_named(G: nx.MultiDiGraph, name: str) -> int:
    return next(n for n, d in G.nodes(data=True) if d.get("name") == name)


def write_hotspot_csv(
    G: nx.MultiDiGraph,
    places: gpd.GeoDataFrame,
    path: Path,
    *,
    n: int = 40,
    spread_m: float = 3000.0,
) -> Path:
    """The embedded incidents plus `n` precise IEDs at Anéfis, as a CSV at `path`."""
    crs = G.graph["crs"]
    path_nodes = nx.shortest_path(
        G, node_named(G, "Kidal"), node_named(G, "Tabankort"), weight="length"
    )
    road = shapely.line_merge(
        shapely.union_all(
            [
                min(G.get_edge_data(a, b).values(), key=lambda d: d["length"])["geometry"]
                for a, b in itertools.pairwise(path_nodes)
            ]
        )
    )
    assert road.geom_type == "LineString"
    anefis = places[places["name"] == "Anéfis"].to_crs(crs).geometry.iloc[0]
    at = road.project(anefis)
    offsets = np.linspace(-spread_m, spread_m, n)
    pts = gpd.GeoSeries([road.interpolate(at + o) for o in offsets], crs=crs).to_crs("EPSG:4326")
    dates = pd.date_range("2022-11-10", "2023-11-03", periods=n).strftime("%Y-%m-%d")
    extra = pd.DataFrame(
        {
            "event_id": [f"TEST-{i:02d}" for i in range(n)],
            "date": dates,
            "latitude": pts.y.round(5).to_numpy(),
            "longitude": pts.x.round(5).to_numpy(),
            "geo_precision": 1,
            "precision_m": 0,
            "killed": 0,
            "injured": 0,
            "type": "IED",
            "location": "near Anéfis",
            "notes": "synthetic test incident",
            "source": "test",
        }
    )
    pd.concat([pd.read_csv(EMBEDDED), extra], ignore_index=True).to_csv(path, index=False)
    return path
