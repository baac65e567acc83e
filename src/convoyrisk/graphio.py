"""Built graphs in and out of files: GeoPackage and GraphML.

:func:`save_graph` writes a graph that follows the contract of
:mod:`convoyrisk.convert`; :func:`read_built_gpkg` and :func:`read_graphml`
read it back without rebuilding. :func:`convoyrisk.network.load_graph` picks
the reader (or a builder) from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import shapely

from ._errors import InputError
from .convert import CREATED_WITH, as_text, edges_gdf, graph_from_tables, nodes_gdf, validate_graph
from .utils import atomic_path, first_line, without_gc

GRAPH_LAYERS = ("nodes", "edges", "graph")
"""Layers of a GeoPackage written by :func:`save_graph`."""


@without_gc
def save_graph(G: nx.MultiDiGraph, path: str | Path) -> Path:
    """Write a graph to GraphML (``.graphml``) or GeoPackage (``.gpkg``), atomically.

    The GeoPackage holds layers ``nodes``, ``edges`` (one row per road, with
    ``oneway``; :func:`convoyrisk.network.load_graph` adds the reversed twins) and ``graph``
    (CRS and build report). GraphML stores geometry as WKT, as OSMnx does.
    """
    validate_graph(G)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".graphml", ".gpkg"}:
        msg = f"Cannot write {path}: the output must end in .graphml or .gpkg."
        raise InputError(msg)
    nodes = nodes_gdf(G)
    edges = edges_gdf(G, forward_only=True).reset_index()
    with atomic_path(path) as tmp:
        if suffix == ".gpkg":
            nodes.reset_index(names="node").to_file(tmp, layer="nodes", engine="pyogrio")
            edges = edges.drop(columns=["key", "reversed"], errors="ignore")
            for c in edges.columns:
                if edges[c].dtype == object and c != "geometry":
                    edges[c] = [as_text(x) for x in edges[c]]
            edges.to_file(tmp, layer="edges", engine="pyogrio")
            meta = pd.DataFrame(
                {
                    "key": ["crs", "build", "source_crs"],
                    "value": [
                        G.graph["crs"],
                        json.dumps(G.graph.get("build", {})),
                        str(G.graph.get("source_crs", "")),
                    ],
                }
            )
            pyogrio.write_dataframe(meta, tmp, layer="graph")
        else:
            H = nx.MultiDiGraph()
            H.graph.update(
                {
                    k: (json.dumps(val) if isinstance(val, dict) else str(val))
                    for k, val in G.graph.items()
                }
            )
            H.add_nodes_from(G.nodes(data=True))
            H.add_edges_from(
                (uu, vv, kk, {a: _graphml_value(x) for a, x in d.items()})
                for uu, vv, kk, d in G.edges(keys=True, data=True)
            )
            nx.write_graphml(H, tmp)
    return path


def _graphml_value(value: Any) -> Any:  # noqa: ANN401 - attribute values vary
    if isinstance(value, shapely.Geometry):
        return shapely.to_wkt(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return as_text(value)


def is_built_gpkg(path: Path) -> bool:
    """Whether `path` is a GeoPackage written by :func:`save_graph` (it has its layers)."""
    try:
        layers = {str(name) for name, _ in pyogrio.list_layers(path)}
    except pyogrio.errors.DataSourceError:
        return False
    return set(GRAPH_LAYERS) <= layers


@without_gc
def read_built_gpkg(path: Path) -> nx.MultiDiGraph:
    """A graph from a GeoPackage written by :func:`save_graph`, as it was saved."""
    try:
        nodes = pyogrio.read_dataframe(path, layer="nodes", read_geometry=False)
        edges = pyogrio.read_dataframe(path, layer="edges")
        meta = pyogrio.read_dataframe(path, layer="graph", read_geometry=False)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"Cannot read graph {path}: {first_line(exc)}. Rebuild it with `network build`."
        raise InputError(msg) from exc
    info = dict(zip(meta["key"], meta["value"], strict=True))
    nodes = pd.DataFrame(nodes).set_index("node")
    edges = pd.DataFrame(edges)
    edges["geometry"] = np.asarray(edges["geometry"].to_numpy(), dtype=object)
    for c in edges.columns:
        if edges[c].dtype == object and c != "geometry":
            edges[c] = edges[c].fillna("")
    return graph_from_tables(
        nodes,
        edges,
        crs=info["crs"],
        graph_attrs={"source_crs": info.get("source_crs", ""), "build": json.loads(info["build"])},
    )


@without_gc
def read_graphml(path: Path) -> nx.MultiDiGraph:
    """A MultiDiGraph from a GraphML file, with its values typed.

    A GraphML written by :func:`save_graph` comes back as it was saved (its
    ``created_with`` graph attribute says so); one written by OSMnx (or any
    other tool) gets its geometries, OSM ids and coordinates parsed, and needs
    :func:`convoyrisk.network.graph_from_osmnx` to follow the graph contract.
    Node ids are integers when every id in the file is one, else text.

    Raises
    ------
    InputError
        If the file is not GraphML or holds no edge.
    """
    try:
        try:
            G = nx.read_graphml(path, node_type=int, force_multigraph=True)
        except ValueError:  # node ids that are not integers (momepy's "(x, y)")
            G = nx.read_graphml(path, node_type=str, force_multigraph=True)
    except Exception as exc:  # XML and type errors of a bad file
        msg = (
            f"Cannot read GraphML {path}: {first_line(exc)}. "
            "Save it again with OSMnx or `network build`."
        )
        raise InputError(msg) from exc
    if not isinstance(G, nx.MultiDiGraph):
        G = nx.MultiDiGraph(G)
    if G.number_of_edges() == 0:
        msg = f"GraphML {path} has no edges: it holds {G.number_of_nodes()} node(s) and no road."
        raise InputError(msg)
    wkt = [d.get("geometry") for *_, d in G.edges(data=True)]
    if str(G.graph.get("created_with", "")).startswith(CREATED_WITH):
        geoms = shapely.from_wkt(wkt)
        for (*_, d), g in zip(G.edges(data=True), geoms, strict=True):
            d["geometry"] = g
        if isinstance(G.graph.get("build"), str):
            G.graph["build"] = json.loads(G.graph["build"])
        return G
    _osmnx_graphml_types(G, wkt)
    return G


def _osmnx_graphml_types(G: nx.MultiDiGraph, wkt: list[Any]) -> None:
    """Turn the text values of an OSMnx GraphML into geometries, ids and floats."""
    geoms = shapely.from_wkt(wkt)
    for (*_, d), g, text in zip(G.edges(data=True), geoms, wkt, strict=True):
        if text is not None:
            d["geometry"] = g
        if "osmid" in d:
            d["osmid"] = _parse_id(d["osmid"])
    for _, d in G.nodes(data=True):
        for k in ("x", "y"):
            if k in d:
                d[k] = float(d[k])


def _parse_id(text: Any) -> Any:  # noqa: ANN401 - OSMnx stores ints or lists of ints as text
    s = str(text).strip()
    if s.startswith("["):
        return [int(x) for x in s.strip("[]").split(",") if x.strip()]
    try:
        return int(s)
    except ValueError:
        return s
