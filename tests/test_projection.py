"""True metres: distortion of a CRS, the CRS chosen for the data, geodesic lengths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer

from convoyrisk import InputError
from convoyrisk.projection import (
    MAX_SCALE_ERROR,
    check_metric_crs,
    crs_name,
    geodesic_lengths,
    scale_error,
    suitable_crs,
)

GEOD = Geod(ellps="WGS84")
A = 6_378_137.0  # WGS84 semi-major axis (m)


def _pairs(west: float, east: float, south: float, north: float, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.c_[
        rng.uniform(west, east, n),
        rng.uniform(south, north, n),
        rng.uniform(west, east, n),
        rng.uniform(south, north, n),
    ]


def _worst_local_error(crs: CRS, pts: np.ndarray, step_deg: float = 0.05) -> float:
    """Largest relative error of short planar distances against the geodesic, by simulation."""
    to_xy = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lon, lat = pts[:, 0], pts[:, 1]
    worst = 0.0
    for dlon, dlat in ((step_deg, 0.0), (0.0, step_deg), (step_deg, step_deg)):
        x0, y0 = to_xy.transform(lon, lat)
        x1, y1 = to_xy.transform(lon + dlon, lat + dlat)
        _, _, true = GEOD.inv(lon, lat, lon + dlon, lat + dlat)
        planar = np.hypot(np.subtract(x1, x0), np.subtract(y1, y0))
        worst = max(worst, float(np.abs(planar / true - 1).max()))
    return worst


def test_scale_error_of_web_mercator_is_sec_latitude() -> None:
    """Spherical Mercator's scale is sec(φ) in every direction (closed form)."""
    for lat in (0.0, 16.0, 45.0, 60.0):
        assert scale_error("EPSG:3857", [1.0], [lat]) == pytest.approx(
            1 / math.cos(math.radians(lat)) - 1, abs=1e-9
        )


def test_scale_error_of_utm_is_its_textbook_factor() -> None:
    """UTM: k = 0.9996 on the central meridian; off it, Snyder's series (1987, eq. 8-11)."""
    assert scale_error("EPSG:32631", [3.0], [0.0]) == pytest.approx(4e-4, abs=1e-9)
    # 12°W in zone 30 (central meridian 3°W), at 16°N: the issue's +1.13 %
    phi = math.radians(16.0)
    e2 = 0.00669437999014  # WGS84 first eccentricity squared
    ep2 = e2 / (1 - e2)
    t, c = math.tan(phi) ** 2, ep2 * math.cos(phi) ** 2
    a = math.radians(9.0) * math.cos(phi)
    k = 0.9996 * (
        1
        + (1 + c) * a**2 / 2
        + (5 - 4 * t + 42 * c + 13 * c**2 - 28 * ep2) * a**4 / 24
        + (61 - 148 * t + 16 * t**2) * a**6 / 720
    )
    assert scale_error("EPSG:32630", [-12.0], [16.0]) == pytest.approx(k - 1, rel=1e-4)
    assert scale_error("EPSG:4326", [0.0], [0.0]) == math.inf


def test_small_area_gets_its_utm_zone() -> None:
    assert suitable_crs([0.9, 1.4], [17.0, 18.5]).to_epsg() == 32631  # Kidal–Anéfis
    assert suitable_crs([24.90, 24.97], [60.15, 60.19]).to_epsg() == 32635  # Helsinki
    assert suitable_crs([-74.05, -73.9], [40.6, 40.8]).to_epsg() == 32618  # New York
    assert suitable_crs([151.1, 151.3], [-33.95, -33.8]).to_epsg() == 32756  # Sydney (south)


@pytest.mark.parametrize(
    ("bbox", "zones"),
    [
        ((-13.0, 10.0, 4.0, 25.0), 4),  # Mali: UTM 28 to 31
        ((-3.2, 15.2, 2.6, 18.6), 2),  # the embedded scenario: Timbuktu to Ménaka
        ((5.0, 45.0, 30.0, 55.0), 5),  # central Europe
    ],
)
def test_wide_networks_get_a_projection_true_to_half_a_percent(bbox, zones) -> None:
    """Checked by simulation: short planar distances against Geod, all over the area."""
    west, south, east, north = bbox
    pts = _pairs(west, east, south, north)
    crs = suitable_crs(pts[:, 0], pts[:, 1])
    assert crs.is_projected
    assert crs.axis_info[0].unit_name == "metre"
    utm_zone = int((west + east) / 2 + 180) // 6 + 1
    utm = CRS.from_epsg(32600 + utm_zone)
    ours, theirs = _worst_local_error(crs, pts), _worst_local_error(utm, pts)
    assert ours < 0.005
    assert ours < theirs  # better than one UTM zone for an area spanning `zones` zones
    assert zones >= 2


def test_check_metric_crs_refuses_degrees_feet_and_web_mercator() -> None:
    lon, lat = [0.0, 1.5], [16.0, 18.0]
    with pytest.raises(InputError, match=r"EPSG:4326 is geographic .*Leave `crs` unset"):
        check_metric_crs("EPSG:4326", lon, lat)
    with pytest.raises(InputError, match=r"EPSG:2263 measures in US survey foot"):
        check_metric_crs("EPSG:2263", [-74.0], [40.7])
    with pytest.raises(InputError, match=r"EPSG:3857 stretches distances by up to 5\.1%"):
        check_metric_crs("EPSG:3857", lon, lat)
    with pytest.raises(InputError, match=r"EPSG:32630 stretches distances by up to 1\.1%"):
        check_metric_crs("EPSG:32630", [-12.0, -11.9], [16.0, 16.1])
    with pytest.raises(InputError, match="not a CRS PROJ knows"):
        check_metric_crs("banana", lon, lat)
    assert check_metric_crs("EPSG:32631", lon, lat).to_epsg() == 32631
    assert MAX_SCALE_ERROR == 0.01


def test_geodesic_lengths_against_closed_form_and_pyproj() -> None:
    # one degree of the equator is a·π/180 on the ellipsoid
    equator = shapely.LineString([(0.0, 0.0), (1.0, 0.0)])
    assert geodesic_lengths([equator], "EPSG:4326")[0] == pytest.approx(
        A * math.pi / 180, rel=1e-12
    )
    # any line, in any CRS: pyproj's own line_length on the line's lon/lat
    rng = np.random.default_rng(3)
    lon = np.cumsum(rng.uniform(-0.2, 0.4, (5, 30)), axis=1) - 8.0
    lat = np.cumsum(rng.uniform(-0.2, 0.2, (5, 30)), axis=1) + 15.0
    lines = [shapely.LineString(np.c_[lo, la]) for lo, la in zip(lon, lat, strict=True)]
    truth = [GEOD.line_length(lo, la) for lo, la in zip(lon, lat, strict=True)]
    assert geodesic_lengths(lines, "EPSG:4326") == pytest.approx(truth, rel=1e-12)
    for crs in ("EPSG:3857", "EPSG:32630", "EPSG:2263"):
        fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        drawn = [shapely.transform(g, lambda c, f=fwd: np.c_[f.transform(*c.T)]) for g in lines]
        assert geodesic_lengths(drawn, crs) == pytest.approx(truth, rel=1e-9)


def test_crs_name() -> None:
    assert crs_name(CRS.from_epsg(32631)) == "EPSG:32631"
    custom = suitable_crs([-13.0, 4.0], [10.0, 25.0])
    assert crs_name(custom).startswith("+proj=")
    assert CRS.from_user_input(crs_name(custom)) == custom
