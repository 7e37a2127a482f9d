"""Tests for resnet_course.analysis.degradation: the verdict's statuses, texts, sanity warning and input checks."""

from __future__ import annotations

import pytest

from resnet_course.analysis import degradation as dg


def test_degradation_verdict_same_direction_in_a_single_run():
    errors = {"plain20": 0.10, "plain56": 0.15, "resnet20": 0.09, "resnet56": 0.06}
    v = dg.degradation_verdict(errors, num_classes=10, dataset="shapes10")
    plain, resnet = v.comparisons
    assert (plain.family, plain.shallow, plain.deep, plain.expected) == (
        "plain",
        "plain20",
        "plain56",
        "higher",
    )
    assert (
        plain.difference == pytest.approx(0.05) and plain.status == "same direction" and plain.paper_direction
    )
    assert (resnet.expected, resnet.status) == ("lower", "same direction")
    assert resnet.difference == pytest.approx(-0.03)
    assert v.missing == () and v.paper_direction is True
    assert v.overall == "same direction as the paper in this single run"
    assert v.same_depth == {20: (0.10, 0.09), 56: (0.15, 0.06)}
    assert v.plain_ahead == {} and v.reliable and v.warnings == []
    assert v.lines == [
        "plain56 vs plain20: training error 15.00% vs 10.00% (higher by 5.00 points); paper: higher → same direction",
        "resnet56 vs resnet20: training error 6.00% vs 9.00% (lower by 3.00 points); paper: lower → same direction",
        "depth 20: plain 10.00% vs residual 9.00% training error",
        "depth 56: plain 15.00% vs residual 6.00% training error",
        "",
        "Degradation result of He et al. (Fig. 6) on shapes10: same direction as the paper in this single run.",
    ]
    assert str(v) == v.text == "\n".join(v.lines)
    assert "REPRODUCED" not in v.text.upper()  # one run per net is one sample, never "reproduced"


def test_degradation_verdict_compares_shallowest_with_deepest_and_reads_a_series():
    pd = pytest.importorskip("pandas")
    errors = pd.Series(
        {"resnet110": 0.05, "plain32": 0.30, "resnet20": 0.10, "plain110": 0.40, "plain20": 0.20}
    )
    v = dg.degradation_verdict(errors, num_classes=10)
    assert [(c.shallow, c.deep) for c in v.comparisons] == [
        ("plain20", "plain110"),
        ("resnet20", "resnet110"),
    ]
    assert list(v.same_depth) == [20, 110]
    # No dataset given.
    assert (
        v.lines[-1]
        == "Degradation result of He et al. (Fig. 6): same direction as the paper in this single run."
    )


def test_degradation_verdict_too_close_and_opposite_direction():
    # plain: deeper net lower by 2 points (wrong way); resnet: 0.5 points exactly is within the margin.
    errors = {"plain20": 0.12, "plain56": 0.10, "resnet20": 0.105, "resnet56": 0.100}
    v = dg.degradation_verdict(errors, num_classes=10, dataset="cifar10")
    plain, resnet = v.comparisons
    assert plain.status == "opposite direction" and not plain.paper_direction
    assert plain.text.endswith("(lower by 2.00 points); paper: higher → opposite direction")
    assert resnet.status == "too close to call" and not resnet.paper_direction
    assert v.paper_direction is False and v.overall == "not the paper's direction in this run"
    assert v.reliable  # at equal depth the residual net is as good or better
    assert (
        v.lines[-1]
        == "Degradation result of He et al. (Fig. 6) on cifar10: not the paper's direction in this run."
    )
    # A wider margin turns the plain result into "too close", a zero margin the resnet one into "same direction".
    assert dg.degradation_verdict(errors, 10, margin=0.03).comparisons[0].status == "too close to call"
    assert dg.degradation_verdict(errors, 10, margin=0.0).comparisons[1].status == "same direction"
    equal = dg.degradation_verdict({"plain20": 0.2, "plain56": 0.2}, 10).comparisons[0]
    assert equal.status == "too close to call" and "(equal)" in equal.text


def test_degradation_verdict_inconclusive_near_chance_level():
    # 10 classes: chance error 90 %; with CHANCE_MARGIN = 5 points a net above 85 % has not started learning.
    assert dg.CHANCE_MARGIN == pytest.approx(0.05)
    errors = {"plain20": 0.60, "plain56": 0.855, "resnet20": 0.845, "resnet56": 0.70}
    v = dg.degradation_verdict(errors, num_classes=10)
    plain, resnet = v.comparisons
    assert plain.status == "inconclusive: a network is still at chance level" and not plain.paper_direction
    assert resnet.status == "same direction"  # 84.5 % is just below the chance threshold
    assert v.overall == "not the paper's direction in this run"
    # A narrower chance margin makes the plain comparison count.
    narrow = dg.degradation_verdict(errors, num_classes=10, chance_margin=0.02)
    assert narrow.comparisons[0].status == "same direction"
    # Two classes: chance error 50 %.
    two = dg.degradation_verdict({"resnet20": 0.46, "resnet56": 0.20}, num_classes=2).comparisons[0]
    assert two.status == "inconclusive: a network is still at chance level"


def test_near_chance_is_the_verdicts_rule():
    assert dg.near_chance(0.86, 10) and not dg.near_chance(0.84, 10)
    assert dg.near_chance(0.46, 2) and not dg.near_chance(0.44, 2)
    assert not dg.near_chance(0.86, 10, margin=0.02)
    for err in (0.84, 0.86):
        v = dg.degradation_verdict({"plain20": 0.5, "plain56": err}, num_classes=10)
        inconclusive = v.comparisons[0].status.startswith("inconclusive")
        assert inconclusive == dg.near_chance(err, 10)


