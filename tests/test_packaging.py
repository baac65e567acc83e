"""The wheel works outside the checkout: built, installed in a fresh virtualenv, run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .helpers.graphs import REPO


def _run(
    args: list[str | Path], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the caller checks the exit code
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CONVOYRISK_DATA_DIR", "PYTHONPATH"}}
    dist = tmp_path / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, REPO],
        tmp_path,
        env,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("convoyrisk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("places.csv", "roads.geojson", "incidents.csv"):
        assert f"convoyrisk/scenario/{data}" in names
    assert "convoyrisk/data/briefing.js" in names

    # a fresh virtualenv in a folder of its own; the dependencies come from this test's
    # environment (a path line after the venv's own site-packages: nothing is downloaded),
    # convoyrisk only from the wheel
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    installed = _run(
        [py, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel], tmp_path, env
    )
    assert installed.returncode == 0, installed.stderr
    site = _run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env
    )
    Path(site.stdout.strip(), "zz_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = "import convoyrisk, convoyrisk.settings as s; print(convoyrisk.__file__, s.data_dir)"
    where = _run([py, "-c", probe], work, env)
    assert where.returncode == 0, where.stderr
    module, data_dir = where.stdout.split()
    assert Path(module).is_relative_to(venv)
    assert Path(data_dir).is_relative_to(venv)
    assert not Path(module).is_relative_to(REPO)

    exe = venv / "bin" / "convoyrisk"
    mapped = _run([exe, "map", "--out", "briefing.html", "-q"], work, env)
    assert mapped.returncode == 0, mapped.stderr
    page = (work / "briefing.html").read_text(encoding="utf-8")
    assert "Kidal" in page
    assert "Anéfis" in page
    assert len(page) > 100_000  # Leaflet and the data are embedded

    routes = _run([exe, "routes", "--format", "json", "-q"], work, env)
    assert routes.returncode == 0, routes.stderr
    doc = json.loads(routes.stdout)
    assert (doc["from"], doc["to"]) == ("Kidal", "Gao")
    # the main road: 350 km on the ellipsoid, as data/geo/digitise.py drew it
    assert doc["routes"][0]["length_km"] == pytest.approx(350.0, abs=0.05)


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    """CONVOYRISK_DATA_DIR points the embedded-data readers at another folder."""
    (tmp_path / "places.csv").write_text(
        "name,aliases,latitude,longitude,kind,note,source\nTestville,,10.5,-3.25,town,,test\n",
        encoding="utf-8",
    )
    env = {**os.environ, "CONVOYRISK_DATA_DIR": str(tmp_path)}
    probe = (
        "import convoyrisk as cr; p = cr.load_places(); "
        "print(cr.settings.data_dir, list(p['name']), float(p.geometry.x.iloc[0]))"
    )
    out = _run([sys.executable, "-c", probe], tmp_path, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(tmp_path), "['Testville']", "-3.25"]
