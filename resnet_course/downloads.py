"""Downloads that fail fast: probe a host before a download, and bound every socket operation.

Used by the CIFAR-10 download (:mod:`resnet_course.data.cifar10`) and by torchvision's pretrained weights
(:mod:`resnet_course.training.transfer`): offline, both fail within seconds with a message saying what to do,
instead of hanging on DNS or a connection.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["check_reachable", "socket_timeout"]


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """The default socket timeout set to ``seconds`` for the block (downloads that would otherwise hang)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def check_reachable(url: str, timeout: float) -> None:
    """Resolve and connect to ``url``'s host within ``timeout`` s (DNS included) or raise ``OSError``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except BaseException as err:  # reported to the caller below
            outcome.append(err)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        raise TimeoutError(f"no answer from {host}:{port} within {timeout:g} s")
    if outcome[0] is not None:
        raise OSError(f"cannot reach {host}:{port}: {outcome[0]}")
