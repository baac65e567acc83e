"""Environment defaults: where the embedded data lives, CRSs, logging.

Analysis parameters (segment length, bandwidth, half-life...) are not here:
they live in :class:`convoyrisk.risk.RiskParams` and are passed explicitly.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path


def _scenario_dir() -> Path:
    """The folder of the installed package ``convoyrisk.scenario`` (the repository's data/geo)."""
    return Path(str(importlib.resources.files("convoyrisk.scenario")))


data_dir: Path = Path(os.environ.get("CONVOYRISK_DATA_DIR") or _scenario_dir())
"""Folder of the embedded Kidal–Gao data (``places.csv``, ``roads.geojson``,
``incidents.csv``): the package ``convoyrisk.scenario``, which is the
repository's ``data/geo/`` installed (a wheel carries it). Set
``CONVOYRISK_DATA_DIR`` to use another folder."""

default_crs: str = "EPSG:4326"
"""CRS assumed for plain latitude/longitude tables."""

display_crs: str = "EPSG:4326"
"""CRS used for drawing maps (Leaflet's lat/lon). Analysis never happens in it."""


def default_roads() -> Path:
    """Path of the embedded Kidal–Gao road layer."""
    return data_dir / "roads.geojson"


def default_places() -> Path:
    """Path of the embedded gazetteer."""
    return data_dir / "places.csv"


def default_base_rates() -> Path:
    """Path of the embedded regional base rates (1997–2020 IED aggregates, SCENARIO.md)."""
    return data_dir / "base_rates.geojson"


def default_incidents() -> Path:
    """Path of the embedded November 2023 incidents."""
    return data_dir / "incidents.csv"


def cache_dir() -> Path:
    """Where downloads and built networks are kept: ``$CONVOYRISK_CACHE_DIR``, else the user's.

    The user's cache folder is ``$XDG_CACHE_HOME/convoyrisk`` (``~/.cache/convoyrisk``).
    """
    if os.environ.get("CONVOYRISK_CACHE_DIR"):
        return Path(os.environ["CONVOYRISK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convoyrisk"
