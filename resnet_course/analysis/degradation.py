"""The degradation verdict of notebook 01: does one run go the way of He et al. 2015 (Fig. 1 and 6)?

:func:`degradation_verdict` compares, per family, the final-epoch training error of the shallowest and the
deepest net (the deeper plain net should end *higher*, the deeper residual net *lower*) and checks the plain
and residual nets of equal depth against each other. One run per net is a single sample, so the verdict says
at most "same direction as the paper in this single run", never "reproduced". :func:`near_chance` is the
verdict's rule for a net that has not started learning, which notebook 01 also applies to a whole run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from resnet_course.analysis.plots import split_model_name

__all__ = [
    "DEGRADATION_MARGIN",
    "CHANCE_MARGIN",
    "SAME_DEPTH_MARGIN",
    "near_chance",
    "DepthComparison",
    "DegradationVerdict",
    "degradation_verdict",
]

DEGRADATION_MARGIN = 0.005
"""Default margin (0.5 percentage points): a smaller difference in training error is "too close to call"."""

CHANCE_MARGIN = 0.05
"""A net whose training error is above ``1 - 1/num_classes - CHANCE_MARGIN`` (5 points) is near chance level.

Used by :func:`degradation_verdict` (such a comparison is inconclusive) and by :func:`near_chance`, which
notebook 01 uses to warn that a whole run is still near chance."""

SAME_DEPTH_MARGIN = 0.03
"""A plain net ahead of the residual net of the same depth by more than this (3 points of training error)
flags the run as dominated by early-training effects (see :attr:`DegradationVerdict.plain_ahead`)."""

Status = Literal[
    "same direction",
    "too close to call",
    "opposite direction",
    "inconclusive: a network is still at chance level",
]
_EXPECTED: dict[str, Literal["higher", "lower"]] = {"plain": "higher", "resnet": "lower"}


def near_chance(error: float, num_classes: int, margin: float = CHANCE_MARGIN) -> bool:
    """True when a training error (fraction) is above ``1 - 1/num_classes - margin``: no real learning yet."""
    return float(error) > 1.0 - 1.0 / num_classes - margin


@dataclass(frozen=True)
class DepthComparison:
    """The shallowest and the deepest net of one family, compared by final-epoch training error.

    ``difference`` is ``deep_error - shallow_error`` (fractions in [0, 1]); ``expected`` is what He et al.
    report for the deeper net of the family (plain: ``"higher"`` error, resnet: ``"lower"``); ``status`` is
    one of ``"same direction"`` (as the paper), ``"too close to call"``, ``"opposite direction"`` and
    ``"inconclusive: a network is still at chance level"``; ``text`` is the one-line summary.
    """

    family: str
    shallow: str
    deep: str
    shallow_error: float
    deep_error: float
    difference: float
    expected: Literal["higher", "lower"]
    status: Status
    text: str

    @property
    def paper_direction(self) -> bool:
        """True when the paper's direction showed by more than the margin (and neither net is at chance)."""
        return self.status == "same direction"


