"""Incremental scoring: add incidents to a scored network, recomputing only what they reach.

The network kernel density is a sum over episodes, so a scored network keeps
the parts of the sum it needs (:class:`ScoringState`): the network arrays and
segments, the incidents as given, each episode's kernel source, and the summed
lixel mass, reach counts and largest contributors. :func:`add_incidents` then

1. re-weighs and re-groups the union of the old and new incidents (weights,
   episodes and sources are cheap: vectorised, no network work; the segments
   in the radius of each unchanged location-uncertain episode are reused);
2. compares the union's kernel sources with the stored ones, row by row: a
   source is unchanged if its row, edge, offset, bandwidths and weights are the
   same (the weights after rescaling for a moved as-of date, see below);
3. adds the density of the new and changed sources (a network density run on
   those alone: the shortest-path searches stay in the part of the network
   their kernels reach);
4. where a stored source is gone or changed (a new device joined an existing
   episode and took its lead, or the episode merged with another, or the
   as-of date moved it out of the window), recomputes the segments that
   source reached from every source that reaches them, since a contribution
   cannot be taken out of the stored top contributors;
5. runs the per-segment Empirical Bayes step, :func:`~convoyrisk.risk.finish_scoring`,
   on the whole network, re-allocating the location-uncertain episodes by
   length × rate from their spread by length, as a full scoring does. It is
   global (the regional prior pools the raw counts over ``prior_scale_m``, and
   an episode's share moves with the rates around it), vectorised or compiled,
   and most of an update's time (docs/scale.md).

The hyperparameters stay those of the first scoring: ``bandwidth_m``,
``half_life_days``, the other :class:`~convoyrisk.risk.RiskParams`, and the
overdispersion ``k`` (estimated once, then fixed; :attr:`ScoringState.params`
holds it with ``tune="off"``). The result equals a full :func:`score_segments`
of the union with those parameters and the same as-of date (to rounding, see
the tests). Re-tune and re-score in full from time to time to move them.

The as-of date stays the stored one unless `as_of` is given: new incidents
dated after it are then not used (with a warning). Moving it forward by ``Δ``
days multiplies every stored weight by ``2^(−Δ/half_life)``, which scales the
stored density without recomputing it; incidents that leave the window are
taken out as in step 4.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from ._errors import ConvoyRiskWarning, InputError
from .compiled import compile_graph
from .convert import validate_graph
from .density import Density, IntArray, KernelSpec, Sources, merge_top, network_density
from .risk import (
    RiskParams,
    RiskResult,
    ScoringInput,
    finish_scoring,
    parse_as_of,
    prepare_incidents,
    prepare_scoring,
    scoring_densities,
    tune_params,
)
from .utils import Progress

_SAME_WEIGHT_RTOL = 1e-12  # a stored weight rescaled for a new as-of date matches to this


@dataclass
class ScoringState:
    """A scored network and what :func:`add_incidents` needs to update it.

    Attributes
    ----------
    result
        The scores.
    prep
        The prepared network, segments, incidents and kernel sources of `result`.
    segments
        The segments before scoring (geometry, ids, lengths): each update scores a copy.
    snapped
        The incidents as given (snapped, before weights and episodes).
    density
        Kernel density of ``prep.sources``: lixel mass, reach counts, top contributors.
    narrow
        Kernel density of ``prep.narrow_sources`` (the interval's finer look; mass only).
    graph_edges
        Edges of the graph scored (to refuse another graph).
    """

    result: RiskResult
    prep: ScoringInput
    segments: gpd.GeoDataFrame
    snapped: gpd.GeoDataFrame
    density: Density
    narrow: Density
    graph_edges: int

    @property
    def params(self) -> RiskParams:
        """The parameters updates use: those scored with, ``k`` fixed, ``tune="off"``."""
        return self.prep.params

    @property
    def as_of(self) -> pd.Timestamp:
        """The as-of date of the scores."""
        return self.prep.as_of


def score_with_state(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    *,
    params: RiskParams | None = None,
    as_of: str | pd.Timestamp | None = None,
    engine: str = "auto",
    workers: int | None = None,
    progress: Progress | None = None,
    base_rates: gpd.GeoDataFrame | str | Path | None = None,
    **overrides: Any,  # noqa: ANN401 - any parameter's type
) -> ScoringState:
    """:func:`~convoyrisk.risk.score_segments`, keeping what incremental updates need.

    Parameters
    ----------
    G, snapped, params, as_of, engine, workers, progress, base_rates, overrides
        As for :func:`~convoyrisk.risk.score_segments` (tuning, if on, runs here once).

    Returns
    -------
    ScoringState
        ``state.result`` is what ``score_segments`` returns; pass the state to
        :func:`add_incidents`.
    """
    validate_graph(G)
    params = (params or RiskParams()).replace(**overrides)
    if params.tune != "off":
        params = tune_params(G, snapped, params, as_of, base_rates=base_rates)
    prep = prepare_scoring(G, snapped, params, as_of, base_rates=base_rates)
    base = prep.segments.copy()
    density, narrow = scoring_densities(prep, engine=engine, workers=workers, progress=progress)
    result = finish_scoring(
        prep, density.mass, density.count, density.top_id, density.top_val, narrow_mass=narrow.mass
    )
    fixed = params.replace(tune="off", overdispersion_k=result.overdispersion)
    return ScoringState(
        result=result,
        prep=dataclasses.replace(prep, params=fixed),
        segments=base,
        snapped=snapped,
        density=density,
        narrow=narrow,
        graph_edges=len(compile_graph(G).u),
    )


def add_incidents(
    state: ScoringState,
    G: nx.MultiDiGraph,
    incidents: gpd.GeoDataFrame,
    *,
    as_of: str | pd.Timestamp | None = None,
    engine: str = "auto",
    workers: int | None = None,
) -> ScoringState:
    """Score the network again with `incidents` added, recomputing only what they reach.

    Parameters
    ----------
    state
        From :func:`score_with_state` or a previous :func:`add_incidents`.
    G
        The graph `state` was scored on (checked by its edge count and CRS).
    incidents
        New incidents, snapped onto `G` with :func:`convoyrisk.snapping.snap_incidents`
        (the same columns as the stored ones); appended after them.
    as_of
        A new as-of date (``YYYY-MM-DD``); the stored one if None.
    engine, workers
        As for :func:`~convoyrisk.risk.score_segments`.

    Returns
    -------
    ScoringState
        The updated state; ``.result`` holds the scores, equal to a full
        ``score_segments`` of all the incidents with ``state.params`` and the
        as-of date used.

    Raises
    ------
    InputError
        If `G` is not the graph scored, or `incidents` are in another CRS.
    """
    _check_inputs(state, G, incidents)
    params = state.params
    union = gpd.GeoDataFrame(
        pd.concat([state.snapped, incidents], ignore_index=True),
        geometry=state.snapped.geometry.name,
        crs=state.snapped.crs,
    )
    as_of_ts = state.as_of if as_of is None else parse_as_of(as_of, union["date"])
    old = state.prep
    prep = prepare_incidents(
        old.net,
        state.segments.copy(),
        old.lix,
        union,
        params=params,
        as_of=as_of_ts,
        base_rate=old.base_rate,
        reuse=old,
    )
    late = prep.incidents["used"].to_numpy()[len(state.snapped) :] == "after the as-of date"
    if late.any():
        warnings.warn(
            f"{int(late.sum())} new incident(s) are dated after the as-of date "
            f"{as_of_ts.date().isoformat()} and are not used: pass a later `as_of` to use them.",
            ConvoyRiskWarning,
            stacklevel=2,
        )
    factor = 0.5 ** ((as_of_ts - old.as_of).days / params.half_life_days)
    # narrow sources are the same rows at another bandwidth: a row changed in either is redone
    wide = _changed_sources(old.sources, prep.sources, len(union), factor)
    fine = _changed_sources(old.narrow_sources, prep.narrow_sources, len(union), factor)
    changed = (np.union1d(wide[0], fine[0]), np.union1d(wide[1], fine[1]))
    density = _update_density(
        prep,
        state.density,
        (old.sources, prep.sources),
        spec=params.kernel_spec,
        factor=factor,
        changed=changed,
        engine=engine,
        workers=workers,
    )
    narrow = _update_density(
        prep,
        state.narrow,
        (old.narrow_sources, prep.narrow_sources),
        spec=params.narrow_kernel_spec,
        factor=factor,
        changed=changed,
        engine=engine,
        workers=workers,
    )
    result = finish_scoring(
        prep, density.mass, density.count, density.top_id, density.top_val, narrow_mass=narrow.mass
    )
    return ScoringState(
        result=result,
        prep=prep,
        segments=state.segments,
        snapped=union,
        density=density,
        narrow=narrow,
        graph_edges=state.graph_edges,
    )


def _check_inputs(state: ScoringState, G: nx.MultiDiGraph, incidents: gpd.GeoDataFrame) -> None:
    crs = G.graph.get("crs")
    # the compiled graph is cached with the graph (an edge count walks every node)
    if len(compile_graph(G).u) != state.graph_edges or (
        crs is not None and state.segments.crs is not None and not state.segments.crs.equals(crs)
    ):
        msg = (
            "The graph is not the one scored: pass the graph the state was scored on "
            "(or score this graph in full with score_with_state)."
        )
        raise InputError(msg)
    if (
        incidents.crs is not None
        and state.snapped.crs is not None
        and not incidents.crs.equals(state.snapped.crs)
    ):
        msg = (
            f"The new incidents are in {incidents.crs.to_string()}, the scored ones in "
            f"{state.snapped.crs.to_string()}: snap them onto the same graph with "
            "snap_incidents."
        )
        raise InputError(msg)
    missing = [c for c in ("u", "v", "key", "status", "date") if c not in incidents.columns]
    if missing:
        msg = (
            f"The new incidents have no {', '.join(missing)} column(s): snap them onto the "
            "graph with snap_incidents first."
        )
        raise InputError(msg)


def _changed_sources(
    old: Sources, new: Sources, n_rows: int, factor: float
) -> tuple[IntArray, IntArray]:
    """New sources that differ from the stored ones (scaled by `factor`), and stored ones gone.

    Sources are matched by their incident row (rows keep their positions: new
    incidents are appended).
    """
    slot = np.full(n_rows, -1, dtype=np.int64)
    slot[old.owner] = np.arange(len(old.owner))
    j = slot[new.owner]
    has = j >= 0
    jj = j[has]
    same = np.zeros(len(new.owner), dtype=bool)
    same[has] = (
        (old.edge[jj] == new.edge[has])
        & (old.offset[jj] == new.offset[has])
        & (old.h1[jj] == new.h1[has])
        & (old.h2[jj] == new.h2[has])
        & np.isclose(old.w1[jj] * factor, new.w1[has], rtol=_SAME_WEIGHT_RTOL, atol=0.0)
        & np.isclose(old.w2[jj] * factor, new.w2[has], rtol=_SAME_WEIGHT_RTOL, atol=0.0)
    )
    kept = np.zeros(len(old.owner), dtype=bool)
    kept[j[same]] = True
    return np.flatnonzero(~same), np.flatnonzero(~kept)


def _update_density(
    prep: ScoringInput,
    old: Density,
    sources: tuple[Sources, Sources],
    *,
    spec: KernelSpec,
    factor: float,
    changed: tuple[IntArray, IntArray],
    engine: str,
    workers: int | None,
) -> Density:
    """The stored density scaled by `factor`, plus the added sources, with removed ones redone.

    `sources` are the stored ones and the union's; `changed` the union's sources
    added and the stored ones removed (by position in each).
    """
    net, lix = prep.net, prep.lix
    (stored, current), (added, removed) = sources, changed
    k = spec.top_contributors
    mass = old.mass * factor
    count = old.count.copy()
    top_id, top_val = old.top_id.copy(), old.top_val * factor
    if len(added):
        extra = network_density(net, lix, current.take(added), spec, engine=engine, workers=workers)
        mass += extra.mass
        count += extra.count
        top_id, top_val = merge_top([top_id, extra.top_id], [top_val, extra.top_val], k)
        top_id = np.ascontiguousarray(top_id)
    if len(removed):
        # where a stored source reached, sum again every source that reaches there
        gone = stored.take(removed)
        unit = dataclasses.replace(
            gone, w1=np.ones(len(removed)), w2=np.where(gone.w2 > 0, 1.0, 0.0)
        )
        foot = network_density(net, lix, unit, spec, engine=engine, workers=workers)
        region = np.flatnonzero((foot.mass > 0) | (foot.count > 0))
        redo = _sources_reaching(prep, current, region)
        again = network_density(net, lix, current.take(redo), spec, engine=engine, workers=workers)
        mass[region] = again.mass[region]
        count[region] = again.count[region]
        top_id[region] = again.top_id[region]
        top_val[region] = again.top_val[region]
    return Density(mass, count, top_id, top_val, np.ones(0))


def _sources_reaching(prep: ScoringInput, src: Sources, lixels: IntArray) -> IntArray:
    """Sources whose kernels may reach any of `lixels` (a shortest-path bound, no false misses).

    A kernel reaches a lixel on another edge only through a shortest path of
    at most its reach from an end of its own edge to an end of the lixel's edge.
    """
    net = prep.net
    if len(lixels) == 0 or len(src.edge) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.unique(prep.lix.edge[lixels])
    ends = np.unique(np.r_[net.eu[edges], net.ev[edges]])
    dist = dijkstra(
        net.csr, directed=False, indices=ends, min_only=True, limit=float(src.reach.max())
    )
    near = np.isfinite(np.asarray(dist))
    return np.flatnonzero(near[net.eu[src.edge]] | near[net.ev[src.edge]])
