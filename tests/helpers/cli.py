"""Running the command line: in-process (CliRunner, quick) or as a real process."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from convoyrisk.cli import main


@dataclass
class Outcome:
    """What a command did: exit code and the two streams (as subprocess gives them)."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> Outcome:
    """The click entry point in this process; an unexpected exception is raised, not hidden."""
    res = CliRunner().invoke(main, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return Outcome(res.exit_code, res.stdout, res.stderr)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m convoyrisk ARGS`` as a separate process (one such test per command)."""
    return subprocess.run(
        [sys.executable, "-m", "convoyrisk", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def assert_one_line_error(proc: Outcome | subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, exactly one line on stderr holding every needle, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