@dataclass(frozen=True)
class DegradationVerdict:
    """Result of :func:`degradation_verdict`.

    Attributes:
        comparisons: one :class:`DepthComparison` per family with at least two depths (plain first).
        missing: a line for each family with fewer than two depths, which cannot show a depth trend.
        same_depth: ``{depth: (plain error, residual error)}`` for every depth with both nets.
        paper_direction: ``True`` when both families were compared and both went the paper's way in this
            single run, ``False`` when both were compared and one did not, ``None`` when a family could not be
            compared. One run per net is one sample: ``True`` is not a reproduction of the effect.
        dataset: the dataset name written in the overall line (may be empty).
        plain_ahead: ``{depth: residual error - plain error}`` for every depth where the plain net beats the
            residual one by more than ``same_depth_margin``. Such a run is dominated by early-training
            effects (the nets left chance level at different times), so its depth comparisons are unreliable.
    """

    comparisons: tuple[DepthComparison, ...]
    missing: tuple[str, ...]
    same_depth: dict[int, tuple[float, float]]
    paper_direction: bool | None
    dataset: str = ""
    plain_ahead: dict[int, float] = field(default_factory=dict)

    @property
    def reliable(self) -> bool:
        """False when a plain net beats the residual net of its depth by more than the margin."""
        return not self.plain_ahead

    @property
    def overall(self) -> str | None:
        """The overall result in words, or ``None`` without both families.

        ``"same direction as the paper in this single run"``; when the deeper plain net is worse and the
        residual nets are too close to call (e.g. both fit their training images), the degradation without its
        "deeper residual is better" half; otherwise ``"not the paper's direction in this run"``. With one run
        per net, never more than that.
        """
        if self.paper_direction is None:
            return None
        if self.paper_direction:
            return "same direction as the paper in this single run"
        status = {c.family: c.status for c in self.comparisons}
        if status == {"plain": "same direction", "resnet": "too close to call"}:
            return (
                "the deeper plain net degrades and the deeper residual net does not (no worse, not measurably "
                "better) in this single run"
            )
        return "not the paper's direction in this run"

    @property
    def warnings(self) -> list[str]:
        """The sanity warning: a line per depth in :attr:`plain_ahead`, then what it means; empty if none."""
        if not self.plain_ahead:
            return []
        return [
            f"⚠️ depth {depth}: the plain net's training error is lower than the residual net's by {100 * gap:.2f} points."
            for depth, gap in self.plain_ahead.items()
        ] + [
            "⚠️ Unreliable: this run is dominated by early-training effects (the nets left chance level at "
            "different times), so the depth comparisons above may reflect that timing rather than depth: "
            "treat the verdict as unreliable."
        ]

    @property
    def lines(self) -> list[str]:
        """The report by line: comparisons, missing families, same-depth pairs, overall line, warnings."""
        out = [c.text for c in self.comparisons] + list(self.missing)
        out += [
            f"depth {depth}: plain {plain:.2%} vs residual {residual:.2%} training error"
            for depth, (plain, residual) in self.same_depth.items()
        ]
        if self.overall is not None or self.warnings:
            out.append("")
        if self.overall is not None:
            where = f" on {self.dataset}" if self.dataset else ""
            out.append(f"Degradation result of He et al. (Fig. 6){where}: {self.overall}.")
        return out + self.warnings

    @property
    def text(self) -> str:
        """:attr:`lines` joined with newlines, ready to ``print``."""
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return self.text


def _compare(
    family: str,
    shallow: tuple[str, float],
    deep: tuple[str, float],
    margin: float,
    chance_error: float,
    chance_margin: float,
) -> DepthComparison:
    (shallow_name, e_shallow), (deep_name, e_deep) = shallow, deep
    expected = _EXPECTED[family]
    diff = e_deep - e_shallow
    # A difference of exactly ``margin`` (up to float rounding, e.g. 0.305 - 0.300) is too close to call.
    too_close = abs(diff) <= margin + 1e-12
    status: Status
    # A net that has not started learning proves nothing, whatever the difference.
    if max(e_shallow, e_deep) > chance_error - chance_margin:  # the rule of near_chance
        status = "inconclusive: a network is still at chance level"
    elif too_close:
        status = "too close to call"
    elif (diff > 0) == (expected == "higher"):
        status = "same direction"
    else:
        status = "opposite direction"
    relation = (
        f"higher by {100 * diff:.2f} points"
        if diff > 0
        else f"lower by {-100 * diff:.2f} points"
        if diff < 0
        else "equal"
    )
    text = (
        f"{deep_name} vs {shallow_name}: training error {e_deep:.2%} vs {e_shallow:.2%} ({relation}); "
        f"paper: {expected} → {status}"
    )
    return DepthComparison(family, shallow_name, deep_name, e_shallow, e_deep, diff, expected, status, text)


