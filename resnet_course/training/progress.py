"""The progress bar of a training epoch: ``tqdm.auto``'s, whose notebook form leaves text, not a widget, behind.

In Jupyter, ``tqdm.auto`` shows an ipywidgets bar. Once the bar closes, its widget is gone, but the cell's output
still points at it: a notebook saved and opened again shows "Error displaying widget: model not found" there.
:func:`progress_bar` displays the notebook bar under a display id and, when it closes, replaces that output with
plain text — nothing for a bar that finished (``leave=False``, as the epoch bars), the bar's last line for one
that stopped early (an interrupt or an error shows where). In a terminal it is ``tqdm.auto``'s text bar.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm
from tqdm.notebook import tqdm_notebook

__all__ = ["progress_bar"]


class _NotebookBar(tqdm_notebook):
    """tqdm's ipywidgets bar, displayed under a display id that :meth:`close` turns into text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from IPython.display import display

        super().__init__(*args, display=False, **kwargs)
        self._handle = None if self.disable else display(self.container, display_id=True)

    def close(self) -> None:
        stopped = bool(self.total) and self.n < self.total
        super().close()
        if self._handle is not None:
            text = self.format_meter(**self.format_dict) if stopped or self.leave else ""
            self._handle.update({"text/plain": text}, raw=True)
            self._handle = None


def progress_bar(**kwargs: Any) -> tqdm:
    """A ``tqdm`` bar with ``kwargs`` (``total``, ``desc``, ``leave``, ``disable``, …): ``tqdm.auto``'s, except
    that in a notebook the output it leaves is text (see the module docstring)."""
    return _NotebookBar(**kwargs) if issubclass(tqdm, tqdm_notebook) else tqdm(**kwargs)
