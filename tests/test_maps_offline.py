"""The map opens with no network: every asset embedded, nothing linked; online is an option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import convoyrisk as cr
from convoyrisk._errors import InputError
from convoyrisk.cli import main
from convoyrisk.maps import embed_assets

from .helpers.mapdata import map_data

# a tag that loads from the network (the embedded scripts' own links to their home pages
# are text, not requests; tests/test_browser.py watches the requests themselves)
_NETWORK = re.compile(
    r"""<(?:script|link|img)\b[^>]+(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE
)


def _styles(page: str) -> str:
    return "".join(re.findall(r"<style>(.*?)</style>", page, re.DOTALL))


@pytest.fixture(scope="module")
def offline_page(tmp_path_factory, default_graph, default_risk) -> str:
    m = cr.risk_map(default_graph, default_risk, time_slider=True, cluster=True)
    return cr.save_map(m, tmp_path_factory.mktemp("off") / "map.html").read_text(encoding="utf-8")


def test_offline_map_links_nothing_on_the_network(offline_page: str) -> None:
    assert not _NETWORK.search(offline_page)
    assert "L.map(" in offline_page and "Leaflet" in offline_page  # Leaflet itself is embedded
    assert "L.heatLayer" in offline_page and "MarkerClusterGroup" in offline_page
    assert "L.Control.MiniMap" in offline_page and "L.Control.Measure" in offline_page
    # CSS asks for no file either: only data: URIs (or fragment ids) in url(...)
    urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", _styles(offline_page))
    assert urls, "expected the embedded CSS's data: images"
    assert all(u.startswith(("data:", "#")) for u in urls), [u[:40] for u in urls]
    assert "@import" not in _styles(offline_page)
    assert "@font-face" not in _styles(offline_page)


def test_offline_map_leaves_out_unused_frameworks(offline_page: str) -> None:
    # folium links Bootstrap, jQuery and Font Awesome by default; nothing here uses them
    assert "Bootstrap" not in offline_page
    assert "Font Awesome" not in offline_page
    assert "jQuery" not in offline_page
    assert len(offline_page) < 1_000_000


def test_online_map_links_cdns_and_embeds_nothing(
    tmp_path: Path, default_graph, default_risk
) -> None:
    m = cr.risk_map(default_graph, default_risk)
    page = cr.save_map(m, tmp_path / "map.html", offline=False).read_text(encoding="utf-8")
    assert re.search(
        r'<script src="https://cdn\.jsdelivr\.net/npm/leaflet@[\d.]+/dist/leaflet\.js"', page
    )
    assert "leaflet-heat" in page or "leaflet_heat" in page
    assert "Bootstrap" not in page


def test_unknown_asset_is_an_input_error() -> None:
    with pytest.raises(InputError, match="--online"):
        embed_assets('<script src="https://example.invalid/x.js"></script>')


def test_cli_map_options_reach_the_map(tmp_path: Path) -> None:
    out = tmp_path / "m.html"
    res = CliRunner().invoke(
        main,
        [
            "map", "-q", "--out", str(out), "--no-heat", "--time-slider",
            "--tiles", "OpenStreetMap", "--decimals", "4", "--simplify", "50",
            "--no-minimap", "--cluster",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    data = map_data(page)
    assert data["heat"] is None
    assert data["slider"] == {"start": "2023-10-31", "days": 4}
    assert data["decimals"] == 4
    assert data["minimap"] is None
    assert data["incidents"]["cluster"] is True
    assert [t[0] for t in data["tiles"]] == ["openstreetmap"]
    assert data["tilesShown"] is False  # offline: the tiles wait until picked
    assert not _NETWORK.search(page.replace("tile.openstreetmap.org", ""))
    assert "map written to" in res.output


def test_cli_online_shows_tiles(tmp_path: Path) -> None:
    out = tmp_path / "m.html"
    res = CliRunner().invoke(
        main,
        ["map", "-q", "--no-routes", "--out", str(out), "--online", "--tiles", "OpenStreetMap"],
    )
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert map_data(page)["tilesShown"] is True
    assert "tile.openstreetmap.org" in page
    assert '<script src="https://' in page


def test_cli_bad_tiles_is_one_line_and_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        ["map", "-q", "--no-routes", "--out", str(tmp_path / "m.html"), "--tiles", "No Such Tiles"],
    )
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "tiles" in res.output
    assert not (tmp_path / "m.html").exists()
