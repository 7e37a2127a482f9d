"""The framework of the exercise checks: a check prints one friendly line and fails its cell when wrong.

Every ``check_*`` function prints ``✅ ...`` when the answer is right, or ``❌ ...`` followed by a ``Hint:``
when it is not. A right answer returns a :class:`CheckResult` (truthy; a notebook shows nothing more for
it). A wrong answer, after the message, raises :class:`ExerciseFailed` (an ``AssertionError``), so the check
cell fails: that is what nbgrader's autograder scores as zero points (docs/TEACHING.md). Exceptions raised by
the student's code are caught and turned into hints first, so the message always comes before the error.

Writing a new check (in the module of its notebook, ``checks/notebookNN.py``):

* decorate it with :func:`friendly_check`; return the success message (a string);
* raise :class:`Hint` (``Hint("what is wrong", "what to try")``) to fail;
* run the student's code through :func:`student_call`, which turns any exception into a :class:`Hint`.

>>> @friendly_check
... def check_answer(x):
...     if x != 42:
...         raise Hint(f"got {x}", "the answer is 6 × 7")
...     return "42 is right"
>>> check_answer(41)  # prints the result, then fails the cell
❌ got 41
   Hint: the answer is 6 × 7
Traceback (most recent call last):
  ...
ExerciseFailed: ❌ got 41
   Hint: the answer is 6 × 7

The helpers at the end (:func:`describe_error`, :func:`first_items`, :func:`state_dict_diff`,
:func:`state_dict_diff_text`) are shared by the notebooks' checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = [
    "CheckResult",
    "ExerciseFailed",
    "Hint",
    "describe_error",
    "first_items",
    "friendly_check",
    "state_dict_diff",
    "state_dict_diff_text",
    "student_call",
]


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: ``passed``, a one-line ``message`` and, on failure, a ``hint``."""

    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✅ {self.message}"
        text = f"❌ {self.message}"
        if self.hint:
            text += f"\n   Hint: {self.hint}"
        return text

    def show(self) -> CheckResult:
        """Print the result and return it."""
        print(self)
        return self

    def _ipython_display_(self) -> None:
        """Shown by :meth:`show` already: as a cell's last value, display nothing more."""


class Hint(Exception):
    """Raised inside a check to fail it: ``Hint(message, hint)``."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ExerciseFailed(AssertionError):
    """Raised by a check after it has printed a failed :class:`CheckResult` (kept as ``.result``).

    An ``AssertionError``, like the ``assert`` lines of nbgrader's own test cells: the check cell fails, and
    nbgrader's autograder gives the exercise zero points.
    """

    def __init__(self, result: CheckResult) -> None:
        super().__init__(str(result))
        self.result = result


def describe_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def student_call(
    fn: Callable[..., Any], *args: Any, what: str = "your code", hint: str = "", **kwargs: Any
) -> Any:
    """Call the student's ``fn``; any exception becomes a :class:`Hint` saying ``what`` raised it."""
    try:
        return fn(*args, **kwargs)
    except Hint:
        raise
    except NotImplementedError:
        raise Hint(
            f"{what} raised NotImplementedError", "replace the stub with your solution and run its cell again"
        ) from None
    except Exception as err:  # the student's code may raise anything
        raise Hint(
            f"{what} raised {describe_error(err)}", hint or "read the error above and fix your code"
        ) from None


def friendly_check(fn: Callable[..., str]) -> Callable[..., CheckResult]:
    """Turn a check body (returns a success message or raises :class:`Hint`) into a check that prints its
    :class:`CheckResult`, returns it when passed and raises :class:`ExerciseFailed` when not.

    Any other exception inside the check is reported as a failed check with a message, never as a bare
    traceback from the check's own code.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> CheckResult:
        __tracebackhide__ = True  # IPython and pytest show the message, not this frame
        try:
            message = fn(*args, **kwargs)
            result = CheckResult(True, message or "correct")
        except Hint as h:
            result = CheckResult(False, h.message, h.hint)
        except Exception as err:  # the check's own failure is reported like a wrong answer
            result = CheckResult(
                False, f"the check could not run: {describe_error(err)}", "check the object you passed in"
            )
        result.show()
        if not result.passed:
            raise ExerciseFailed(result) from None
        return result

    return wrapper


# --------------------------------------------------------------------------------------------------
# Notebook 02: implement a BasicBlock
# --------------------------------------------------------------------------------------------------


def state_dict_diff(student: nn.Module, reference: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) keys of the student's state dict compared with the reference's."""
    s = {k: tuple(v.shape) for k, v in student.state_dict().items()}
    r = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    missing = [k for k in r if k not in s]
    unexpected = [k for k in s if k not in r]
    wrong = [f"{k}: yours {s[k]}, expected {r[k]}" for k in r if k in s and s[k] != r[k]]
    return missing, unexpected, wrong


def first_items(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def state_dict_diff_text(missing: list[str], unexpected: list[str], wrong: list[str], keys: int = 4) -> str:
    """What :func:`state_dict_diff` found, in one line for a hint: ``missing a, b; unexpected c; wrong shape
    d: yours (…), expected (…)``. Only the kinds that occur; at most ``keys`` names of each kind and two
    shapes, then "(+N more)"."""
    parts = []
    if missing:
        parts.append(f"missing {first_items(missing, keys)}")
    if unexpected:
        parts.append(f"unexpected {first_items(unexpected, keys)}")
    if wrong:
        parts.append(f"wrong shape {first_items(wrong, 2)}")
    return "; ".join(parts)
