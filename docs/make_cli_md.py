"""Regenerate the command outputs in docs pages by running each example command.

Every ```console block of a page holds ``$ COMMAND`` lines; this runs each
command with bash in one scratch folder per page (where ``data/`` is the
repository's, so ``data/geo/...`` paths work and the files one example writes
are there for the next) and writes the block back with the real output.

    .venv/bin/python docs/make_cli_md.py                   # rewrite docs/cli.md, routing.md
    .venv/bin/python docs/make_cli_md.py docs/routing.md   # one page
    .venv/bin/python docs/make_cli_md.py --check           # exit 1 if one is out of date
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = (REPO / "docs" / "cli.md", REPO / "docs" / "routing.md")
BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def _run(command: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "120",
    }
    proc = subprocess.run(  # noqa: S603 - the doc's own example commands
        ["/bin/bash", "-c", f"{command} 2>&1"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return "".join(line.rstrip() + "\n" for line in proc.stdout.splitlines())


def regenerate(text: str, cwd: Path) -> str:
    """`text` with the output of each console block's commands replaced by a real run."""

    def one(match: re.Match[str]) -> str:
        commands = [line[2:] for line in match.group(1).splitlines() if line.startswith("$ ")]
        body = "".join(f"$ {c}\n{_run(c, cwd)}" for c in commands)
        return f"```console\n{body}```"

    return BLOCK.sub(one, text)


def main() -> int:
    """Rewrite the pages, or with ``--check`` say whether they are up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, default=list(PAGES))
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args()
    stale = 0
    for page in args.pages:
        old = page.read_text(encoding="utf-8")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "data").symlink_to(REPO / "data")
            new = regenerate(old, Path(tmp))
        stale += new != old
        if not args.check:
            page.write_text(new, encoding="utf-8")
    return int(args.check and stale > 0)


if __name__ == "__main__":
    raise SystemExit(main())
