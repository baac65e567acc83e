"""Small shared helpers: atomic writes, progress callbacks and logging."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

log = logging.getLogger("convoyrisk")

P_ = ParamSpec("P_")
R_ = TypeVar("R_")

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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none).

    Examples
    --------
    >>> first_line(ValueError("bad value" + chr(10) + "more detail"))
    'bad value'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building or converting a graph.

    Building creates millions of small objects (dicts, geometries) and no
    reference cycles; the collector's repeated passes over them cost more than
    half the build time on 100k lines.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def without_gc(func: Callable[P_, R_]) -> Callable[P_, R_]:
    """Run `func` with the garbage collector paused (see :func:`gc_paused`)."""

    @functools.wraps(func)
    def wrapper(*args: P_.args, **kwargs: P_.kwargs) -> R_:
        with gc_paused():
            return func(*args, **kwargs)

    return wrapper
