"""A synthetic country written as the files users bring: an OSM PBF and an ACLED CSV.

:func:`write_country` builds, with fixed seeds,

* a perturbed grid of curved roads (every grid edge a way section with two
  bent intermediate nodes, ways running straight for 1-10 grid edges, some
  edges missing) with a mix of ``highway`` classes where unpaved tracks
  dominate, and towns as ``place=town|village`` nodes with a ``name``,
  written as a real ``.osm.pbf`` with pyosmium's ``SimpleWriter``;
* the same towns as a gazetteer CSV (convoyrisk reads places from a
  gazetteer, not from OSM place nodes);
* incidents in ACLED's export format (SCENARIO.md "Data conventions"),
  clustered along a few hot corridors between towns, dated over two years.

It returns what it wrote (counts by class, towns), so that a test can check
the reader against the writer.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from convoyrisk.incidents import ACLED_COLUMNS

HIGHWAY_MIX = {"primary": 0.03, "secondary": 0.07, "tertiary": 0.15, "track": 0.75}
"""Share of ways by ``highway`` class (tracks dominate, as in northern Mali)."""

SURFACE = {"primary": "asphalt", "secondary": "asphalt", "tertiary": "unpaved", "track": "sand"}


BBOX_FULL = (-5.0, 13.0, 2.0, 20.0)
"""lon0, lat0, lon1, lat1 of the full country (about 760 x 780 km around Mali's latitude)."""

M_PER_DEG_LAT = 110_700.0


@dataclass
class Country:
    """What :func:`write_country` wrote."""

    pbf: Path
    incidents: Path
    places: Path
    ways_by_class: dict[str, int] = field(default_factory=dict)
    grid_edges_by_class: dict[str, int] = field(default_factory=dict)
    towns: list[tuple[str, str, float, float]] = field(default_factory=list)
    n_nodes: int = 0
    n_incidents: int = 0
    origin: str = ""
    destination: str = ""

    @property
    def grid_edges(self) -> int:
        """Road edges between grid junctions (the edges of the noded network, unsimplified)."""
        return sum(self.grid_edges_by_class.values())


def grid_shape(n_edges: int, spacing_m: float, full_bbox: bool) -> tuple[int, int, float]:
    """Columns, rows and spacing (m) of a grid with about `n_edges` road edges.

    The full country keeps :data:`BBOX_FULL` and tightens the spacing; smaller
    sizes keep `spacing_m` and shrink the area (same density as the full one).
    """
    keep = 0.9  # share of grid edges present
    n_nodes = n_edges / (2 * keep)
    if full_bbox:
        lon0, lat0, lon1, lat1 = BBOX_FULL
        width = (lon1 - lon0) * M_PER_DEG_LAT * math.cos(math.radians((lat0 + lat1) / 2))
        height = (lat1 - lat0) * M_PER_DEG_LAT
        spacing_m = math.sqrt(width * height / n_nodes)
        return round(width / spacing_m), round(height / spacing_m), spacing_m
    side = round(math.sqrt(n_nodes))
    return side, side, spacing_m


def write_country(  # noqa: C901, PLR0912, PLR0915 - one linear recipe
    folder: Path,
    n_edges: int,
    n_incidents: int,
    *,
    full_bbox: bool = False,
    spacing_m: float = 1_100.0,
    n_towns: int | None = None,
    seed: int = 7,
) -> Country:
    """Write ``country.osm.pbf``, ``places.csv`` and ``events.csv`` into `folder`.

    Parameters
    ----------
    folder
        Output folder (created).
    n_edges
        About how many road edges between junctions.
    n_incidents
        Rows of the ACLED CSV.
    full_bbox
        Cover :data:`BBOX_FULL` (spacing follows from `n_edges`); otherwise a
        square of `spacing_m` cells in its south-west corner.
    spacing_m
        Grid spacing when not `full_bbox`.
    n_towns
        Place nodes; about one per 2,500 km² if None.
    seed
        Random seed.
    """
    import osmium  # noqa: PLC0415 - optional dependency (the osm extra)

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    nx_, ny_, spacing = grid_shape(n_edges, spacing_m, full_bbox)
    lon0, lat0 = BBOX_FULL[0], BBOX_FULL[1]
    lat_mid = lat0 + ny_ * spacing / M_PER_DEG_LAT / 2
    dlon = spacing / (M_PER_DEG_LAT * math.cos(math.radians(lat_mid)))
    dlat = spacing / M_PER_DEG_LAT
    # junctions, perturbed by up to a quarter cell
    ii, jj = np.meshgrid(np.arange(nx_), np.arange(ny_), indexing="ij")
    jx = lon0 + (ii + rng.uniform(-0.25, 0.25, ii.shape)) * dlon
    jy = lat0 + (jj + rng.uniform(-0.25, 0.25, jj.shape)) * dlat
    junction_id = 1 + ii * ny_ + jj  # OSM node ids of the junctions
    next_id = int(nx_ * ny_) + 1

    country = Country(folder / "country.osm.pbf", folder / "events.csv", folder / "places.csv")
    classes = np.array(list(HIGHWAY_MIX))
    shares = np.array(list(HIGHWAY_MIX.values()))
    pbf = country.pbf
    pbf.unlink(missing_ok=True)
    # nodes must come before ways: first compute the ways and their bend nodes
    bend_xy: list[np.ndarray] = []
    ways: list[tuple[list[int], str]] = []
    for horizontal in (True, False):
        lines, steps = (ny_, nx_) if horizontal else (nx_, ny_)
        for line in range(lines):
            pos = 0
            while pos < steps - 1:
                run = int(rng.integers(1, 11))
                end = min(pos + run, steps - 1)
                if rng.random() < 0.1 * run / 5:  # a missing stretch
                    pos = end
                    continue
                idx = np.arange(pos, end + 1)
                ia, ja = (
                    (idx, np.full_like(idx, line)) if horizontal else (np.full_like(idx, line), idx)
                )
                xs, ys = jx[ia, ja], jy[ia, ja]
                ids = junction_id[ia, ja]
                # two bent nodes per grid edge (a curved road)
                t = np.array([1 / 3, 2 / 3])
                bx = xs[:-1, None] + (xs[1:] - xs[:-1])[:, None] * t
                by = ys[:-1, None] + (ys[1:] - ys[:-1])[:, None] * t
                bend = rng.normal(0, 0.08, bx.shape)
                if horizontal:
                    by = by + bend * dlat
                else:
                    bx = bx + bend * dlon
                n_bend = bx.size
                bend_ids = np.arange(next_id, next_id + n_bend).reshape(-1, 2)
                next_id += n_bend
                bend_xy.append(np.c_[bx.ravel(), by.ravel()])
                refs = np.empty(len(ids) + n_bend, dtype=np.int64)
                refs[0::3] = ids
                refs[1::3] = bend_ids[:, 0]
                refs[2::3] = bend_ids[:, 1]
                cls = str(rng.choice(classes, p=shares))
                ways.append((refs.tolist(), cls))
                country.ways_by_class[cls] = country.ways_by_class.get(cls, 0) + 1
                country.grid_edges_by_class[cls] = (
                    country.grid_edges_by_class.get(cls, 0) + len(ids) - 1
                )
                pos = end
    bends = np.concatenate(bend_xy) if bend_xy else np.zeros((0, 2))
    # towns on junctions that roads reach
    on_road = np.zeros(nx_ * ny_ + 1, dtype=bool)
    for way_refs, _ in ways:
        on_road[way_refs[0::3]] = True
    area_km2 = nx_ * ny_ * (spacing / 1000) ** 2
    n_towns = n_towns if n_towns is not None else max(4, round(area_km2 / 2_500))
    candidates = np.flatnonzero(on_road[1:]) + 1
    town_ids = rng.choice(candidates, size=min(n_towns, len(candidates)), replace=False)
    for k, jid in enumerate(town_ids):
        i, j = divmod(int(jid) - 1, ny_)
        kind = "town" if k % 4 == 0 else "village"
        # the place node sits 50 m north of its junction (a node of its own)
        country.towns.append(
            (f"Town {k:03d}", kind, float(jy[i, j]) + 50 / M_PER_DEG_LAT, float(jx[i, j]))
        )
    with osmium.SimpleWriter(str(pbf)) as writer:
        for i in range(nx_):
            for j in range(ny_):
                writer.add_node(
                    osmium.osm.mutable.Node(
                        id=int(junction_id[i, j]), location=(float(jx[i, j]), float(jy[i, j]))
                    )
                )
        first_bend = int(nx_ * ny_) + 1
        for k, (x, y) in enumerate(bends):
            writer.add_node(
                osmium.osm.mutable.Node(id=first_bend + k, location=(float(x), float(y)))
            )
        for k, (name, kind, lat, lon) in enumerate(country.towns):
            writer.add_node(
                osmium.osm.mutable.Node(
                    id=next_id + k, location=(lon, lat), tags={"place": kind, "name": name}
                )
            )
        for w, (way_nodes, cls) in enumerate(ways):
            tags = {"highway": cls, "surface": SURFACE[cls]}
            if cls != "track":
                tags["ref"] = f"{cls[0].upper()}{w}"
            writer.add_way(osmium.osm.mutable.Way(id=w + 1, nodes=way_nodes, tags=tags))
    country.n_nodes = int(nx_ * ny_) + len(bends) + len(country.towns)
    pd.DataFrame(
        [(name, lat, lon, "") for name, _, lat, lon in country.towns],
        columns=["name", "latitude", "longitude", "aliases"],
    ).to_csv(country.places, index=False)
    _write_acled(country, n_incidents, rng)
    return country


def _write_acled(country: Country, n: int, rng: np.random.Generator) -> None:
    """ACLED rows clustered along 4 corridors between far-apart towns; 20 % scattered."""
    towns = np.array([(lat, lon) for _, _, lat, lon in country.towns])
    lat0, lon0 = towns.min(axis=0)
    lat1, lon1 = towns.max(axis=0)
    # corridors: the towns nearest to the bbox corners, paired across
    corners = np.array([(lat0, lon0), (lat1, lon1), (lat0, lon1), (lat1, lon0)])
    near = [int(np.argmin(((towns - c) ** 2).sum(axis=1))) for c in corners]
    mid = int(np.argmin(((towns - towns.mean(axis=0)) ** 2).sum(axis=1)))
    pairs = [(near[0], mid), (mid, near[1]), (near[2], mid), (mid, near[3])]
    country.origin, country.destination = country.towns[near[0]][0], country.towns[near[1]][0]
    n_hot = round(0.8 * n)
    which = rng.integers(0, len(pairs), n_hot)
    t = rng.uniform(0, 1, n_hot)
    a = towns[[pairs[w][0] for w in which]]
    b = towns[[pairs[w][1] for w in which]]
    pts = a + (b - a) * t[:, None] + rng.normal(0, 0.01, (n_hot, 2))  # ~1 km off the line
    scattered = np.c_[rng.uniform(lat0, lat1, n - n_hot), rng.uniform(lon0, lon1, n - n_hot)]
    pts = np.r_[pts, scattered]
    days = rng.integers(0, 730, n)
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")
    ied = rng.random(n) < 0.7
    with country.incidents.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(ACLED_COLUMNS)
        for k in range(n):
            d = dates[k]
            row = {
                "event_id_cnty": f"MLI{k + 1}",
                "event_date": d.strftime("%Y-%m-%d"),
                "year": d.year,
                "time_precision": 1,
                "disorder_type": "Political violence",
                "event_type": "Explosions/Remote violence" if ied[k] else "Battles",
                "sub_event_type": "Remote explosive/landmine/IED" if ied[k] else "Armed clash",
                "actor1": "JNIM: Group for Support of Islam and Muslims",
                "inter1": 2,
                "actor2": "Military Forces of Mali (2021-)",
                "inter2": 1,
                "interaction": 12,
                "civilian_targeting": "",
                "iso": 466,
                "region": "Western Africa",
                "country": "Mali",
                "admin1": "Synthetic",
                "location": "synthetic",
                "latitude": round(float(pts[k, 0]), 4),
                "longitude": round(float(pts[k, 1]), 4),
                "geo_precision": 1 if rng.random() < 0.8 else 2,
                "source": "Synthetic",
                "source_scale": "National",
                "notes": "synthetic event",
                "fatalities": int(rng.poisson(0.7)),
                "timestamp": 1_735_689_600,
            }
            out.writerow([row.get(c, "") for c in ACLED_COLUMNS])
    country.n_incidents = n
