"""Small shared helpers: atomic writes, progress callbacks and logging."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("convoyrisk")

Progress = Callable[[str, int, int], None]
"""A progress callback, called as ``progress(stage, done, total)`` during long work.

`stage` names the step ("reading incidents", "scoring", ...); `done` grows to
`total` (both in the step's own units: rows, sources, ...). The command line
passes one that draws a progress bar; library calls pass None (nothing shown).
"""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    Nothing is left behind if the body raises, so a failed run never leaves a
    half-written output file.

    Parameters
    ----------
    path
        Final destination. Its folder is created if missing.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as GDAL want to create the file themselves
    try:
        yield tmp
        tmp.replace(dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
