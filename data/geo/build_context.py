"""Bring the Natural Earth country borders for the map's context layer into the package.

Source: the npm package ``world-atlas`` (ISC licence, Copyright 2013-2019 Michael
Bostock), a TopoJSON redistribution of Natural Earth 4.1.0 (public domain) Admin 0
country boundaries at 1:50m. This script fetches it with the ordinary npm client,
checks the tarball against the registry's integrity hash, and copies the one file we
use (``countries-50m.json``, unchanged) and the package's LICENSE (the ISC notice
must travel with copies) into ``src/convoyrisk/data/context/``, with a PROVENANCE
file saying where, when and which hash. Run from the repository root::

    python data/geo/build_context.py            # needs `npm` and the npm registry
    python data/geo/build_context.py --tarball world-atlas-2.0.2.tgz
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "world-atlas"
VERSION = "2.0.2"
FILES = ("countries-50m.json", "LICENSE")
OUT = Path(__file__).resolve().parents[2] / "src" / "convoyrisk" / "data" / "context"


def fetch(tmp: Path) -> tuple[Path, str]:
    """`npm pack` the package into `tmp`; return the tarball and the registry's integrity."""
    npm = shutil.which("npm")
    if npm is None:
        msg = "npm is not installed: install it (apt-get install npm), or pass --tarball."
        raise SystemExit(msg)
    args = [npm, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(tmp)]
    res = subprocess.run(args, capture_output=True, text=True, check=True)  # noqa: S603 - fixed
    info = json.loads(res.stdout)[0]
    return tmp / info["filename"], str(info["integrity"])


def main(argv: list[str] | None = None) -> int:
    """Fetch, check and copy; 1 if the tarball does not match the registry's hash."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="a world-atlas tarball already fetched")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.tarball:
            tarball, integrity = args.tarball, ""
        else:
            tarball, integrity = fetch(tmp)
        data = tarball.read_bytes()
        sha512 = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if integrity and integrity != sha512:
            print(f"integrity mismatch: registry {integrity}, file {sha512}", file=sys.stderr)
            return 1
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp / "x", filter="data")
        OUT.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(tmp / "x" / "package" / name, OUT / name)
        (OUT / "PROVENANCE.md").write_text(
            f"""# Provenance of the context layer data

- `countries-50m.json`: unchanged from the npm package `{PACKAGE}@{VERSION}`
  (tarball {sha512}), a TopoJSON redistribution of Natural Earth 4.1.0 Admin 0
  country boundaries, 1:50m (Natural Earth: public domain).
- `LICENSE`: that package's ISC licence (Copyright 2013-2019 Michael Bostock), kept
  with the copy as the licence asks.
- Brought in by `data/geo/build_context.py` on {dt.datetime.now(dt.UTC).date().isoformat()}.
""",
            encoding="utf-8",
        )
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
