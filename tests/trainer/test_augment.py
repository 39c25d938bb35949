"""Augmentations, balancing and sampling, each against the rule its paper states."""

import numpy as np
import pytest
import torch

from trainer.data.augment import (
    Augmentation,
    ClassAwareSampler,
    SpecAugment,
    crop,
    crop_start,
    gaussian_noise,
    mixup,
    random_crop,
    single_label,
)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_random_crops_lie_inside_the_track_and_cover_every_start():
    mel = np.arange(10.0)[None, :].repeat(2, axis=0)

    starts = {int(random_crop(mel, 4)[0, 0]) for _ in range(200)}

    assert starts == set(range(7))


def test_start_and_center_crops_are_fixed():
    assert crop_start(100, 30, mode="start") == 0
    assert crop_start(100, 30, mode="center") == 35


def test_a_short_track_is_repeated_to_the_crop_length():
    mel = np.array([[3.0, -7.0, 5.0], [1.0, 2.0, 4.0]])

    assert crop(mel, crop_start(3, 5), 5).tolist() == [
        [3.0, -7.0, 5.0, 3.0, -7.0],
        [1.0, 2.0, 4.0, 1.0, 2.0],
    ]


def test_mixup_is_a_convex_combination_of_partners_inputs_and_labels():
    inputs = torch.randn(16, 4, 8)
    targets = (torch.rand(16, 56) < 0.2).float()

    mixed = mixup(inputs, targets, alpha=0.3)

    lam = mixed.lam
    partner = mixed.permutation
    expected = lam[:, None, None] * inputs + (1 - lam[:, None, None]) * inputs[partner]
    assert torch.allclose(mixed.inputs, expected)
    mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]
    assert torch.allclose(mixed.targets, mixed_targets)
    assert sorted(partner.tolist()) == list(range(16))


def test_cpjku_mixup_draws_one_weight_per_example_and_keeps_the_larger_share():
    mixed = mixup(torch.zeros(4000, 1), torch.zeros(4000, 56), alpha=0.3)

    assert (mixed.lam >= 0.5).all() and (mixed.lam <= 1).all()
    assert len(torch.unique(mixed.lam)) > 3000
    # max(l, 1 - l) with l ~ Beta(0.3, 0.3) has mean 0.866 (numerical integration).
    assert mixed.lam.mean().item() == pytest.approx(0.866, abs=0.01)


def test_batch_mixup_uses_one_weight_with_beta_alpha_mean():
    weights = [
        mixup(torch.zeros(8, 1), torch.zeros(8, 56), alpha=1.0, per_example=False,
              own_share_at_least_half=False).lam
        for _ in range(2000)
    ]  # fmt: skip

    assert all(len(torch.unique(lam)) == 1 for lam in weights)
    # Beta(1, 1) is uniform on [0, 1].
    assert torch.stack([lam[0] for lam in weights]).mean().item() == pytest.approx(0.5, abs=0.03)


def test_specaugment_masks_at_most_the_stated_count_and_width_of_blocks():
    augment = SpecAugment(time_masks=2, time_width=10, freq_masks=2, freq_width=8)

    masks = augment.sample(500, 96, 200)

    assert masks.time_widths.shape == (500, 2) and masks.freq_widths.shape == (500, 2)
    assert masks.time_widths.max() <= 10 and masks.freq_widths.max() <= 8
    assert (masks.time_starts + masks.time_widths <= 200).all()
    assert (masks.freq_starts + masks.freq_widths <= 96).all()
    # Widths are uniform on 0..W (Park et al.): their mean is W / 2.
    assert masks.time_widths.float().mean().item() == pytest.approx(5.0, abs=0.3)
    for row in masks.frames(200):
        assert _runs(row) <= 2


def test_specaugment_sets_exactly_the_masked_cells_to_the_fill_value():
    augment = SpecAugment(time_masks=2, time_width=30, freq_masks=2, freq_width=20, fill=0.0)
    mels = torch.randn(8, 96, 200) + 5

    masks = augment.sample(8, 96, 200)
    out = augment.apply(mels, masks)

    masked = masks.bands(96)[:, :, None] | masks.frames(200)[:, None, :]
    assert masked.any()
    assert (out[masked] == 0).all()
    assert torch.equal(out[~masked], mels[~masked])


