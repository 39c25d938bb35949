"""Each loss against its equation, computed by hand with plain Python on a 2 x 3 batch (and
the distribution-balanced variants on one track of two tags)."""

import math

import numpy as np
import pytest
import torch

from trainer.builders import build_loss
from trainer.losses import (
    BinaryCrossEntropy,
    ClassBalancedFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
)
from trainer.recipe import RecipeError, load_recipe

LOGITS = [[2.0, -1.0, 0.5], [-0.5, 1.5, -2.0]]
TARGETS = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
COUNTS = [10, 50, 200]  # training tracks carrying each tag
TRACKS = 400  # training tracks in all


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def cells():
    for logits, targets in zip(LOGITS, TARGETS, strict=True):
        for c, (z, y) in enumerate(zip(logits, targets, strict=True)):
            yield c, z, y, targets


def p_t(z, y):
    return sigmoid(z) if y else 1 - sigmoid(z)


def loss_of(module):
    return module(torch.tensor(LOGITS), torch.tensor(TARGETS)).item()


def test_bce_is_the_mean_negative_log_likelihood():
    # BCE = mean over cells of -log(p_t)
    expected = sum(-math.log(p_t(z, y)) for _, z, y, _ in cells()) / 6

    assert loss_of(BinaryCrossEntropy()) == pytest.approx(expected, rel=1e-6)


def test_focal_loss_sums_over_tags_and_averages_over_tracks():
    # FL(y) = -sum_c alpha_t (1 - p_t)^2 log(p_t), alpha_t = 0.25 (positive) or 0.75 (negative)
    expected = (
        sum(
            (0.25 if y else 0.75) * (1 - p_t(z, y)) ** 2 * -math.log(p_t(z, y))
            for _, z, y, _ in cells()
        )
        / 2
    )

    assert loss_of(FocalLoss()) == pytest.approx(expected, rel=1e-6)


def test_focal_loss_with_gamma_0_and_alpha_half_is_half_the_bce_sum():
    bce_sum = sum(-math.log(p_t(z, y)) for _, z, y, _ in cells())

    loss = loss_of(FocalLoss(alpha=0.5, gamma=0.0, reduction="sum"))

    assert loss == pytest.approx(0.5 * bce_sum, rel=1e-6)


def test_class_balanced_focal_weights_tags_by_their_effective_number():
    # w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to the number of tags (3);
    # CB(y) = -sum_c w_c (1 - p_t)^2 log(p_t)
    beta = 0.995
    raw = [(1 - beta) / (1 - beta**n) for n in COUNTS]
    weights = [w * 3 / sum(raw) for w in raw]
    expected = (
        sum(weights[c] * (1 - p_t(z, y)) ** 2 * -math.log(p_t(z, y)) for c, z, y, _ in cells()) / 2
    )

    assert loss_of(ClassBalancedFocalLoss(COUNTS)) == pytest.approx(expected, rel=1e-6)


def test_class_balanced_weights_favour_rare_tags():
    weights = ClassBalancedFocalLoss(COUNTS).class_weights

    assert weights[0] > weights[1] > weights[2]
    assert weights.sum().item() == pytest.approx(3.0)


def distribution_balanced_by_hand(gamma, alpha=0.1, beta=10.0, mu=0.2, lam=2.0, kappa=0.05):
    # DB = 1/C sum_c r_c (1 - p_t)^gamma
    #      * [y log(1 + e^-(z - v)) + (1 - y)/lam log(1 + e^(lam (z - v)))]
    # r = (1/n_c) / sum_{k positive} 1/n_k;  r_c = alpha + sigmoid(beta (r - mu))
    # v_c = kappa / lam * log(N / n_c - 1); p_t from z - v (positive) or lam (z - v) (negative)
    total = 0.0
    for c, z, y, targets in cells():
        repeat = sum(1 / COUNTS[k] for k, target in enumerate(targets) if target)
        r = alpha + sigmoid(beta * ((1 / COUNTS[c]) / repeat - mu))
        v = kappa / lam * math.log(TRACKS / COUNTS[c] - 1)
        if y:
            shifted = z - v
            total += r * (1 - sigmoid(shifted)) ** gamma * math.log(1 + math.exp(-shifted))
        else:
            scaled = lam * (z - v)
            total += r * sigmoid(scaled) ** gamma / lam * math.log(1 + math.exp(scaled))
    return total / 6


def test_distribution_balanced_loss_with_focal_factor():
    loss = loss_of(DistributionBalancedLoss(COUNTS, TRACKS))

    assert loss == pytest.approx(distribution_balanced_by_hand(gamma=2.0), rel=1e-6)


def test_distribution_balanced_loss_with_gamma_0_is_wu_et_al_bce_form():
    loss = loss_of(DistributionBalancedLoss(COUNTS, TRACKS, gamma=0.0))

    assert loss == pytest.approx(distribution_balanced_by_hand(gamma=0.0), rel=1e-6)


