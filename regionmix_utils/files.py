"""Atomic file writes (a reader, or a resumed run, never sees half a file) and ``data_dir``."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import torch

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)  # EXCL: ours alone
_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository, in a source checkout


def _atomic(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # A plain write's mode (0o666 less the umask): mkstemp's 0600 locks a group out of its runs.
    os.close(os.open(tmp, _CREATE, 0o666))
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_bytes(payload))


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The absolute folder datasets are read from and downloaded into (docs/reproducing.md):
    ``explicit``, else ``$REGIONMIX_DATA``, else a checkout's ``data/`` holding more than its
    README, else ``$REGIONMIX_SHARED_DATA`` or ``../shared/data`` beside the checkout, else the
    checkout's ``data/`` (an installed package: ``~/.cache/regionmix/data``)."""
    explicit = os.environ.get("REGIONMIX_DATA") or None if explicit is None else explicit
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    checkout = _CHECKOUT / "data" if (_CHECKOUT / "pyproject.toml").is_file() else None
    if checkout and checkout.is_dir() and any(p.name != "README.md" for p in checkout.iterdir()):
        return checkout
    shared = Path(os.environ.get("REGIONMIX_SHARED_DATA") or _CHECKOUT.parent / "shared" / "data")
    if shared.expanduser().is_dir():
        return shared.expanduser().resolve()
    return checkout or Path.home() / ".cache" / "regionmix" / "data"
