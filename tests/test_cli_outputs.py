"""Every output option of every command is checked before any work starts.

A run that would fail only when writing, after minutes of reading, snapping and
scoring, is refused at once: one line, exit code 2. Each case replaces the
command's first step of work with a trap, so a refusal that comes late fails
the test instead of passing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convoyrisk import cli as cli_module
from convoyrisk import fetch, utils
from convoyrisk._errors import InputError

from .helpers.cli import assert_one_line_error, cli
from .helpers.graphs import REPO

ROADS = REPO / "data" / "geo" / "roads.geojson"
INCIDENTS = REPO / "data" / "geo" / "incidents.csv"

NOWHERE = "/proc/x"  # /proc holds no new folder, even for root (whom os.access says yes to)


def _trap(*_: object, **__: object) -> None:
    msg = "the work started before the outputs were checked"
    raise AssertionError(msg)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any command that gets as far as its first step of work."""
    monkeypatch.setattr(cli_module, "_run", _trap)
    monkeypatch.setattr(cli_module, "read_incident_sources", _trap)
    monkeypatch.setattr(cli_module, "_check_road_file", _trap)
    monkeypatch.setattr(fetch, "fetch_to_file", _trap)


COMMANDS = {
    "map": ["map", "-q", "--out", f"{NOWHERE}/m.html"],
    "map (pdf)": ["map", "-q", "--out", f"{NOWHERE}/brief.pdf"],
    "routes": ["routes", "-q", "--out", f"{NOWHERE}/r.gpx"],
    "score": ["score", "-q", "--out", f"{NOWHERE}/seg.gpkg"],
    "snap": ["snap", "-q", "--out", f"{NOWHERE}/placed.csv"],
    "network build": ["network", "build", str(ROADS), "--out", f"{NOWHERE}/g.gpkg"],
    "fetch acled": [
        "fetch",
        "acled",
        "--country",
        "Mali",
        "--since",
        "2023-01-01",
        "--out",
        f"{NOWHERE}/acled.csv",
    ],
}


@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.usefixtures("no_work")
def test_an_output_folder_that_cannot_be_made_is_refused_first(args: list[str]) -> None:
    line = assert_one_line_error(cli(*args), NOWHERE)
    assert "cannot create or write in /proc" in line
    assert "`--out`" in line


@pytest.mark.usefixtures("no_work")
def test_every_kind_of_bad_output_is_refused_first(tmp_path: Path) -> None:
    # an existing directory (with an extension convoyrisk writes)
    folder = tmp_path / "r.gpx"
    folder.mkdir()
    line = assert_one_line_error(cli("routes", "-q", "--out", str(folder)), "`--out`")
    assert "is a directory" in line
    # a folder that is a file
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    assert_one_line_error(
        cli("map", "-q", "--out", str(blocker / "m.html")), "cannot create or write in"
    )
    # a special file
    fifo = tmp_path / "pipe.gpx"
    os.mkfifo(fifo)
    assert_one_line_error(cli("routes", "-q", "--out", str(fifo)), "special file")
    # an input of the run (the basemap is one)
    tiles = tmp_path / "tiles.html"
    tiles.write_bytes(b"not tiles")
    assert_one_line_error(
        cli("map", "-q", "--basemap", str(tiles), "--out", str(tiles)), "also an input"
    )
    assert tiles.read_bytes() == b"not tiles"
    # two outputs of one run that are one file
    placed = tmp_path / "placed.csv"
    line = assert_one_line_error(
        cli("snap", "-q", "--out", str(placed), "--merge-report", str(placed)),
        "`--merge-report`",
    )
    assert "same file as `--out`" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "file.txt",
        "pipe.gpx",
        "r.gpx",
        "tiles.html",
    ]


def test_check_outputs_tries_the_folder_and_leaves_nothing(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "out.csv"
    flat = tmp_path / "out.gpkg"
    got = utils.check_outputs({"`--out`": deep, "`--other`": flat, "`--none`": None})
    assert got == {"`--out`": deep.resolve(), "`--other`": flat.resolve()}
    assert list(tmp_path.iterdir()) == []  # no probe left, no folder made before the write
    with pytest.raises(InputError, match="cannot create or write in /proc"):
        utils.check_outputs({"`--out`": Path(NOWHERE) / "y" / "out.csv"})
    with pytest.raises(InputError, match="same file as `--out`"):
        utils.check_outputs({"`--out`": flat, "the rejects file": tmp_path / "." / "out.gpkg"})
