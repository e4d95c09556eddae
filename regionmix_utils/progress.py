"""Progress bars: tqdm, or with ``$REGIONMIX_HEADLESS=1`` (papermill keeps a widget's first frame
only) one line when a loop that keeps its bar ends, nothing for inner bars (``leave=False``)."""

import contextlib
import os
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

HEADLESS = "REGIONMIX_HEADLESS"


def headless() -> bool:
    return os.environ.get(HEADLESS) == "1"


class LineProgress(contextlib.AbstractContextManager):
    """The part of tqdm's interface we use, reporting one line at the end."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None,
                 leave: bool = True, disable: bool = False, initial: int = 0,
                 **_ignored) -> None:  # fmt: skip
        total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.iterable, self.desc, self.total, self.n = iterable, desc, total, initial
        self.leave, self.disable, self.postfix = leave, disable, ""
        self._started, self._closed = time.perf_counter(), False

    def __iter__(self) -> Iterator:
        with self:
            for item in self.iterable:
                yield item
                self.n += 1

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def refresh(self) -> None: ...  # the line comes at the end

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)

    def close(self) -> None:
        if not self._closed and self.leave and not self.disable:
            of = f"/{self.total}" if self.total is not None else ""
            extra = f" ({self.postfix})" if self.postfix else ""
            seconds = time.perf_counter() - self._started
            print(f"{self.desc or 'done'}: {self.n}{of} in {seconds:.1f} s{extra}")
        self._closed = True


def progress(iterable: Iterable | None = None, **kwargs) -> tqdm | LineProgress:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, or a ``LineProgress`` when headless."""
    return LineProgress(iterable, **kwargs) if headless() else tqdm(iterable, **kwargs)
