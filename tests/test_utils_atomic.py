"""Related outputs are written all or none (`utils.atomic_paths`), also by `convoyrisk snap`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from convoyrisk import cli
from convoyrisk.utils import atomic_paths

from .test_snapping_cli import acled  # noqa: F401 - a fixture


def test_all_written_together(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "sub" / "b.json"
    with atomic_paths([a, b]) as (ta, tb):
        ta.write_text("x")
        tb.write_text("y")
        assert not a.exists()
        assert not b.exists()
    assert a.read_text() == "x"
    assert b.read_text() == "y"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.csv", "b.json"]


def test_none_written_when_one_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("old")

    def write_then_fail() -> None:
        with atomic_paths([a, b]) as (ta, _):
            ta.write_text("new")
            msg = "boom"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert a.read_text() == "old"  # the earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_snap_writes_placed_and_rejects_or_neither(
    acled: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = cli._write_table
    calls: list[Path] = []

    def second_fails(frame: pd.DataFrame, path: Path, tmp: Path) -> None:
        calls.append(path)
        if len(calls) == 2:
            msg = "disk full"
            raise OSError(msg)
        real(frame, path, tmp)

    monkeypatch.setattr(cli, "_write_table", second_fails)
    out = tmp_path / "out" / "placed.csv"
    result = CliRunner().invoke(cli.main, ["snap", "--incidents", str(acled), "--out", str(out)])
    assert isinstance(result.exception, OSError)
    assert calls == [out, tmp_path / "out" / "placed_rejects.csv"]
    assert list((tmp_path / "out").iterdir()) == []
