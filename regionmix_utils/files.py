"""Atomic file writes: a temporary file beside the target, then a rename over it.

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

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text"]

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
