"""Metric CRSs whose metres are true where the data is, and geodesic lengths.

A road graph is drawn in a projected CRS so that snapping and offsets can be
measured on the plane, but a projection is only true near its centre: Web
Mercator stretches distances by 4 % at Mali's latitude, and one UTM zone drifts
by more than 1 % two zones away. This module

- measures how far a CRS is from true metres over a set of points
  (:func:`scale_error`, from PROJ's Tissot indicatrix);
- picks a suitable CRS for the data (:func:`suitable_crs`): its UTM zone when
  the data fits it, else a transverse Mercator, Lambert conformal conic or
  azimuthal equidistant projection centred on the data, whichever distorts
  least;
- checks a CRS a user forced (:func:`check_metric_crs`);
- measures line lengths on the WGS84 ellipsoid (:func:`geodesic_lengths`), as
  OSMnx measures edge lengths on the sphere, whatever CRS the lines are drawn in.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS, Geod, Proj, Transformer
from pyproj.exceptions import CRSError

from ._errors import InputError

GEOD = Geod(ellps="WGS84")
"""The ellipsoid every length is measured on."""

MAX_SCALE_ERROR = 0.01
"""Largest relative distance error (1 %) a graph's CRS may make over its nodes.

Web Mercator (4 % at 16°N, 100 % at 60°N) and a UTM zone used two zones away
(1.1 %) are over it; a UTM zone over its own zone (at most 0.1 %) and the
projections :func:`suitable_crs` builds for country-sized networks are well under.
"""

UTM_SCALE_ERROR = 0.0015
"""A UTM zone is chosen when its distance error over the data is at most this
(0.15 %: the data lies within the zone, give or take a little); otherwise a
projection centred on the data is built."""

_SAMPLE = 4096  # points used to measure a CRS's distortion over the data


def _sample(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """At most `_SAMPLE` points, evenly spread through the arrays, plus the bounding box corners."""
    x = np.asarray(lon, dtype=float).ravel()
    y = np.asarray(lat, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) > _SAMPLE:
        pick = np.linspace(0, len(x) - 1, _SAMPLE).astype(np.int64)
        x, y = x[pick], y[pick]
    if len(x):
        w, e, s, n = x.min(), x.max(), y.min(), y.max()
        x = np.r_[x, w, e, w, e]
        y = np.r_[y, s, s, n, n]
    return x, y


def is_metre_crs(crs: CRS) -> bool:
    """Whether `crs` is projected with both axes in metres."""
    return bool(crs.is_projected) and all(
        axis.unit_conversion_factor == 1.0 for axis in crs.axis_info[:2]
    )


def scale_error(crs: str | CRS, lon: npt.ArrayLike, lat: npt.ArrayLike) -> float:
    """Largest relative error of a distance measured in `crs` near the given points.

    The extremes of the scale in any direction at each point are the semi-axes
    of PROJ's Tissot indicatrix; the error is the largest of ``|a - 1|`` and
    ``|b - 1|`` over the points (at most 4,096 of them, and the corners of their
    bounding box).

    Parameters
    ----------
    crs
        A projected CRS.
    lon, lat
        Points in degrees (WGS84).

    Returns
    -------
    float
        Relative error (0.01 is 1 %); infinite for a geographic CRS or where the
        projection is undefined.

    Examples
    --------
    >>> round(scale_error("EPSG:3857", [0.0], [60.0]), 3)  # Web Mercator at 60°N
    1.0
    >>> scale_error("EPSG:32631", [3.0], [0.0]) < 0.0005  # UTM 31N on its central meridian
    True
    """
    crs = CRS.from_user_input(crs)
    if not crs.is_projected:
        return math.inf
    x, y = _sample(lon, lat)
    if len(x) == 0:
        return 0.0
    factors = Proj(crs).get_factors(x, y, errcheck=False)
    a = np.asarray(factors.tissot_semimajor, dtype=float)
    b = np.asarray(factors.tissot_semiminor, dtype=float)
    err = np.maximum(np.abs(a - 1.0), np.abs(b - 1.0))
    if not np.isfinite(err).all():
        return math.inf
    return float(err.max())


def _utm(lon: np.ndarray, lat: np.ndarray) -> CRS | None:
    """The UTM zone of the centre of the points (WGS84), None beyond 84°N / 80°S."""
    lon_c = (float(lon.min()) + float(lon.max())) / 2.0
    lat_c = (float(lat.min()) + float(lat.max())) / 2.0
    if not -80.0 <= lat_c <= 84.0:
        return None
    zone = min(int((lon_c + 180.0) // 6.0) + 1, 60)
    return CRS.from_epsg((32600 if lat_c >= 0 else 32700) + zone)


def _centred(lon: np.ndarray, lat: np.ndarray) -> list[CRS]:
    """Projections centred on the points: transverse Mercator, Lambert conic, azimuthal."""
    west, east = float(lon.min()), float(lon.max())
    south, north = float(lat.min()), float(lat.max())
    lon0, lat0 = round((west + east) / 2.0, 4), round((south + north) / 2.0, 4)
    tail = "+x_0=0 +y_0=0 +datum=WGS84 +units=m"
    out: list[CRS] = []
    # transverse Mercator: scale 1 on the central meridian, growing east and west;
    # k_0 below 1 shares the error between the middle and the edges
    tm = CRS.from_proj4(f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k_0=1 {tail}")
    err = scale_error(tm, lon, lat)
    if math.isfinite(err):
        k0 = round(2.0 / (2.0 + err), 6)
        out.append(CRS.from_proj4(f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k_0={k0} {tail}"))
    # Lambert conformal conic, standard parallels at 1/6 and 5/6 of the latitudes
    span = north - south
    lat1, lat2 = round(south + span / 6.0, 4), round(north - span / 6.0, 4)
    if abs(lat1 + lat2) > 1e-3 and max(abs(lat1), abs(lat2)) < 89.0:
        out.append(
            CRS.from_proj4(
                f"+proj=lcc +lat_1={lat1} +lat_2={lat2} +lat_0={lat0} +lon_0={lon0} {tail}"
            )
        )
    out.append(CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} {tail}"))
    return out


def suitable_crs(lon: npt.ArrayLike, lat: npt.ArrayLike) -> CRS:
    """A projected CRS in metres whose distances are true near the given points.

    The points' UTM zone when its distance error over them is at most
    :data:`UTM_SCALE_ERROR` (a network within one zone); otherwise, of the UTM
    zone and three projections centred on the points (transverse Mercator with a
    balanced scale factor, Lambert conformal conic with standard parallels at
    1/6 and 5/6 of the latitudes, azimuthal equidistant), the one whose largest
    distance error over the points is least.

    Parameters
    ----------
    lon, lat
        Points in degrees (WGS84), e.g. every vertex of a road layer.

    Examples
    --------
    >>> suitable_crs([2.0, 2.5], [16.0, 16.5]).to_epsg()  # a small area: its UTM zone
    32631
    >>> crs = suitable_crs([-12.0, 4.0], [10.0, 25.0])  # Mali: four UTM zones
    >>> scale_error(crs, [-12.0, 4.0, -4.0], [10.0, 25.0, 17.0]) < 0.005
    True
    """
    x, y = _sample(lon, lat)
    if len(x) == 0:
        msg = "Cannot choose a CRS for no points: the layer has no coordinates."
        raise InputError(msg)
    utm = _utm(x, y)
    candidates = ([utm] if utm is not None else []) + _centred(x, y)
    errors = [scale_error(c, x, y) for c in candidates]
    if utm is not None and errors[0] <= UTM_SCALE_ERROR:
        return utm
    return candidates[int(np.argmin(errors))]


def crs_name(crs: CRS) -> str:
    """`crs` as a short string: ``EPSG:n`` when it has a code, else its PROJ string.

    Examples
    --------
    >>> crs_name(CRS.from_epsg(32631))
    'EPSG:32631'
    """
    code = crs.to_epsg()
    if code is not None:
        return f"EPSG:{code}"
    return str(crs.srs).replace(" +type=crs", "")


def to_lonlat(x: npt.ArrayLike, y: npt.ArrayLike, crs: str | CRS) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in `crs` to longitude and latitude (WGS84 degrees)."""
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = back.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def parse_crs(crs: str | CRS, *, what: str = "`crs`") -> CRS:
    """`crs` as a :class:`pyproj.CRS`, or an :class:`InputError` saying how to write one."""
    try:
        return CRS.from_user_input(crs)
    except CRSError as exc:
        msg = (
            f"{what} {crs!r} is not a CRS PROJ knows: give an EPSG code such as "
            "'EPSG:32631' (a UTM zone) or leave it unset to choose one from the data."
        )
        raise InputError(msg) from exc


