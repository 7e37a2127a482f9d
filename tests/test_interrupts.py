"""Ctrl-C during training: the first press sets a flag, the second interrupts, the old handler comes back."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from resnet_course.training.interrupts import deferred_sigint


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
def test_first_ctrl_c_sets_the_flag_and_the_second_interrupts() -> None:
    previous = signal.getsignal(signal.SIGINT)
    survived_first = False
    with pytest.raises(KeyboardInterrupt):
        with deferred_sigint() as flag:
            assert flag == {"stop": False}
            os.kill(os.getpid(), signal.SIGINT)
            assert flag["stop"]  # the loop stops at its next batch boundary; nothing was raised
            survived_first = True
            os.kill(os.getpid(), signal.SIGINT)
    assert survived_first
    assert signal.getsignal(signal.SIGINT) is previous


def test_outside_the_main_thread_the_handler_is_left_alone() -> None:
    seen = {}

    def worker() -> None:
        with deferred_sigint() as flag:
            seen["flag"] = flag
            seen["handler"] = signal.getsignal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["flag"] == {"stop": False} and seen["handler"] is before
