"""The PDF briefing, checked through poppler (pdfinfo, pdftoppm, pdftotext), not matplotlib."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from convoyrisk import briefing, export
from convoyrisk.maps import CLASS_COLOURS, INSUFFICIENT_COLOUR

from .helpers.outputs import AS_OF, Run, expected_via, hot_spot_run, worst_on_route

MARKING = "UNCLASSIFIED // FOR OFFICIAL USE"
DPI = 100

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None,
    reason="poppler-utils missing: `apt-get install poppler-utils` (`make test` does it as root)",
)


@pytest.fixture(scope="module")
def run() -> Run:
    """A run whose data make a hot spot at Anéfis, so every class is on the page."""
    run = hot_spot_run()
    assert {"severe", "high", "elevated", "insufficient data"} <= set(
        run.risk.segments["risk_class"]
    )
    return run


def kwargs(run: Run) -> dict[str, object]:
    return {
        "places": run.places,
        "rejects": run.table.rejects,
        "info": run.info,
        "sources": ["UN statements of 1 and 6 Nov 2023"],
        "marking": MARKING,
        "title": "Kidal → Gao",
    }


@pytest.fixture(scope="module")
def pdf(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "briefing.pdf"
    return export.write_output(
        path,
        G=run.G,
        risk=run.risk,
        routes=run.routes,
        places=run.places,
        rejects=run.table.rejects,
        info=run.info,
        sources=["UN statements of 1 and 6 Nov 2023"],
        marking=MARKING,
        title="Kidal → Gao",
    )


def render(pdf: Path, out: Path) -> np.ndarray:
    """The PDF's page as poppler rasterises it (RGB, `DPI`)."""
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils missing")
    subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf), str(out)], check=True
    )
    return np.asarray(Image.open(out.with_suffix(".png")).convert("RGB"), dtype=float)


