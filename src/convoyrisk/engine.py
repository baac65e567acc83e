"""Snapping and scoring on a dask cluster, with the same results as the in-process engine.

Both stages are sums or maps over incidents, so they partition by incident:

* :func:`snap_incidents_dask` cuts the incidents into row slices, snaps each
  slice with :func:`convoyrisk.snapping.snap_incidents` against one
  :class:`~convoyrisk.snapping.LineIndex` built once and scattered to the
  workers, and concatenates the slices in order.
* :func:`score_segments_dask` weighs the incidents once (cheap), cuts the used
  ones into slices of neighbouring source edges (the order the in-process
  engine visits them, so each slice's shortest-path searches stay local),
  computes each slice's lixel mass, incident counts and largest contributors
  on the workers, sums them, and applies Empirical Bayes once.

The graph, index and lixel arrays are scattered once and passed to the tasks
explicitly (never captured in closures: dask would pickle them to name every
task). Memory per worker is bounded by the partition size plus one copy of the
network. By default a :class:`distributed.LocalCluster` of two single-thread
workers in this process is started (GEOS, numba and scipy release the GIL, so
threads beat processes here); pass ``scheduler="tcp://host:8786"`` to use a
running cluster, or a :class:`distributed.Client`. See ``docs/scale.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd

from . import density, risk
from ._errors import InputError
from .compiled import CompiledGraph, compile_graph
from .risk import RiskParams, RiskResult
from .snapping import AUTO_NUMBA_POINTS, EXACT_M, LineIndex, snap_arrays, snap_incidents
from .utils import Progress

if TYPE_CHECKING:
    from distributed import Client

SNAP_PARTITION_ROWS = 100_000
"""Default incidents per snapping partition (about 100 MB of temporaries per worker)."""

SCORE_PARTITION_SOURCES = 50_000
"""Default used incidents per scoring partition."""

LOCAL_WORKERS = 2
"""Workers of the default local cluster."""


@contextlib.contextmanager
def dask_client(
    scheduler: str | Client | None = None,
    *,
    n_workers: int = LOCAL_WORKERS,
    processes: bool = False,
) -> Iterator[Client]:
    """A dask client: on `scheduler` (an address or a client), or on a new local cluster.

    Parameters
    ----------
    scheduler
        ``"tcp://host:8786"`` of a running ``dask-scheduler``, a
        :class:`distributed.Client` (used as is, not closed), or None for a
        local cluster of `n_workers` single-thread workers, closed on exit.
    n_workers
        Workers of the local cluster.
    processes
        Local workers in separate processes (memory per worker is then
        separate; threads are faster for this work).
    """
    try:
        import distributed  # noqa: PLC0415 - optional, slow import
    except ImportError as exc:  # pragma: no cover - distributed is in the dev extras
        msg = "The dask engine needs dask.distributed: `pip install 'distributed' dask`."
        raise InputError(msg) from exc
    dist: Any = distributed  # untyped library
    if isinstance(scheduler, dist.Client):
        yield scheduler
        return
    if scheduler is not None:
        client = _connect(dist, str(scheduler), CONNECT_TIMEOUT_S)
        with client:
            yield client
        return
    with (
        dist.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=":0",  # any free port: never clash with a running dask
        ) as cluster,
        dist.Client(cluster) as client,
    ):
        yield client


CONNECT_TIMEOUT_S = 10.0
"""Seconds a dask scheduler has to answer the handshake before :func:`dask_client` gives up."""


_FIX = (
    "start one with `dask-scheduler` (and workers with `dask-worker ADDRESS`) and give "
    "its address as tcp://HOST:PORT, or drop `--scheduler` to use a local cluster."
)


def check_address(scheduler: str) -> None:
    """Refuse a `scheduler` that is not of the form ``[tcp://]HOST:PORT`` (no network used).

    Raises
    ------
    InputError
        Naming ``--scheduler`` and the form wanted.
    """
    rest = scheduler.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"`--scheduler` {scheduler!r} is not an address like tcp://HOST:8786: {_FIX}"
        raise InputError(msg)


def _connect(dist: Any, scheduler: str, timeout_s: float) -> Client:  # noqa: ANN401 - untyped
    """A client of the scheduler at `scheduler`, or one clear error within about `timeout_s`.

    The connection is made in a daemon thread: a server that accepts the TCP
    connection but never answers the dask handshake (an HTTP server, say)
    would otherwise hold the caller forever.
    """
    check_address(scheduler)
    answer: queue.Queue[Any] = queue.Queue()

    def connect() -> None:
        try:
            answer.put(dist.Client(scheduler, timeout=f"{timeout_s:g}s"))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            answer.put(exc)

    threading.Thread(target=connect, name="convoyrisk-dask-connect", daemon=True).start()
    try:
        got = answer.get(timeout=timeout_s + 2.0)
    except queue.Empty:
        got = TimeoutError(f"no answer within {timeout_s:g} s")
    if isinstance(got, BaseException):
        reason = " ".join(str(got).split()[:12]) or type(got).__name__
        msg = f"No dask scheduler answered at {scheduler} within {timeout_s:g} s ({reason}): {_FIX}"
        raise InputError(msg) from got
    return got  # type: ignore[no-any-return]


def _slices(n: int, npartitions: int | None, per_partition: int, n_workers: int) -> list[slice]:
    """Contiguous slices of ``range(n)``: `npartitions`, or enough of `per_partition` rows."""
    if npartitions is None:
        npartitions = max(math.ceil(n / per_partition), min(n_workers, n), 1)
    if npartitions < 1:
        msg = f"`npartitions` must be at least 1, got {npartitions}."
        raise InputError(msg)
    bounds = np.linspace(0, n, npartitions + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def _n_workers(client: Client) -> int:
    return max(len(client.scheduler_info().get("workers", {})), 1)


def _snap_part(
    compiled: CompiledGraph,
    index: LineIndex,
    part: gpd.GeoDataFrame,
    max_distance_m: float,
    exact_m: float,
) -> gpd.GeoDataFrame:
    return snap_incidents(
        compiled, part, max_distance_m=max_distance_m, exact_m=exact_m, index=index
    )


def snap_incidents_dask(
    G: nx.MultiDiGraph,
    incidents: gpd.GeoDataFrame,
    *,
    max_distance_m: float = 5_000.0,
    exact_m: float = EXACT_M,
    scheduler: str | Client | None = None,
    npartitions: int | None = None,
    partition_rows: int = SNAP_PARTITION_ROWS,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """:func:`convoyrisk.snapping.snap_incidents` on a dask cluster: the same rows and values.

    Parameters
    ----------
    G, incidents, max_distance_m, exact_m
        As for :func:`~convoyrisk.snapping.snap_incidents`.
    scheduler
        See :func:`dask_client` (None: a local cluster of two workers).
    npartitions
        Number of row slices; default ``ceil(len(incidents) / partition_rows)``,
        at least one per worker.
    partition_rows
        Rows per slice when `npartitions` is None (bounds memory per task).
    progress
        Called as ``progress("snapping", rows_done, rows)`` as slices finish.

    Returns
    -------
    geopandas.GeoDataFrame
        Exactly what :func:`~convoyrisk.snapping.snap_incidents` returns.
    """
    if incidents.crs is None or len(incidents) == 0:
        # nothing to distribute; the in-process engine gives the answer or the error
        return snap_incidents(G, incidents, max_distance_m=max_distance_m, exact_m=exact_m)
    compiled = compile_graph(G)
    index, _ = LineIndex.from_graph(G)
    if index.engine == "auto" and len(incidents) >= AUTO_NUMBA_POINTS:
        # the in-process engine would use numba here; build its grid once, not per task
        index = LineIndex(index_lines(G), engine="numba")
    # the workers get the compiled arrays without the geometry (the index holds it), with
    # the forward edges and their chainage computed here once
    snap_arrays(compiled)
    light = dataclasses.replace(
        compiled,
        geoms=np.empty(0, dtype=object),
        memo={k: v for k, v in compiled.memo.items() if k.startswith("snapping.")},
    )
    with dask_client(scheduler) as client_:
        client: Any = client_
        g_f, i_f = client.scatter([light, index], broadcast=True, hash=False)
        parts = _slices(len(incidents), npartitions, partition_rows, _n_workers(client))
        # scattered, not embedded in the tasks: large task arguments are slow to send
        part_f = client.scatter([incidents.iloc[s] for s in parts], hash=False)
        futures = [
            client.submit(_snap_part, g_f, i_f, p, max_distance_m, exact_m, pure=False)
            for p in part_f
        ]
        results = _gather(client, futures, [s.stop - s.start for s in parts], "snapping", progress)
    out = pd.concat(results)
    return gpd.GeoDataFrame(out, geometry=out.geometry.name, crs=results[0].crs)


def _gather(
    client: Any,  # noqa: ANN401 - distributed.Client, imported lazily
    futures: list[Any],
    sizes: list[int],
    stage: str,
    progress: Progress | None,
) -> list[Any]:
    """The futures' results in order, telling `progress` the work done as each one ends."""
    if progress is not None:
        from distributed import as_completed  # noqa: PLC0415 - optional, slow import

        size_of = {f.key: n for f, n in zip(futures, sizes, strict=True)}
        total, done = int(sum(sizes)), 0
        progress(stage, 0, total)
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            done += size_of[future.key]
            progress(stage, done, total)
    return list(client.gather(futures))


def index_lines(G: nx.MultiDiGraph) -> list[Any]:
    """Geometries of the forward edges of `G`, in the order :class:`LineIndex` indexes them."""
    compiled = compile_graph(G)
    return list(compiled.geoms[compiled.forward_edges])


# ----------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------


def _density_part(
    net: density.Network,
    lix: density.Lixels,
    sources: density.Sources,
    spec: density.KernelSpec,
) -> tuple[Any, ...]:
    """Mass, counts and top contributors of one slice of sources (run on a worker)."""
    # one thread each: the cluster's workers are the parallelism
    d = density.network_density(net, lix, sources, spec, workers=1)
    return d.mass, d.count, d.top_id, d.top_val


def _cut_sources(src: Any, order: Any, starts: Any, n_parts: int) -> list[Any]:  # noqa: ANN401
    """`n_parts` slices of the sources in `order`, cut only where a new edge group starts."""
    n = len(order)
    targets = np.linspace(0, n, n_parts + 1)[1:-1]
    cuts = np.unique(starts[np.clip(np.searchsorted(starts, targets), 0, len(starts) - 1)])
    bounds = np.unique(np.r_[0, cuts, n])
    parts = []
    for a, b in itertools.pairwise(bounds):
        parts.append(src.take(np.sort(order[a:b])))
    return parts


def score_segments_dask(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    *,
    params: RiskParams | None = None,
    as_of: str | pd.Timestamp | None = None,
    scheduler: str | Client | None = None,
    npartitions: int | None = None,
    partition_sources: int = SCORE_PARTITION_SOURCES,
    progress: Progress | None = None,
    base_rates: gpd.GeoDataFrame | None = None,
    **overrides: Any,  # noqa: ANN401 - any parameter's type
) -> RiskResult:
    """:func:`convoyrisk.risk.score_segments` with the kernel density summed on a dask cluster.

    The density is a sum over incidents: each partition of used incidents
    gives its lixel masses, counts and largest contributions, computed on the
    part of the network its kernels can reach (only that part is sent to the
    worker); they are summed (and the largest merged), then Empirical Bayes
    runs once. Results equal the
    in-process engine's up to the order of floating-point additions (relative
    differences about 1e-15); where two different incidents contribute exactly
    the same mass to a segment, the one named among the top contributors may be
    another of the tied incidents.

    Parameters
    ----------
    G, snapped, params, as_of, base_rates, overrides
        As for :func:`~convoyrisk.risk.score_segments`.
    scheduler
        See :func:`dask_client` (None: a local cluster of two workers).
    npartitions
        Number of partitions of the used incidents; default
        ``ceil(used / partition_sources)``, at least one per worker.
    partition_sources
        Used incidents per partition when `npartitions` is None.
    progress
        Called as ``progress("scoring", sources_done, sources)`` as partitions finish.
    """
    params = (params or RiskParams()).replace(**overrides)
    prep = risk.prepare_scoring(G, snapped, params, as_of, base_rates=base_rates)
    with dask_client(scheduler) if len(prep.sources.owner) else contextlib.nullcontext() as client:
        dens = _cluster_density(
            client,
            prep,
            prep.sources,
            params.kernel_spec,
            npartitions=npartitions,
            partition_sources=partition_sources,
            progress=progress,
        )
        narrow = _cluster_density(
            client,
            prep,
            prep.narrow_sources,
            params.narrow_kernel_spec,
            npartitions=npartitions,
            partition_sources=partition_sources,
            progress=None,
        )
    return risk.finish_scoring(
        prep, dens.mass, dens.count, dens.top_id, dens.top_val, narrow_mass=narrow.mass
    )


def _cluster_density(
    client_: Client | None,
    prep: risk.ScoringInput,
    sources: density.Sources,
    spec: density.KernelSpec,
    *,
    npartitions: int | None,
    partition_sources: int,
    progress: Progress | None,
) -> density.Density:
    """The kernel density of `sources` summed over partitions run on the cluster."""
    net, lix = prep.net, prep.lix
    live = sources.owner
    k = spec.top_contributors
    if len(live) == 0 or client_ is None:
        return density.network_density(net, lix, sources, spec)
    client: Any = client_
    n_parts = npartitions or max(math.ceil(len(live) / partition_sources), _n_workers(client))
    order, starts = density.source_order(net, sources)
    parts = _cut_sources(sources, order, starts, n_parts)
    # each task gets the part of the network its incidents can reach, as arrays
    # (the edge geometries stay on the client): memory per worker follows the
    # partition's area, not the whole network's
    light = dataclasses.replace(net, geoms=np.empty(0, dtype=object))
    pieces = [density.reachable_part(light, lix, p) for p in parts]
    futures = []
    for part_net, part_lix, part_src, _ in pieces:
        args = client.scatter([part_net, part_lix, part_src], hash=False)
        futures.append(client.submit(_density_part, *args, spec, pure=False))
    results = _gather(client, futures, [len(p.edge) for p in parts], "scoring", progress)
    n_lix = len(lix.edge)
    mass = np.zeros(n_lix)
    count = np.zeros(n_lix, dtype=np.int64)
    top_id, top_val = np.full((n_lix, k), -1, dtype=np.int64), np.zeros((n_lix, max(k, 1)))
    for (*_, lix_of), (p_mass, p_count, p_id, p_val) in zip(pieces, results, strict=True):
        mass[lix_of] += p_mass
        count[lix_of] += p_count
        part_id, part_val = np.full_like(top_id, -1), np.zeros_like(top_val)
        part_id[lix_of], part_val[lix_of] = p_id[:, :k], p_val[:, : top_val.shape[1]]
        top_id, top_val = density.merge_top([top_id, part_id], [top_val, part_val], k)
    return density.Density(mass, count, top_id, top_val, np.ones(len(live)))
