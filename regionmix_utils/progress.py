"""Progress bars: tqdm where someone watches, one line per loop where nobody does.

A notebook executed headless (papermill, as ``make demo`` and the tests run them)
keeps only the first frame of each tqdm widget, so its HTML shows dozens of "0%"
bars. With ``$REGIONMIX_HEADLESS=1`` (which ``notebook.execute_notebook`` sets for the
kernels it starts) each loop that keeps its bar prints a single line when it ends,
and inner bars (``leave=False``) print nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator

__all__ = ["HEADLESS", "LineProgress", "headless", "progress"]

HEADLESS = "REGIONMIX_HEADLESS"


def headless() -> bool:
    """Whether this process runs a notebook that nobody watches (``$REGIONMIX_HEADLESS``)."""
    return os.environ.get(HEADLESS) == "1"


class LineProgress:
    """The parts of the tqdm interface we use, reporting one line at the end."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        desc: str = "",
        total: int | None = None,
        leave: bool = True,
        disable: bool = False,
        initial: int = 0,
        **_ignored,
    ) -> None:
        self.iterable, self.desc, self.leave, self.disable = iterable, desc, leave, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.postfix = total, initial, ""
        self._started, self._closed = time.perf_counter(), False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def refresh(self) -> None:
        """Nothing to redraw: the line comes at the end."""

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.leave and not self.disable:
            of = f"/{self.total}" if self.total is not None else ""
            seconds = time.perf_counter() - self._started
            extra = f" ({self.postfix})" if self.postfix else ""
            print(f"{self.desc or 'done'}: {self.n}{of} in {seconds:.1f} s{extra}", file=sys.stdout)


def progress(iterable: Iterable | None = None, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, or a ``LineProgress`` when headless."""
    if headless():
        return LineProgress(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
