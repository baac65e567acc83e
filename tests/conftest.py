"""Shared fixtures: the embedded scenario. Helpers to import live in tests/helpers/."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import pytest

import convoyrisk as cr


@pytest.fixture(scope="session")
def places() -> gpd.GeoDataFrame:
    return cr.load_places()


@pytest.fixture(scope="session")
def default_graph(places: gpd.GeoDataFrame) -> nx.MultiDiGraph:
    return cr.name_nodes(cr.load_graph(), places)


@pytest.fixture(scope="session")
def default_risk(default_graph: nx.MultiDiGraph) -> cr.RiskResult:
    """The embedded scenario scored as `convoyrisk map` scores it (with its base rates)."""
    table = cr.read_incidents()
    snapped = cr.snap_incidents(default_graph, table.incidents)
    return cr.score_segments(default_graph, snapped, base_rates=cr.settings.default_base_rates())
