"""Small shared helpers: safe atomic writes, progress callbacks and logging."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import ParamSpec, TypeVar

from ._errors import InputError

log = logging.getLogger("convoyrisk")

P_ = ParamSpec("P_")
R_ = TypeVar("R_")

Progress = Callable[[str, int, int], None]
"""A progress callback, called as ``progress(stage, done, total)`` during long work.

`stage` names the step ("reading incidents", "scoring", ...); `done` grows to
`total` (both in the step's own units: rows, sources, ...). The command line
passes one that draws a progress bar; library calls pass None (nothing shown).
"""


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_output(
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    what: str = "`--out`",
) -> Path:
    """Refuse an output path that cannot be written safely; return where to write.

    A symbolic link is written through (its target is replaced, the link
    stays), so the path returned is the link's target.

    Parameters
    ----------
    path
        The output file.
    inputs
        Files read by the same run: writing over one of them is refused.
    what
        How the path is named in messages (an option or parameter).

    Raises
    ------
    InputError
        If `path` is a directory, a special file (FIFO, device, socket), one of
        `inputs`, or lies in a folder that cannot be created or written.
    """
    given = Path(path)
    dest = Path(os.path.realpath(given))
    if dest.is_dir():
        msg = f"{what} {given} is a directory: give a file name (inside it or elsewhere)."
        raise InputError(msg)
    if dest.exists() and not stat.S_ISREG(dest.stat().st_mode):
        msg = (
            f"{what} {given} is a special file (FIFO, device or socket): convoyrisk writes "
            "whole files atomically; give a regular file path."
        )
        raise InputError(msg)
    for item in inputs:
        if item is not None and _same_file(Path(item), dest):
            msg = f"{what} {given} is also an input of this run: write to another file."
            raise InputError(msg)
    folder = dest.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not _can_create_in(folder, file=folder == dest.parent):
        msg = (
            f"{what} {given}: cannot create or write in {folder}: choose a folder you can write to."
        )
        raise InputError(msg)
    return dest


def _can_create_in(folder: Path, *, file: bool) -> bool:
    """Whether a file (or, for a path whose folders are missing, a folder) can be made in `folder`.

    Tried, not asked: ``os.access`` says yes to root for ``/proc`` or a
    read-only mount, where creating anything fails. The probe is removed at once.
    """
    try:
        if file:
            fd, name = tempfile.mkstemp(prefix=".convoyrisk-probe.", dir=folder)
            os.close(fd)
            Path(name).unlink()
        else:
            Path(tempfile.mkdtemp(prefix=".convoyrisk-probe.", dir=folder)).rmdir()
    except OSError:
        return False
    return True


def check_outputs(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> dict[str, Path]:
    """Check every output of a run before its work starts (:func:`check_output` on each).

    The command line calls this first in every command that writes, so a bad
    output path is one line and exit code 2 at once, not after minutes of work.

    Parameters
    ----------
    outputs
        Each output, keyed by how messages name it (e.g. ``"`--out`"``, ``"the
        rejects file"``); None values (options not given) are skipped.
    inputs
        Files read by the same run: writing over one of them is refused.

    Returns
    -------
    dict
        Where each given output will be written (symbolic links resolved).

    Raises
    ------
    InputError
        For the first output that :func:`check_output` refuses, or two outputs
        that are the same file.
    """
    inputs = list(inputs)
    checked: dict[str, Path] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        dest = check_output(path, inputs=inputs, what=what)
        for other, seen in checked.items():
            if seen == dest:
                msg = f"{what} {path} is the same file as {other}: give each output its own name."
                raise InputError(msg)
        checked[what] = dest
    return checked


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (where the platform can) until the block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Yield temporary paths beside `paths`; rename them all onto `paths` on success.

    Related files (a table and its rejects, segments and their parameters)
    are written as a unit: nothing is renamed until every body step has
    succeeded, and SIGINT/SIGTERM are held back during the renames, so a run
    never leaves a new file beside a stale one. Nothing is left behind if the
    body raises (or the process is interrupted: see :func:`exit_on_sigterm`).
    Each path is checked with :func:`check_output` first; symbolic links are
    written through.

    Raises
    ------
    InputError
        If a path cannot be written (see :func:`check_output`).
    """
    dests = [check_output(p, what="output") for p in paths]
    temps: list[Path] = []
    try:
        for dest in dests:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                msg = (
                    f"Cannot create the folder {dest.parent} for {dest} ({exc.strerror or exc}): "
                    "choose a folder you can write to."
                )
                raise InputError(msg) from exc
            try:
                fd, tmp_name = tempfile.mkstemp(
                    prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent
                )
            except OSError as exc:
                msg = (
                    f"Cannot write {dest} ({exc.strerror or exc}): choose a folder you can "
                    "write to."
                )
                raise InputError(msg) from exc
            os.close(fd)
            tmp = Path(tmp_name)
            tmp.unlink()  # writers such as GDAL want to create the file themselves
            temps.append(tmp)
        yield temps
        with _signals_held():
            for tmp, dest in zip(temps, dests, strict=True):
                tmp.replace(dest)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    Nothing is left behind if the body raises, so a failed run never leaves a
    half-written output file. See :func:`atomic_paths` (symbolic links are
    written through; directories and special files are refused).

    Parameters
    ----------
    path
        Final destination. Its folder is created if missing.
    """
    with atomic_paths(path) as (tmp,):
        yield tmp


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


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like SIGINT does, so temporary files are removed.

    Python's default SIGTERM ends the process at once, skipping the clean-up
    of :func:`atomic_path`; this turns it into ``SystemExit(143)``. Call it
    from the main thread of a program (the command line does); elsewhere it
    does nothing.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_exit)


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