def test_specaugment_fills_with_each_examples_mean_by_default():
    mels = torch.randn(4, 96, 100) * 10 - 30
    augment = SpecAugment(time_masks=1, time_width=50, freq_masks=0, freq_width=0)

    masks = augment.sample(4, 96, 100)
    out = augment.apply(mels, masks)

    for example in range(4):
        frames = masks.frames(100)[example]
        if frames.any():
            assert torch.allclose(out[example][:, frames], mels[example].mean())


def test_specaugment_augments_the_stated_share_of_examples():
    masks = SpecAugment(probability=0.7, time_width=10, freq_width=10).sample(4000, 96, 100)

    augmented = (masks.time_widths.sum(dim=1) + masks.freq_widths.sum(dim=1)) > 0
    # An augmented example may draw four zero widths (1 in 11**4): negligible.
    assert augmented.float().mean().item() == pytest.approx(0.7, abs=0.03)


def test_mirable_masks_draw_their_largest_width_per_batch_in_the_range():
    augment = SpecAugment(time_masks=1, time_width=(20, 60), freq_masks=0, freq_width=0)

    largest = [augment.sample(256, 96, 500).time_widths.max().item() for _ in range(40)]

    assert all(w <= 60 for w in largest)
    assert min(largest) < 45 < max(largest)


def test_gaussian_noise_has_the_stated_weight():
    inputs = torch.zeros(200, 96, 100)

    noise = gaussian_noise(inputs, weight=0.01)

    assert noise.std().item() == pytest.approx(0.01, rel=0.02)
    assert noise.mean().item() == pytest.approx(0.0, abs=1e-4)


def test_augmentation_masks_only_the_mel_rows_and_mixes_label_masks():
    inputs = torch.randn(6, 108, 64)
    augmentation = Augmentation(
        specaugment=SpecAugment(time_masks=2, time_width=64, freq_masks=0, freq_width=0),
        mixup={"alpha": 0.3},
        spec_rows=96,
    )
    torch.manual_seed(1)
    label_mask = torch.ones(6, 56)
    label_mask[0, :10] = 0

    out, _, mixed_mask = augmentation(inputs, torch.zeros(6, 56), label_mask)

    assert out.shape == inputs.shape
    assert (mixed_mask[0, :10] == 0).all()
    assert mixed_mask.sum() < 6 * 56


def test_single_label_keeps_each_tracks_rarest_tag():
    targets = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])

    balanced = single_label(targets)

    # Training counts: 4, 2, 1, 1.
    assert balanced.tolist() == [
        [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]
    ]  # fmt: skip


def test_single_label_narrows_the_spread_of_tag_counts():
    rng = np.random.default_rng(0)
    targets = (rng.random((2000, 56)) < np.geomspace(0.005, 0.1, 56)).astype(np.float32)

    balanced = single_label(targets)

    assert (balanced.sum(axis=1) == targets.any(axis=1)).all()
    before, after = targets.sum(axis=0), balanced.sum(axis=0)
    assert after.std() / after.mean() < before.std() / before.mean()


def test_class_aware_sampling_draws_every_tag_equally_often():
    labels = np.repeat(np.arange(4), [400, 40, 10, 2])
    targets = np.eye(4)[labels]

    drawn = labels[ClassAwareSampler(targets, num_samples=40000).draw()]

    assert np.bincount(drawn, minlength=4) / 40000 == pytest.approx([0.25] * 4, abs=0.01)


def test_class_aware_sampling_reaches_multi_label_tracks_through_each_of_their_tags():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 1]])
    counts = targets.sum(axis=0)  # 2, 3, 3
    expected = (targets / counts).sum(axis=1) / 3

    drawn = ClassAwareSampler(targets, num_samples=60000, seed=3).draw()

    assert np.bincount(drawn, minlength=6) / 60000 == pytest.approx(expected, abs=0.01)


def test_class_aware_sampler_shares_one_epochs_draws_between_processes():
    targets = np.eye(5)[np.arange(50) % 5]
    whole = ClassAwareSampler(targets, seed=7)
    parts = [ClassAwareSampler(targets, seed=7, rank=r, world_size=2) for r in range(2)]
    for sampler in (whole, *parts):
        sampler.set_epoch(3)

    first, second = (list(part) for part in parts)

    assert sorted(first + second) == sorted(whole)
    assert first == whole.draw()[0::2].tolist()
    epoch_3 = whole.draw().tolist()
    whole.set_epoch(4)
    assert whole.draw().tolist() != epoch_3


def _runs(row: torch.Tensor) -> int:
    values = row.int().tolist()
    return sum(1 for i, v in enumerate(values) if v and (i == 0 or not values[i - 1]))