def check_metric_crs(crs: str | CRS, lon: npt.ArrayLike, lat: npt.ArrayLike) -> CRS:
    """`crs` if it is projected in metres and true to :data:`MAX_SCALE_ERROR` near the points.

    Raises
    ------
    InputError
        Naming what is wrong (geographic, not in metres, too distorted here) and
        the CRS :func:`suitable_crs` would use instead.
    """
    given = parse_crs(crs)
    name = crs_name(given)
    if not given.is_projected:
        problem = "is geographic (degrees)"
    elif not is_metre_crs(given):
        unit = given.axis_info[0].unit_name
        problem = f"measures in {unit}, not metres"
    else:
        err = scale_error(given, lon, lat)
        if err <= MAX_SCALE_ERROR:
            return given
        problem = (
            f"stretches distances by up to {err:.1%} where the roads are "
            f"(more than {MAX_SCALE_ERROR:.0%})"
        )
    better = crs_name(suitable_crs(lon, lat))
    msg = (
        f"`crs` {name} {problem}: lengths and snapping need true metres. Leave `crs` "
        f"unset (`--crs` off) to use {better}, or pass a projection in metres made for "
        "this area."
    )
    raise InputError(msg)


def geodesic_lengths(geoms: npt.ArrayLike, crs: str | CRS) -> np.ndarray:
    """Length of each line on the WGS84 ellipsoid, in metres, whatever CRS it is drawn in.

    Each line's vertices are taken to longitude and latitude and the geodesic
    distances between consecutive vertices are summed (:data:`GEOD`), as
    :meth:`pyproj.Geod.line_length` does for one line.

    Parameters
    ----------
    geoms
        LineStrings (or any geometries: the length of their vertex sequence).
    crs
        CRS of `geoms`.

    Examples
    --------
    >>> line = shapely.LineString([(0.0, 0.0), (1.0, 0.0)])  # one degree of the equator
    >>> round(float(geodesic_lengths([line], "EPSG:4326")[0]), 1)
    111319.5
    """
    arr = np.asarray(geoms, dtype=object)
    n = len(arr)
    coords, idx = shapely.get_coordinates(arr, return_index=True)
    if len(coords) < 2:
        return np.zeros(n)
    if CRS.from_user_input(crs).is_geographic and CRS.from_user_input(crs).to_epsg() == 4326:
        lon, lat = coords[:, 0], coords[:, 1]
    else:
        lon, lat = to_lonlat(coords[:, 0], coords[:, 1], crs)
    same = idx[1:] == idx[:-1]
    _, _, dist = GEOD.inv(lon[:-1][same], lat[:-1][same], lon[1:][same], lat[1:][same])
    return np.bincount(idx[:-1][same], weights=np.asarray(dist, dtype=float), minlength=n)