def test_rebalancing_weight_of_a_single_label_track():
    # With one positive tag c, r = 1 for c and n_c / n_k for every other tag k.
    weights = DistributionBalancedLoss(COUNTS, TRACKS).rebalancing_weights(
        torch.tensor([[0.0, 1.0, 0.0]])
    )

    ratios = [50 / 10, 1.0, 50 / 200]
    expected = [0.1 + sigmoid(10 * (r - 0.2)) for r in ratios]
    assert weights[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_a_track_without_positive_tags_gets_finite_weights():
    loss = DistributionBalancedLoss(COUNTS, TRACKS)

    value = loss(torch.zeros(1, 3), torch.zeros(1, 3))

    assert math.isfinite(value.item())


def test_losses_backpropagate_to_the_logits():
    logits = torch.tensor(LOGITS, requires_grad=True)
    for module in (
        BinaryCrossEntropy(),
        FocalLoss(),
        ClassBalancedFocalLoss(COUNTS),
        DistributionBalancedLoss(COUNTS, TRACKS),
    ):
        logits.grad = None
        module(logits, torch.tensor(TARGETS)).backward()
        assert torch.isfinite(logits.grad).all()
        assert logits.grad.abs().sum() > 0


def test_reduction_none_keeps_one_value_per_cell():
    per_cell = FocalLoss(reduction="none")(torch.tensor(LOGITS), torch.tensor(TARGETS))

    assert per_cell.shape == (2, 3)
    assert per_cell.sum().item() / 2 == pytest.approx(loss_of(FocalLoss()), rel=1e-6)


def test_a_tag_without_positive_tracks_is_refused():
    with pytest.raises(ValueError, match=r"indices \[1\]"):
        ClassBalancedFocalLoss([10, 0, 5])


def usc_code_by_hand(gamma=2.0, alpha=0.1, beta=10.0, mu=0.2, lam=2.0, focal_alpha=0.25):
    # USC SAIL's losses.py, DB_loss: r_c (as in the paper) * (y + (1 - y) / lam)
    #   * alpha_t (1 - p_t)^gamma * BCE(p, y), p = sigmoid(z) (no class bias, no lam on z);
    # the sum over the tags, averaged over the tracks.
    total = 0.0
    for c, z, y, targets in cells():
        repeat = sum(1 / COUNTS[k] for k, target in enumerate(targets) if target)
        r = alpha + sigmoid(beta * ((1 / COUNTS[c]) / repeat - mu))
        tolerance = 1.0 if y else 1 / lam
        alpha_t = focal_alpha if y else 1 - focal_alpha
        focal = alpha_t * (1 - p_t(z, y)) ** gamma * -math.log(p_t(z, y))
        total += r * tolerance * focal
    return total / 2


def test_the_usc_code_variant_is_what_their_released_code_computes():
    loss = loss_of(DistributionBalancedLoss(COUNTS, TRACKS, variant="usc-code"))

    assert loss == pytest.approx(usc_code_by_hand(), rel=1e-6)


def test_the_variants_on_one_track_of_two_tags():
    # One track, tag 0 positive (logit 0.5), tag 1 negative (logit -1.0); n = (1, 2) of N = 4.
    # r = (1/n_c) / (1/n_0) = (1, 0.5): r_c = 0.1 + sigmoid(10 (r - 0.2)) = (1.099665, 1.052574).
    module = {"positive_counts": [1, 2], "num_tracks": 4}
    logits, targets = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 0.0]])
    # Paper: v = 0.05 / 2 * log(4 / n - 1) = (0.027465, 0).
    # Tag 0: z - v = 0.472535, p = 0.615984, (1 - p)^2 = 0.147469, -log p = 0.484535,
    #   times r_0: 0.078575.
    # Tag 1: 2 (z - v) = -2, p = 0.119203, p^2 = 0.014209, -log(1 - p) = 0.126928, times
    #   r_1 / 2: 0.000949.  Mean over the 2 cells: 0.039762.
    paper = DistributionBalancedLoss(**module)(logits, targets).item()
    # usc-code: tag 0: p = 0.622459, 0.25 (1 - p)^2 (-log p) = 0.25 * 0.142537 * 0.474077
    #   = 0.016893, times r_0: 0.018577.  Tag 1: p = 0.268941, 0.75 p^2 (-log(1 - p))
    #   = 0.75 * 0.072329 * 0.313262 = 0.016994, times r_1 / 2: 0.008943.
    #   Sum over the tags: 0.027521.
    usc = DistributionBalancedLoss(**module, variant="usc-code")(logits, targets).item()

    assert paper == pytest.approx(0.039762, abs=2e-6)
    assert usc == pytest.approx(0.027521, abs=2e-6)


def test_the_usc_code_variant_has_no_class_bias():
    with pytest.raises(ValueError, match="kappa 0"):
        DistributionBalancedLoss(COUNTS, TRACKS, variant="usc-code", kappa=0.05)
    with pytest.raises(ValueError, match="variant"):
        DistributionBalancedLoss(COUNTS, TRACKS, variant="usc")


def test_a_recipe_selects_the_variant():
    targets = np.eye(56, dtype=np.float32)[np.arange(112) % 56]
    paper = load_recipe("usc2020_shortchunk_db")
    usc = load_recipe("usc2020_shortchunk_db", overrides={"loss": {"variant": "usc-code"}})

    shipped, theirs = build_loss(paper.loss, targets), build_loss(usc.loss, targets)

    assert (shipped.loss.variant, shipped.reduction) == ("paper", "mean")
    assert (theirs.loss.variant, theirs.reduction) == ("usc-code", "batchmean")
    with pytest.raises(RecipeError, match="loss variant"):
        load_recipe("usc2020_shortchunk_db", overrides={"loss": {"variant": "theirs"}})
