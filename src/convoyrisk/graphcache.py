"""A cache of built road networks, keyed by the input file, so a second run skips the build.

Building a network from an OSM extract or a GIS layer (reading, noding,
simplifying, geodesic lengths) is the slowest way to get a graph; reading one
back from convoyrisk's own GeoPackage (:func:`convoyrisk.graphio.save_graph`) is
faster and gives the same graph. :func:`load_graph_cached` builds once, keeps
the GeoPackage in ``<cache_dir>/networks/`` (:func:`convoyrisk.settings.cache_dir`:
``$CONVOYRISK_CACHE_DIR``, else ``~/.cache/convoyrisk``), and reads it back the
next time the same file is loaded with the same options.

The key is the file's resolved path, size and modification time (nanoseconds),
the build options, and the convoyrisk, networkx and shapely versions: editing or
replacing the file, or upgrading, builds again. One entry per input file is
kept (a new build replaces the old one). A cache entry that cannot be read is
built again; a cache folder that cannot be written is skipped with a warning.
Built graphs (``.gpkg`` from ``network build``, convoyrisk GraphML) and the
embedded roads are not cached: they load fast already.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import networkx as nx

from ._errors import ConvoyRiskWarning
from .graphio import is_built_gpkg, save_graph
from .network import load_graph
from .settings import cache_dir
from .utils import Progress, first_line

CACHE_SUBDIR = "networks"
"""Folder of :func:`convoyrisk.settings.cache_dir` that holds the built networks."""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "0"


def cacheable(path: str | Path | None) -> bool:
    """Whether loading `path` builds a network (an OSM file or a GIS layer) worth caching."""
    if path is None:
        return False
    p = Path(path)
    if not p.is_file():
        return False
    suffix = p.suffix.lower()
    return suffix != ".graphml" and not (suffix == ".gpkg" and is_built_gpkg(p))


def cache_key(path: str | Path, options: dict[str, Any]) -> tuple[str, str]:
    """The file's part of the key (its resolved path) and the whole key, as hex digests.

    Parameters
    ----------
    path
        The road file.
    options
        The build options (JSON-serialisable after ``str`` of unknown types).
    """
    p = Path(path).resolve()
    stat = p.stat()
    whole = {
        "path": str(p),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "options": options,
        "versions": [_version(n) for n in ("convoyrisk", "networkx", "shapely")],
    }
    text = json.dumps(whole, sort_keys=True, default=str)
    file_part = hashlib.sha256(str(p).encode()).hexdigest()[:16]
    return file_part, hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_path(path: str | Path, options: dict[str, Any] | None = None) -> Path:
    """Where the network built from `path` with `options` is (or would be) cached."""
    file_part, key = cache_key(path, options or {})
    return cache_dir() / CACHE_SUBDIR / f"{file_part}-{key}.gpkg"


def load_graph_cached(
    path: str | Path | None,
    *,
    cache: bool = True,
    progress: Progress | None = None,
    **options: Any,  # noqa: ANN401 - load_graph's options, any type
) -> nx.MultiDiGraph:
    """:func:`convoyrisk.network.load_graph`, through the cache of built networks.

    Parameters
    ----------
    path
        As for ``load_graph``; only files that are built (OSM, GIS layers) are cached.
    cache
        False to build without looking in or writing to the cache.
    progress
        As for ``load_graph``.
    **options
        ``load_graph``'s options (part of the key).

    Returns
    -------
    networkx.MultiDiGraph
        The graph ``load_graph(path, **options)`` builds.
    """
    if not cache or not cacheable(path):
        return load_graph(path, progress=progress, **options)
    assert path is not None
    target = cached_path(path, options)
    if target.is_file():
        try:
            G = load_graph(target, progress=progress)
        except Exception as exc:  # noqa: BLE001 - a damaged entry is built again
            warnings.warn(
                f"Cached network {target} could not be read ({first_line(exc)}): building it "
                "again.",
                ConvoyRiskWarning,
                stacklevel=2,
            )
        else:
            return G
    G = load_graph(path, progress=progress, **options)
    try:
        for old in target.parent.glob(f"{target.name.split('-')[0]}-*.gpkg"):
            old.unlink(missing_ok=True)
        save_graph(G, target)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation
        warnings.warn(
            f"Could not keep the built network in {target.parent} ({first_line(exc)}): "
            "the next run builds it again (set CONVOYRISK_CACHE_DIR, or pass --no-cache).",
            ConvoyRiskWarning,
            stacklevel=2,
        )
    return G
