"""Output paths, checked before any work starts: `~` expanded, `os.PathLike` and `bytes` accepted, symlinks followed
(a file is written through its link), the folder must exist and be writable. A failed write names its file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from nnx.errors import SaveError


def output_path(path, owner: str, *, suffixes: tuple[str, ...] | None = None, what: str = "file") -> Path:
    """`path` as the absolute Path that will be written, or a clear error naming `owner` before anything is done.

    `suffixes` (lower case, with the dot) limits the file's format; its case does not matter (`.CSV` is `.csv`).
    """
    target = _expanded(path, owner)
    try:
        _check_place(target, owner, what)
    except OSError as error:  # a name too long for the file system, a loop of links, ...
        raise ValueError(f"{owner}: {str(target)!r} cannot be a file here ({error.strerror or error})") from None
    if suffixes is not None and target.suffix.lower() not in suffixes:
        listed = " or ".join(suffixes) if len(suffixes) < 3 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
        raise ValueError(f"{owner} needs a {what} name ending in {listed}, got {str(target)!r}")
    return target


def _check_place(target: Path, owner: str, what: str) -> None:
    if target.is_dir():
        raise ValueError(f"{owner} needs a {what} name, got the folder {str(target)!r}; add a file name to it")
    folder = target.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{owner}: {str(folder)!r} in {str(target)!r} is a file, not a folder; choose another path")
    if not folder.is_dir():
        raise ValueError(
            f"{owner}: the folder {str(folder)!r} of {str(target)!r} does not exist; create it first "
            f"(os.makedirs({str(folder)!r}))"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"{owner}: the folder {str(folder)!r} of {str(target)!r} is not writable (its permissions, or a "
            f"read-only file system); choose another folder"
        )


def input_path(path, owner: str) -> Path:
    """`path` of a file to read: a str, bytes or os.PathLike, `~` expanded (the reader says whether it exists)."""
    return _expanded(path, owner)


def _expanded(path, owner: str) -> Path:
    """The path as text, `~` expanded, made absolute, through any symlinks to the file they point at."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    elif isinstance(path, os.PathLike):
        path = os.fspath(path)
        path = os.fsdecode(path) if isinstance(path, bytes) else path
    if not isinstance(path, str):
        raise TypeError(
            f"{owner}: the path must be a str, bytes or os.PathLike (e.g. pathlib.Path), got "
            f"{type(path).__name__} {path!r}"
        )
    if not path.strip():
        raise ValueError(f"{owner}: the path is empty; pass a file name")
    if "\0" in path:
        raise ValueError(f"{owner}: the path {path!r} contains a NUL character, which no file name may hold")
    return Path(os.path.realpath(os.path.expanduser(path)))


def atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` through a synced temporary file renamed over it: a crash leaves the old file or the
    new one, never a torn one. A failure is a `SaveError` naming `path` and saying what is left there."""
    target = str(_expanded(path, "writing a file"))
    existed = os.path.isfile(target)
    try:
        _replace(target, data)
    except OSError as error:
        raise write_failure(target, error, existed=existed) from error


def _replace(target: str, data: bytes) -> None:
    directory, name = os.path.split(target)
    mode = _file_mode(target)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _file_mode(target: str) -> int:
    """The permissions the file gets: the old file's, else what the umask gives a new file."""
    with contextlib.suppress(OSError):
        return os.stat(target).st_mode & 0o7777
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable where the platform allows it."""
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def write_failure(path, error: OSError, *, existed: bool) -> SaveError:
    """The error for a write to `path` that failed with `error`: names the file and what is left there."""
    reason = error.strerror or str(error)
    left = "the previous file there is intact" if existed else "no file was written there"
    hint = " (the disk is full)" if error.errno == 28 else ""
    return SaveError(path, f"{reason}{hint}; {left}", errno=error.errno)
