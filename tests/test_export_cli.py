"""`map --out` and `routes --out` choose the format by extension (real entry point)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import lxml.etree
import pyogrio
import pytest

from .helpers.cli import assert_one_line_error, run
from .helpers.outputs import GPX_XSD

MARKING = "UNCLASSIFIED // FOR OFFICIAL USE"


def test_routes_out_gpx_validates_and_the_json_still_prints(tmp_path: Path) -> None:
    out = tmp_path / "routes.gpx"
    proc = run("routes", "--format", "json", "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    schema = lxml.etree.XMLSchema(lxml.etree.parse(GPX_XSD))
    assert schema.validate(lxml.etree.parse(out)), schema.error_log
    tracks = pyogrio.read_dataframe(out, layer="tracks")
    assert len(tracks) == len(doc["routes"]) == 2
    assert list(tmp_path.iterdir()) == [out]


def test_routes_out_kmz_and_gpkg(tmp_path: Path) -> None:
    for name in ("b.kmz", "run.gpkg", "routes.parquet", "again.html"):
        out = tmp_path / name
        proc = run("routes", "-q", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 1000
    layers = {str(n) for n, _ in pyogrio.list_layers(tmp_path / "run.gpkg")}
    assert layers == {"segments", "routes", "incidents", "rejects", "places", "parameters"}


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils missing")
def test_map_out_pdf_with_marking(tmp_path: Path) -> None:
    out = tmp_path / "briefing.pdf"
    proc = run("map", "-q", "--out", str(out), "--marking", MARKING)
    assert proc.returncode == 0, proc.stderr
    assert f"PDF briefing written to {out}" in proc.stdout
    assert "Anéfis, Tabankort" in proc.stdout  # the alternatives table is still printed
    text = subprocess.run(
        ["pdftotext", str(out), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert text.count(MARKING) == 2
    assert "Kidal → Gao" in text


def test_unknown_extension_fails_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "briefing.docx"
    proc = run("map", "--out", str(out))
    assert_one_line_error(proc, "briefing.docx", ".gpx", ".pdf")
    assert_one_line_error(run("routes", "--out", str(out)), ".kmz")
    assert list(tmp_path.iterdir()) == []


def test_gpx_needs_routes(tmp_path: Path) -> None:
    proc = run("map", "--no-routes", "--out", str(tmp_path / "x.gpx"))
    assert_one_line_error(proc, "GPX holds routes")
    assert list(tmp_path.iterdir()) == []