def _check_verdict_inputs(errors: dict[str, float], num_classes: int, margins: dict[str, float]) -> None:
    """Raise the ``ValueError`` of :func:`degradation_verdict` for an unusable argument."""
    if not errors:
        raise ValueError(
            "no training errors given: pass {model name: final training error}, e.g. {'plain20': 0.12}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    for what, value in margins.items():
        if not value >= 0:
            raise ValueError(
                f"{what} must be a non-negative fraction (0.005 = 0.5 percentage points), got {value}"
            )
    for name, err in errors.items():
        if not 0.0 <= err <= 1.0:
            raise ValueError(
                f"training error of {name!r} is {err}, expected a fraction in [0, 1] "
                "(1 - accuracy, not a percentage)"
            )


def _family_comparisons(
    errors: dict[str, float],
    parsed: dict[str, tuple[str, int]],
    margin: float,
    chance_error: float,
    chance_margin: float,
) -> tuple[list[DepthComparison], list[str]]:
    """Shallowest vs deepest net of each family (plain first), and a line for each family lacking two depths."""
    comparisons: list[DepthComparison] = []
    missing: list[str] = []
    for family in ("plain", "resnet"):
        members = sorted((n for n in errors if parsed[n][0] == family), key=lambda n: parsed[n][1])
        if len(members) >= 2:
            shallow, deep = members[0], members[-1]
            comparisons.append(
                _compare(
                    family,
                    (shallow, errors[shallow]),
                    (deep, errors[deep]),
                    margin,
                    chance_error,
                    chance_margin,
                )
            )
        elif members:
            missing.append(
                f"{family}: only {members[0]} in this run — one depth cannot show the depth trend."
            )
        else:
            missing.append(f"{family}: no {family} network in this run — its depth trend is untested.")
    return comparisons, missing


def _same_depth_pairs(
    errors: dict[str, float], parsed: dict[str, tuple[str, int]]
) -> dict[int, tuple[float, float]]:
    """``{depth: (plain error, residual error)}`` for every depth with both nets, shallowest first."""
    by_name = {parsed[n]: errors[n] for n in errors}
    return {
        depth: (by_name[("plain", depth)], by_name[("resnet", depth)])
        for depth in sorted({d for _, d in parsed.values()})
        if ("plain", depth) in by_name and ("resnet", depth) in by_name
    }


def _plain_ahead(same_depth: dict[int, tuple[float, float]], same_depth_margin: float) -> dict[int, float]:
    """``{depth: residual error - plain error}`` where the plain net is ahead by more than the margin."""
    # A difference of exactly the margin (up to float rounding) is not flagged, as in _compare.
    return {
        depth: residual - plain
        for depth, (plain, residual) in same_depth.items()
        if residual - plain > same_depth_margin + 1e-12
    }


def degradation_verdict(
    final_train_errors: Mapping[str, float] | pd.Series,
    num_classes: int,
    *,
    margin: float = DEGRADATION_MARGIN,
    dataset: str = "",
    chance_margin: float = CHANCE_MARGIN,
    same_depth_margin: float = SAME_DEPTH_MARGIN,
) -> DegradationVerdict:
    """Whether one run goes the way of He et al.'s degradation result (2015, Fig. 1 / 6).

    For each family the deepest net is compared with the shallowest: the deeper **plain** net should end with
    the *higher* training error, the deeper **residual** net with the *lower*. A comparison is

    * ``"same direction"`` (as the paper) when the difference goes the paper's way by more than ``margin``;
    * ``"too close to call"`` when it is at most ``margin`` either way (one run is one sample);
    * ``"opposite direction"`` when it goes the other way by more than ``margin``;
    * ``"inconclusive: a network is still at chance level"`` when either net's error is above
      ``1 - 1/num_classes - chance_margin`` — whatever the difference.

    One run per net is a single sample, so the overall line says at most "same direction as the paper in this
    single run", never "reproduced". A sanity check guards against a run that only measures how early each net
    left chance level: when a plain net beats the residual net of the same depth by more than
    ``same_depth_margin``, the verdict lists the depth in :attr:`DegradationVerdict.plain_ahead` and its text
    ends with a warning that the verdict is unreliable.

    Args:
        final_train_errors: ``{model name: final-epoch training error}``, errors as fractions in [0, 1]
            (``1 - history.train_acc[-1]``; a pandas Series works too). Names like ``"plain20"`` /
            ``"resnet56"`` (see :func:`resnet_course.analysis.plots.split_model_name`).
        num_classes: number of classes (chance error is ``1 - 1/num_classes``).
        margin: smallest difference in training error (a fraction) that counts as a result
            (:data:`DEGRADATION_MARGIN`).
        dataset: dataset name for the overall line, e.g. ``"shapes10"``.
        chance_margin: a net within this of chance-level error has not started learning
            (:data:`CHANCE_MARGIN`).
        same_depth_margin: how far a plain net may be ahead of the residual net of its depth before the run is
            flagged (:data:`SAME_DEPTH_MARGIN`).

    Returns a :class:`DegradationVerdict`; ``print(verdict.text)`` gives the report.
    ``verdict.paper_direction`` is ``True`` only when both families have two depths and both comparisons are
    ``"same direction"``.

    Raises:
        ValueError: no errors, a name that is not ``plain<N>``/``resnet<N>``, an error outside [0, 1] or NaN,
            ``num_classes < 2`` or a negative margin.
    """
    errors = {str(name): float(err) for name, err in final_train_errors.items()}
    margins = {"margin": margin, "chance_margin": chance_margin, "same_depth_margin": same_depth_margin}
    _check_verdict_inputs(errors, num_classes, margins)
    parsed = {name: split_model_name(name) for name in errors}
    comparisons, missing = _family_comparisons(errors, parsed, margin, 1.0 - 1.0 / num_classes, chance_margin)
    same_depth = _same_depth_pairs(errors, parsed)
    paper_direction = all(c.paper_direction for c in comparisons) if len(comparisons) == 2 else None
    return DegradationVerdict(
        tuple(comparisons),
        tuple(missing),
        same_depth,
        paper_direction,
        str(dataset),
        _plain_ahead(same_depth, same_depth_margin),
    )
