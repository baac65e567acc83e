"""Country maps: the packed data (checked by decoders written here), the cells and the overview."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from shapely import LineString

import convoyrisk as cr
from convoyrisk.maps import (
    CELL_DEG,
    COUNTRY_MIN_SEGMENTS,
    OVERVIEW_HIGHWAYS,
    encode_chain,
    risk_map,
    save_map,
    sig_codes,
    varint_text,
    zigzag,
)
from convoyrisk.panels import CALM_CLASSES, MAP_CLASSES

from .helpers.mapdata import decode_chain, decode_deltas, decode_varints, map_data, unzigzag


def test_chain_matches_googles_documented_polyline() -> None:
    # Google's Encoded Polyline Algorithm Format page: (38.5, -120.2), (40.7, -120.95),
    # (43.252, -126.453) at 1e5 is "_p~iF~ps|U_ulLnnqC_mqNvxq`@" (latitude first, so the
    # line is given here with latitude as x)
    line = LineString([(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)])
    assert encode_chain([line], 5) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"


def test_varints_and_zigzag_round_trip() -> None:
    rng = np.random.default_rng(0)
    values = np.r_[0, 1, 31, 32, 1023, 1024, 2**40, rng.integers(0, 2**31, 500)]
    assert decode_varints(varint_text(values)) == values.tolist()
    signed = np.r_[0, -1, 1, -(2**35), rng.integers(-(2**31), 2**31, 500)]
    assert unzigzag(zigzag(signed).tolist()) == signed.tolist()
    with pytest.raises(ValueError, match="non-negative"):
        varint_text([-1])


def test_chain_round_trips_parts_geometries_and_empties() -> None:
    geoms = [
        LineString([(2.5, 14.0), (2.6, 14.1)]),
        LineString(),
        shapely.MultiLineString([[(2.6, 14.1), (2.7, 14.0)], [(3.0, 15.0), (3.1, 15.2)]]),
        LineString([(-1.23456, -0.5), (-1.2, -0.4)]),
    ]
    back = decode_chain(encode_chain(geoms, 4), 4)
    assert len(back) == 4
    assert back[1] == []
    assert [len(p) for p in back] == [1, 0, 2, 1]
    for geom, parts in zip(geoms, back, strict=True):
        lines = [g for g in shapely.get_parts(geom) if not g.is_empty]
        for part, line in zip(parts, lines, strict=True):
            np.testing.assert_allclose(part, shapely.get_coordinates(line), atol=0.5e-4)


def test_sig_codes_read_back_as_python_rounds() -> None:
    rng = np.random.default_rng(1)
    values = np.r_[10.0 ** rng.uniform(-9, 1.5, 2000), 0.0, 9.96, 0.000999, 1e-13]
    lo = 10  # two digits
    for v, code in zip(values.tolist(), sig_codes(values, 2).tolist(), strict=True):
        if code == 0:
            assert v < 1e-12
            continue
        e, m = divmod(code - 1, 9 * lo)
        back = (m + lo) * 10.0 ** (e - 12 - 1)
        assert back == pytest.approx(float(f"{v:.2g}"), rel=1e-12), v


@pytest.fixture(scope="module")
def country_page(
    default_graph: nx.MultiDiGraph, default_risk: cr.RiskResult, tmp_path_factory
) -> dict:
    out = tmp_path_factory.mktemp("country") / "country.html"
    save_map(risk_map(default_graph, default_risk, country=True, minimap=False), out)
    return map_data(out.read_text(encoding="utf-8"))


def _features(data: dict) -> gpd.GeoDataFrame:
    R = data["roads"]
    parts = decode_chain(R["geom"], data["decimals"])
    codes = [int(c) for c in R["cls"]]
    return gpd.GeoDataFrame(
        {
            "cls": [MAP_CLASSES[c] for c in codes],
            "id": decode_deltas(R["id"]),
            "count": decode_varints(R["count"]),
        },
        geometry=[shapely.MultiLineString(list(ps)) for ps in parts],
        crs="EPSG:4326",
    )


def test_default_map_is_not_a_country_map(default_risk: cr.RiskResult) -> None:
    assert len(default_risk.segments) < COUNTRY_MIN_SEGMENTS / 10


def test_every_feature_in_exactly_one_cell_and_in_the_right_one(country_page: dict) -> None:
    R = country_page["roads"]
    n = R["size"]
    owner = np.full(n, -1)
    for k, (_cx, _cy, first, count) in enumerate(R["cells"]):
        assert (owner[first : first + count] == -1).all()
        owner[first : first + count] = k
    assert (owner >= 0).all()
    # each cell holds overview features only or detail features only, overview first
    detail = np.arange(n) >= R["overview"]
    for _cx, _cy, first, count in R["cells"]:
        assert len(set(detail[first : first + count].tolist())) == 1
    # the cell is that of the centre of the feature's box, on a grid from the origin
    feats = _features(country_page)
    b = feats.geometry.bounds.to_numpy()
    centre = np.c_[(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2]
    cells = np.asarray(R["cells"])[owner]
    x0, y0 = R["origin"]
    assert R["cellDeg"] == CELL_DEG
    tol = 1e-4  # the cell was found before rounding to the decimals
    assert (centre[:, 0] >= x0 + cells[:, 0] * CELL_DEG - tol).all()
    assert (centre[:, 0] <= x0 + (cells[:, 0] + 1) * CELL_DEG + tol).all()
    assert (centre[:, 1] >= y0 + cells[:, 1] * CELL_DEG - tol).all()
    assert (centre[:, 1] <= y0 + (cells[:, 1] + 1) * CELL_DEG + tol).all()


def test_every_segment_drawn_in_its_class_and_hot_ones_in_the_overview(
    country_page: dict, default_graph: nx.MultiDiGraph, default_risk: cr.RiskResult
) -> None:
    feats = _features(country_page)
    R = country_page["roads"]
    segs = default_risk.segments
    assert feats["count"].sum() == len(segs)
    assert ";" in R["geom"]  # runs that start where the one before ends
    assert sorted(feats["id"]) == sorted(feats["id"].unique())
    mids = gpd.GeoSeries(
        shapely.line_interpolate_point(segs.geometry.to_numpy(), 0.5, normalized=True),
        crs=segs.crs,
    ).to_crs(feats.crs)
    overview = feats.iloc[: R["overview"]]
    highway = {(u, v, k): h for u, v, k, h in default_graph.edges(keys=True, data="highway")}
    major = np.array(
        [
            highway.get((u, v, k)) in OVERVIEW_HIGHWAYS
            for u, v, k in segs[["u", "v", "key"]].to_numpy()
        ]
    )
    hot = ~segs["risk_class"].isin(CALM_CLASSES).to_numpy()
    utm = segs.crs
    for i, (mid, cls) in enumerate(zip(mids, segs["risk_class"], strict=True)):
        pool = overview if hot[i] or major[i] else feats
        same = pool[pool["cls"] == cls]
        # within the display simplification (10 m) and rounding of a feature of its class
        d = (
            gpd.GeoSeries(same.geometry, crs=feats.crs)
            .to_crs(utm)
            .distance(gpd.GeoSeries([mid], crs=feats.crs).to_crs(utm).iloc[0])
        )
        assert d.min() < 12.0, (i, cls)
    # and a calm run is in the overview only on a major road
    by_id = segs.set_index("segment_id")
    for sid in overview.loc[overview["cls"].isin(CALM_CLASSES), "id"]:
        u, v, k = by_id.loc[sid, ["u", "v", "key"]]
        assert highway.get((u, v, k)) in OVERVIEW_HIGHWAYS
    detail = feats.iloc[R["overview"] :]
    assert detail["cls"].isin(CALM_CLASSES).all()


def test_country_tooltips_carry_contributors_of_hot_runs_only(country_page: dict) -> None:
    R = country_page["roads"]
    codes = [int(c) for c in R["cls"]]
    calm = set(R["calm"])
    tops = decode_varints(R["top"])
    at, named = 0, 0
    for c in codes:
        if c in calm:
            continue
        k = tops[at]
        assert all(0 <= tops[at + 1 + 2 * j] < len(R["items"]) for j in range(k))
        at += 1 + 2 * k
        named += 1
    assert at == len(tops)
    assert named == sum(c not in calm for c in codes)
    assert all(" " in item for item in R["items"])  # "ID date", the share is a number apart


def test_country_incident_columns_read_back_as_the_records(
    country_page: dict, default_graph: nx.MultiDiGraph, default_risk: cr.RiskResult, tmp_path
) -> None:
    cols = country_page["incidents"]["columns"]
    plain = tmp_path / "plain.html"
    save_map(risk_map(default_graph, default_risk, minimap=False), plain)
    rows = map_data(plain.read_text(encoding="utf-8"))["incidents"]["rows"]
    assert rows
    for key, col in cols.items():
        if "codes" in col:
            back = [col["values"][c] for c in decode_varints(col["codes"])]
        elif "fixed" in col:
            back = (decode_deltas(col["deltas"]) / 10.0 ** col["fixed"]).tolist()
        else:
            back = [None if v == 0 else unzigzag([v - 1])[0] for v in decode_varints(col["ints"])]
        want = [r[key] for r in rows]
        if "fixed" in col:
            np.testing.assert_allclose(back, want, atol=1e-9)
        else:
            assert back == [w if w is None or isinstance(w, int) else str(w) for w in want], key
