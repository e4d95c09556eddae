"""Atomic file writes: a temporary file beside the target, then a rename over it; and
``data_dir``, the one rule for where datasets live, whatever the working directory.

A reader (or a resumed run) sees either the old file or the new one, never half of one.
The temporary file is created the way ``open(path, "w")`` creates a file (mode 0o666
less the process's umask, and whatever default ACL the folder holds), so a runs folder
shared under a group umask (002) stays readable and writable to the group: a file made
by ``tempfile.mkstemp`` would be 0600 whatever the umask.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "data_dir"]

# O_EXCL: never open a file another writer made; O_CLOEXEC and O_BINARY where they exist.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_CREATE |= getattr(os, "O_BINARY", 0)


def _temporary_beside(path: Path) -> Path:
    """Create an empty, uniquely named file beside ``path`` with a plain write's mode
    (0o666 & ~umask: ``os.open`` applies the umask, so it is never read or changed)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, _CREATE, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _atomic(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = str(_temporary_beside(path))
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path``, atomically."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path``, atomically."""
    _atomic(path, lambda tmp: Path(tmp).write_bytes(payload))


# The data folder: one rule for the notebooks, the command line and downloads.
DATA_ENV = "REGIONMIX_DATA"  # a user's own data folder: wins over everything but an argument
SHARED_DATA_ENV = "REGIONMIX_SHARED_DATA"  # a read-only folder of data subsets beside it
_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository, in a source checkout


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder datasets are read from and downloaded into, the same from any working
    directory. The first of:

    1. ``explicit`` (a notebook's ``DATA_DIR``, the command line's ``--data-dir``);
    2. ``$REGIONMIX_DATA``;
    3. the repository's ``data/`` in a source checkout (found from this file, with
       ``pyproject.toml`` beside it), when it holds anything but its README;
    4. ``$REGIONMIX_SHARED_DATA``, else ``../shared/data`` beside the repository, when it
       is a folder (data subsets shared between checkouts, read only);
    5. the repository's ``data/`` (empty: downloads go there), or, installed from a
       package, ``~/.cache/regionmix/data``.

    Returns:
        The folder as an absolute path (``explicit`` relative to the working directory);
        it need not exist yet.
    """
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    checkout = _CHECKOUT / "data" if (_CHECKOUT / "pyproject.toml").is_file() else None
    if checkout is not None and any(p.name != "README.md" for p in _entries(checkout)):
        return checkout
    shared = os.environ.get(SHARED_DATA_ENV)
    shared_path = Path(shared).expanduser() if shared else _CHECKOUT.parent / "shared" / "data"
    if shared_path.is_dir():
        return shared_path.resolve()
    return checkout or Path.home() / ".cache" / "regionmix" / "data"


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() else []