@pytest.fixture(scope="module")
def page(pdf: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return render(pdf, tmp_path_factory.mktemp("png") / "page")


@pytest.fixture(scope="module")
def roads_only(run: Run) -> Run:
    """The run with no incident markers: the hot spot's markers cover its roads on the page."""
    risk = type(run.risk)(**{**run.risk.__dict__, "incidents": run.risk.incidents.iloc[:0]})
    return replace(run, risk=risk)


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


@pytest.fixture(scope="module")
def frame(run: Run) -> tuple[Figure, Axes]:
    """The page as matplotlib lays it out, to know where map coordinates land on it."""
    return layout(run)


def layout(run: Run) -> tuple[Figure, Axes]:
    fig = briefing.briefing_figure(run.G, run.risk, run.routes, **kwargs(run))  # type: ignore[arg-type]
    (ax,) = [a for a in fig.axes if a.get_gid() == "map"]
    ax.apply_aspect()
    return fig, ax


def to_pixels(frame: tuple[Figure, Axes], xy: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Map coordinates (graph CRS, metres) to (row, col) of the rendered page."""
    fig, ax = frame
    disp = ax.transData.transform(xy)
    col = disp[:, 0] / fig.bbox.width * shape[1]
    row = (1.0 - disp[:, 1] / fig.bbox.height) * shape[0]
    return np.column_stack([row, col]).round().astype(int)


def inside(frame: tuple[Figure, Axes], xy: np.ndarray) -> np.ndarray:
    x0, x1 = sorted(frame[1].get_xlim())
    y0, y1 = sorted(frame[1].get_ylim())
    return (xy[:, 0] > x0) & (xy[:, 0] < x1) & (xy[:, 1] > y0) & (xy[:, 1] < y1)


def class_midpoints(run: Run, cls: str) -> np.ndarray:
    part = run.risk.segments[run.risk.segments["risk_class"] == cls]
    return shapely.get_coordinates(part.geometry.interpolate(0.5, normalized=True).to_numpy())


def colour_distances(img: np.ndarray, rc: np.ndarray, colour: np.ndarray, r: int) -> np.ndarray:
    """Smallest RGB distance to `colour` in the (2r+1)² window around each pixel."""
    return np.array(
        [
            float(
                np.linalg.norm(
                    img[row - r : row + r + 1, col - r : col + r + 1].reshape(-1, 3) - colour,
                    axis=1,
                ).min()
            )
            for row, col in rc
        ]
    )


@needs_poppler
def test_one_a4_landscape_page(pdf: Path) -> None:
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.MULTILINE)
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.MULTILINE)
    assert size is not None
    # A4 is 210 × 297 mm = 595.28 × 841.89 pt; landscape: wider than tall
    assert float(size[1]) == pytest.approx(297 / 25.4 * 72, abs=0.5)
    assert float(size[2]) == pytest.approx(210 / 25.4 * 72, abs=0.5)


@needs_poppler
def test_page_text_has_marking_date_table_and_limits(run: Run, pdf: Path) -> None:
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert text.count(MARKING) == 2  # top and bottom
    assert f"risk as of {AS_OF}" in text
    assert "UN statements of 1 and 6 Nov 2023" in text
    assert "Limits:" in text
    assert "1 input row(s) rejected" in text
    # route 1 in the table: the places it passes and its worst segment, found independently
    # (the cell wraps, so other cells' words may come between its lines)
    via = expected_via(run, run.routes[0])
    assert len(via) >= 2
    assert re.search("via " + ".*?".join(map(re.escape, via)), text, re.DOTALL), via
    worst = worst_on_route(run, run.routes[0])
    assert worst["risk_class"] == "severe"
    kms = [int(k) for k in re.findall(r"km (\d+) severe", text)]
    assert any(abs(k - worst["start_km"]) <= 0.55 for k in kms), kms
    # the legend names every class drawn, the grey "insufficient data" too
    for cls in set(run.risk.segments["risk_class"]):
        assert f"risk: {cls}" in text
    assert "Chokepoints" in text
    assert re.search(r"\b(10|20|50|100|200) km\b", text)  # the scale bar
    assert re.search(r"\b1°E\b", text)  # the grid's labels


@needs_poppler
def test_roads_are_drawn_where_the_roads_are(
    run: Run, page: np.ndarray, frame: tuple[Figure, Axes]
) -> None:
    hits = total = 0
    # every class the model gave, "insufficient data" (grey, dashed) included
    for cls in set(run.risk.segments["risk_class"]):
        mids = class_midpoints(run, cls)
        # roads beyond the map frame (the network reaches past the routes) are clipped
        keep = inside(frame, mids)
        rc = to_pixels(frame, mids[keep], page.shape)
        # at a segment's middle, within 2 px, a pixel of that class's colour
        colour = CLASS_COLOURS.get(cls, INSUFFICIENT_COLOUR)
        found = colour_distances(page, rc, rgb(colour), 2) < 45
        assert found.sum() >= 1, cls
        hits += int(found.sum())
        total += len(found)
    # place and incident markers, labels and the legend cover the few others
    assert total > 500
    assert hits / total > 0.9


@needs_poppler
def test_no_road_colour_far_from_the_roads(
    run: Run, page: np.ndarray, frame: tuple[Figure, Axes]
) -> None:
    x0, x1 = frame[1].get_xlim()
    y0, y1 = frame[1].get_ylim()
    gx, gy = np.meshgrid(np.linspace(x0, x1, 40)[1:-1], np.linspace(y0, y1, 40)[1:-1])
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    roads = shapely.union_all(run.risk.segments.geometry.to_numpy())
    far = shapely.distance(shapely.points(pts), roads) > 15_000
    # keep clear of the legend (upper left), north arrow and scale bar (right)
    fx = (pts[:, 0] - x0) / (x1 - x0)
    fy = (pts[:, 1] - y0) / (y1 - y0)
    clear = far & (fx > 0.3) & (fx < 0.85) & (fy > 0.12)
    assert clear.sum() > 50
    rc = to_pixels(frame, pts[clear], page.shape)
    for cls in ("low", "elevated", "high", "severe"):
        colour = rgb(CLASS_COLOURS[cls])
        dists = [
            float(
                np.linalg.norm(
                    page[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3) - colour, axis=1
                ).min()
            )
            for r, c in rc
        ]
        assert min(dists) > 60, cls


@needs_poppler
def test_risk_reads_in_grey_darker_as_it_rises(roads_only: Run, tmp_path: Path) -> None:
    """Printed in grey, severe roads are darker than high, high than elevated, than low.

    A test of the page, not of the model: each road (``road_id``) is given one class in
    turn, so every class has long stretches of its own (the model's hot spot puts its
    short high stretches between severe ones, whose wider lines cover them on paper).
    Read on a page without incident markers (they are darker than any road).
    """
    run = roads_only
    segs = run.risk.segments.copy()
    order = ("severe", "high", "elevated", "low")
    road = segs["road_id"].astype(str)
    code = {r: i for i, r in enumerate(sorted(road.unique()))}
    segs["risk_class"] = [order[code[r] % len(order)] for r in road]
    risk = type(run.risk)(**{**run.risk.__dict__, "segments": segs})
    run = replace(run, risk=risk, routes=[])  # route bands would be drawn over the roads
    pdf = export.write_output(
        tmp_path / "roads.pdf", G=run.G, risk=run.risk, routes=run.routes, **kwargs(run)
    )
    page = render(pdf, tmp_path / "roads")
    frame = layout(run)
    grey = page @ np.array([0.299, 0.587, 0.114])
    tone = {}
    for cls in order:
        mids = class_midpoints(run, cls)
        rc = to_pixels(frame, mids[inside(frame, mids)], page.shape)
        assert len(rc) >= 5, cls
        tone[cls] = float(np.median(grey[rc[:, 0], rc[:, 1]]))
    assert tone["severe"] < tone["high"] < tone["elevated"] < tone["low"]


def test_no_routes_still_makes_a_page(run: Run, tmp_path: Path) -> None:
    path = export.write_output(tmp_path / "risk.pdf", G=run.G, risk=run.risk)
    assert path.read_bytes().startswith(b"%PDF")
    assert list(tmp_path.iterdir()) == [path]


def test_failed_pdf_leaves_nothing(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        msg = "no space left"
        raise OSError(msg)

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken)
    with pytest.raises(OSError, match="no space"):
        export.write_output(tmp_path / "x.pdf", G=run.G, risk=run.risk, routes=run.routes)
    assert list(tmp_path.iterdir()) == []


def test_nice_steps() -> None:
    assert [briefing._nice(v) for v in (0.7, 1.0, 3.9, 49_999.0, 50_000.0, 0.013)] == [
        0.5,
        1.0,
        2.0,
        20_000.0,
        50_000.0,
        0.01,
    ]


@needs_poppler
def test_an_unknown_class_is_drawn_and_named(run: Run, tmp_path: Path) -> None:
    """A class the page does not know (none of the four, nor the model's own) is named too."""
    segs = run.risk.segments.copy()
    segs.loc[segs.index[:50], "risk_class"] = "not assessed"
    risk = type(run.risk)(**{**run.risk.__dict__, "segments": segs})
    path = briefing.write_briefing(tmp_path / "x.pdf", run.G, risk, run.routes)
    text = subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "risk: not assessed" in text
