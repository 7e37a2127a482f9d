"""Ctrl-C during training: the first press stops at the next optimizer-step boundary, the second at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["GracefulStop", "deferred_sigint"]


class GracefulStop(KeyboardInterrupt):
    """Ctrl-C took effect at an optimizer-step boundary (on every process of a DDP job): `fit` saves and returns."""


@contextlib.contextmanager
def deferred_sigint() -> Iterator[dict[str, bool]]:
    """While active, a first Ctrl-C only sets ``flag["stop"]`` (the loop stops at the next batch boundary,
    so no optimizer step is torn); a second Ctrl-C interrupts immediately. Main thread only."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not allowed here (embedded interpreter)
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