def test_degradation_verdict_flags_a_plain_net_ahead_at_equal_depth():
    # An 8-epoch run where ResNet-20 stayed near chance for three epochs: both depth gaps go the paper's
    # way, but only because the nets left chance at different times.
    errors = {"plain20": 0.2160, "plain32": 0.4578, "resnet20": 0.5411, "resnet32": 0.4247}
    v = dg.degradation_verdict(errors, num_classes=10, dataset="shapes10")
    assert v.paper_direction is True and not v.reliable
    assert list(v.plain_ahead) == [20] and v.plain_ahead[20] == pytest.approx(0.3251)
    assert v.lines[-3] == (
        "Degradation result of He et al. (Fig. 6) on shapes10: same direction as the paper in this single run."
    )
    assert (
        v.lines[-2]
        == "⚠️ depth 20: the plain net's training error is lower than the residual net's by 32.51 points."
    )
    assert v.lines[-1].startswith("⚠️ Unreliable: this run is dominated by early-training effects")
    assert v.warnings == v.lines[-2:]
    # Exactly SAME_DEPTH_MARGIN ahead is not flagged; a smaller margin flags it.
    assert dg.SAME_DEPTH_MARGIN == pytest.approx(0.03)
    close = {"plain20": 0.10, "resnet20": 0.13}
    assert dg.degradation_verdict(close, 10).reliable
    assert dg.degradation_verdict(close, 10, same_depth_margin=0.01).plain_ahead == {20: pytest.approx(0.03)}
    # Without both families there is no overall line, but the warning still shows.
    single = dg.degradation_verdict({"plain20": 0.1, "resnet20": 0.5}, 10)
    assert single.overall is None and not single.reliable
    assert single.lines[-3:-2] == [""] and single.lines[-1].startswith("⚠️ Unreliable")


def test_degradation_verdict_with_one_depth_per_family():
    v = dg.degradation_verdict({"plain20": 0.88, "resnet20": 0.87}, num_classes=10, dataset="shapes10")
    assert v.comparisons == () and v.paper_direction is None and v.overall is None
    assert v.lines == [
        "plain: only plain20 in this run — one depth cannot show the depth trend.",
        "resnet: only resnet20 in this run — one depth cannot show the depth trend.",
        "depth 20: plain 88.00% vs residual 87.00% training error",
    ]
    only_plain = dg.degradation_verdict({"plain20": 0.1, "plain32": 0.2}, num_classes=10)
    assert [c.status for c in only_plain.comparisons] == ["same direction"]
    assert only_plain.missing == ("resnet: no resnet network in this run — its depth trend is untested.",)
    assert only_plain.paper_direction is None and only_plain.same_depth == {}
    assert "Degradation result" not in only_plain.text


def test_degradation_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="like 'plain56' or 'resnet110'"):
        dg.degradation_verdict({"plain20": 0.1, "wrn16_4": 0.2}, num_classes=10)
    with pytest.raises(ValueError, match="not a percentage"):
        dg.degradation_verdict({"plain20": 12.0}, num_classes=10)
    with pytest.raises(ValueError, match="fraction in"):
        dg.degradation_verdict({"plain20": float("nan")}, num_classes=10)
    with pytest.raises(ValueError, match="no training errors"):
        dg.degradation_verdict({}, num_classes=10)
    with pytest.raises(ValueError, match="at least 2"):
        dg.degradation_verdict({"plain20": 0.1}, num_classes=1)
    with pytest.raises(ValueError, match="^margin must be a non-negative"):
        dg.degradation_verdict({"plain20": 0.1}, num_classes=10, margin=-0.01)
    with pytest.raises(ValueError, match="chance_margin"):
        dg.degradation_verdict({"plain20": 0.1}, num_classes=10, chance_margin=-0.01)
    with pytest.raises(ValueError, match="same_depth_margin"):
        dg.degradation_verdict({"plain20": 0.1}, num_classes=10, same_depth_margin=float("nan"))


def test_the_verdict_never_calls_one_run_a_reproduction():
    # One run per net is one sample: the verdict has no attribute that says "reproduced".
    v = dg.degradation_verdict({"plain20": 0.10, "plain56": 0.15, "resnet20": 0.09, "resnet56": 0.06}, 10)
    assert v.paper_direction is True
    assert not hasattr(v, "reproduced") and not hasattr(v.comparisons[0], "reproduced")


def test_evaluation_does_not_hold_the_verdict():
    from resnet_course.analysis import classification as evaluation

    names = ("degradation_verdict", "DegradationVerdict", "DepthComparison", "near_chance", "CHANCE_MARGIN")
    assert not any(hasattr(evaluation, name) for name in names)


def test_plain_degrades_residual_too_close_to_call():
    """Both residual nets fit their images: the degradation shows without the "deeper is better" half."""
    v = dg.degradation_verdict(
        {"plain20": 0.123, "plain32": 0.502, "resnet20": 0.002, "resnet32": 0.002}, 10, dataset="cifar10"
    )
    assert v.paper_direction is False
    assert v.overall.startswith("the deeper plain net degrades and the deeper residual net does not")
    assert v.lines[-1].endswith("(no worse, not measurably better) in this single run.")
