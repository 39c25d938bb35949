"""The architectures of the MediaEval papers the trainer reproduces: CP-JKU's RF-regularised
(FA-, Shake-Shake) ResNets, Won et al.'s and USC SAIL's short-chunk ResNets, and Mirable's
CRNN. Shapes, embeddings, sizes, learning, the regularisers' randomness and the receptive field.

Shapes and training steps run narrow versions (fewer channels): the layer structure, and so
every shape, is the same as at full width, and the suite stays fast on a laptop CPU.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from moodlib.models import build_model, list_models
from moodlib.models.crnn import DropPath
from moodlib.models.faresnet import (
    CPResNet,
    FrequencyPosition,
    ResidualBranch,
    ShakeShake,
    receptive_field,
    rho_kernels,
)

NUM_CLASSES = 56

# name -> narrow configuration used for forward passes and training steps
NARROW = {
    "cpjku_resnet": {"base_channels": 8},
    "cpjku_faresnet": {"base_channels": 8},
    "cpjku_shake_faresnet": {"base_channels": 8},
    "shortchunk_resnet": {"n_channels": 8},
    "shortchunk_resnet_usc": {"n_channels": 8},
    "mirable_crnn": {"channels": 8, "hidden": 16},
    "mirable_crnn_noisy": {"channels": 8, "hidden": 16},
}

# name -> {what: (bands, frames)}. "paper": the input the paper trained on, in its own frames
# (where it differs from moodlib's) and in moodlib's 12 kHz / hop-256 frames (46.9 per s).
INPUTS = {
    "cpjku_resnet": {
        "paper, 256 bands at 44.1 kHz, 5 s": (256, 431),
        "moodlib, MTG-Jamendo 29 s": (96, 1366),
        "short": (96, 24),
    },
    "cpjku_faresnet": {"moodlib, 10 s": (96, 469), "short": (96, 24)},
    "cpjku_shake_faresnet": {"moodlib, 10 s": (96, 469), "short": (96, 24)},
    "shortchunk_resnet": {
        "paper, 3.69 s at 16 kHz": (128, 231),
        "moodlib, 3.69 s": (96, 173),
        "short": (96, 16),
    },
    "shortchunk_resnet_usc": {
        "paper, 4.6 s at 16 kHz": (128, 288),
        "moodlib, 4.6 s": (96, 216),
        "short": (96, 16),
    },
    "mirable_crnn": {
        "moodlib, short mode 9.25 s": (108, 434),
        "moodlib, long mode 185 s": (108, 8672),
        "short": (108, 40),
    },
    "mirable_crnn_noisy": {"moodlib, short mode 9.25 s": (108, 434), "short": (108, 40)},
}


def narrow(name: str, **overrides) -> nn.Module:
    return build_model(name, **{**NARROW[name], **overrides})


def mel_batch(batch: int, bands: int, frames: int) -> torch.Tensor:
    """dB-scaled mels; for the 108-band Mirable input, the last 12 rows are an HPCP in [0, 1]."""
    x = torch.randn(batch, bands, frames) * 15.0 - 50.0
    if bands == 108:
        x[:, 96:] = torch.rand(batch, 12, frames)
    return x


def randomise_convolutions(model: nn.Module) -> None:
    """Replace the zero-initialised convolutions of CP-ResNet's fixup initialisation, so that
    every branch does something."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)


def test_every_seed_architecture_is_registered() -> None:
    assert set(NARROW) <= set(list_models())


@pytest.mark.parametrize(
    ("name", "what", "shape"),
    [(name, what, shape) for name, inputs in INPUTS.items() for what, shape in inputs.items()],
)
def test_output_shape(name: str, what: str, shape: tuple[int, int]) -> None:
    model = narrow(name).eval()

    with torch.no_grad():
        logits = model(mel_batch(2, *shape))

    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(NARROW))
def test_forward_with_embedding_matches_forward_in_eval(name: str) -> None:
    torch.manual_seed(0)
    model = narrow(name)
    randomise_convolutions(model)
    model.eval()
    x = mel_batch(3, *INPUTS[name]["short"])

    with torch.no_grad():
        logits, embedding = model.forward_with_embedding(x)
        plain = model(x)

    assert torch.equal(logits, plain)
    assert embedding.shape == (3, model.embedding_dim)


# Parameter counts of the full-width networks with 56 outputs, counted from the layer lists of
# the reference implementations (conv weights dominate; BN and biases add < 1 %):
#   CP-ResNet rho=7: 3x3 128->128 convs x7 (1.03M), 3x3 128->256 (0.29M), 1x1 convs in stages
#     2-3 (2.49M), 5x5 stem, 1x1 classifier -> 3.98M. rho=5 turns two more 3x3 into 1x1:
#     FA-ResNet 3.60M (its extra position channel adds 1 input per conv). The Shake-Shake
#     version doubles every residual branch: 7.00M.
#   Short-chunk ResNet: residual layers with 3x3 shortcuts, 11.8M of convolutions, dense
#     512-512-56: 12.1M; USC's 256-unit dense layer: 11.96M.
#   Mirable: per branch 3 conv layers (75k), a bidirectional GRU of 256 (1.58M on 12 x 64 mel
#     features, 0.49M on the HPCP's 64) and a 512->256 projection; head 512-256-56: 2.63M;
#     without HPCP 1.86M; the noisy student's 3 extra conv blocks per branch: 2.85M.
EXPECTED_PARAMETERS = {
    "cpjku_resnet": (3.9e6, 4.1e6),
    "cpjku_faresnet": (3.5e6, 3.7e6),
    "cpjku_shake_faresnet": (6.9e6, 7.1e6),
    "shortchunk_resnet": (12.0e6, 12.2e6),
    "shortchunk_resnet_usc": (11.9e6, 12.0e6),
    "mirable_crnn": (2.55e6, 2.7e6),
    "mirable_crnn_noisy": (2.8e6, 2.9e6),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_parameter_count_is_the_papers(name: str) -> None:
    low, high = EXPECTED_PARAMETERS[name]

    count = sum(p.numel() for p in build_model(name).parameters())

    assert low <= count <= high


def test_mirable_without_hpcp_drops_the_branch() -> None:
    with_hpcp = sum(p.numel() for p in build_model("mirable_crnn").parameters())
    without = build_model("mirable_crnn", hpcp=False)

    assert 1.8e6 <= sum(p.numel() for p in without.parameters()) < with_hpcp - 0.7e6
    assert without.eval()(mel_batch(1, 96, 40)).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize("name", sorted(NARROW))
def test_one_optimisation_step_reduces_the_loss(name: str) -> None:
    torch.manual_seed(0)
    model = narrow(name).train()
    # Not the shortest input: with one or two positions left per feature map, batch norm over
    # four examples makes the loss too sharp for a fixed step size.
    x = mel_batch(4, INPUTS[name]["short"][0], 80)
    targets = (torch.rand(4, NUM_CLASSES) < 0.1).float()
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout, shake and drop-path draws both times
        return F.binary_cross_entropy_with_logits(model(x), targets)

    before = loss()
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after = loss()

    assert after < before


def outputs_twice(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        torch.manual_seed(1)
        first = model.forward_with_embedding(x)[1]
        torch.manual_seed(2)
        second = model.forward_with_embedding(x)[1]
    return first, second


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("cpjku_shake_faresnet", {}),
        ("mirable_crnn_noisy", {"head_dropout": 0.0, "block_dropout": 0.0}),
    ],
)
def test_regulariser_is_random_in_training_and_fixed_in_eval(name: str, config: dict) -> None:
    torch.manual_seed(0)
    model = narrow(name, **config)
    randomise_convolutions(model)
    x = mel_batch(4, *INPUTS[name]["short"])

    model.train()
    first, second = outputs_twice(model, x)
    assert not torch.allclose(first, second)

    model.eval()
    first, second = outputs_twice(model, x)
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    ("name", "config"),
    [("cpjku_shake_faresnet", {"shake": False}), ("mirable_crnn", {})],
)
def test_without_the_regulariser_training_is_deterministic(name: str, config: dict) -> None:
    torch.manual_seed(0)
    model = narrow(name, **config)
    randomise_convolutions(model)

    first, second = outputs_twice(model.train(), mel_batch(4, *INPUTS[name]["short"]))

    assert torch.equal(first, second)


def test_shake_shake_mixes_forward_and_backward_with_different_weights() -> None:
    first = torch.randn(6, 3, 4, 4, requires_grad=True)
    second = torch.randn(6, 3, 4, 4, requires_grad=True)
    shake = ShakeShake().train()

    mixed = shake(first, second)
    mixed.sum().backward()

    alpha = ((mixed - second) / (first - second)).detach().flatten(1)
    beta = first.grad.flatten(1)
    # One weight per example, in [0, 1]; the gradients share it out with a fresh one.
    assert torch.allclose(alpha, alpha[:, :1].expand_as(alpha), atol=1e-4)
    assert ((alpha >= 0) & (alpha <= 1)).all()
    assert torch.allclose(first.grad + second.grad, torch.ones_like(first.grad))
    assert not torch.allclose(alpha[:, 0], beta[:, 0])
    assert torch.equal(shake.eval()(first, second), 0.5 * (first + second))


def test_drop_path_drops_whole_examples_and_rescales_the_rest() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.5).train()
    x = torch.ones(1000, 2, 3)

    y = drop(x)

    per_example = y.flatten(1)
    assert set(per_example.unique().tolist()) == {0.0, 2.0}
    assert (per_example == per_example[:, :1]).all()
    assert 0.4 < (per_example[:, 0] == 0).float().mean() < 0.6
    assert torch.equal(drop.eval()(x), x)


def test_frequency_aware_convolutions_see_the_position_channel() -> None:
    fa = build_model("cpjku_faresnet", base_channels=8)
    plain = build_model("cpjku_resnet", base_channels=8)

    fa_branches = [m for m in fa.modules() if isinstance(m, ResidualBranch)]
    plain_branches = [m for m in plain.modules() if isinstance(m, ResidualBranch)]

    assert len(fa_branches) == 12
    for branch in fa_branches:
        assert branch.conv1.in_channels in (8 + 1, 16 + 1, 32 + 1)
        assert branch.conv2.in_channels == branch.conv2.out_channels + 1
    for branch in plain_branches:
        assert branch.conv2.in_channels == branch.conv2.out_channels


def test_position_channel_runs_from_minus_one_over_the_frequency_rows() -> None:
    x = torch.zeros(2, 3, 4, 5)

    position = FrequencyPosition()(x)[:, -1]

    assert position.shape == (2, 4, 5)
    assert torch.equal(position[0, :, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5]))
    assert (position == position[:, :, :1]).all()


def test_rho_kernels_match_published_config() -> None:
    # configs/cp_resnet.json of github.com/kkoutini/cpjku_dcase19 (rho = 7):
    # stage1 k1s [3,3,3,3] k2s [1,3,3,3]; stage2 k1s [3,1,1,1] k2s [1,1,1,1]; stage3 all 1.
    expected = (
        ((3, 1), (3, 3), (3, 3), (3, 3)),
        ((3, 1), (1, 1), (1, 1), (1, 1)),
        ((1, 1), (1, 1), (1, 1), (1, 1)),
    )

    assert rho_kernels(7) == expected
    assert rho_kernels(0)[0] == ((3, 1), (1, 1), (1, 1), (1, 1))
    assert rho_kernels(22)[2][3] == (3, 3)


def test_receptive_field_of_the_default_rhos() -> None:
    # rho = 7, per axis: 5x5/2 stem -> 5 (jump 2); stage 1: 3 -> 9, 1, pool -> 11 (jump 4);
    # 3, 3 -> 27, pool -> 31 (jump 8); 3, 3 -> 63; 3, 3 -> 95, pool -> 103 (jump 16);
    # stage 2, block 1: 3 -> 135; all later kernels are 1x1.
    assert narrow("cpjku_resnet").receptive_field == (135, 135)
    # rho = 5: the last two of those 3x3 kernels become 1x1: 95 - 16 + 8 = 87.
    assert narrow("cpjku_faresnet").receptive_field == (87, 87)
    assert narrow("cpjku_shake_faresnet").receptive_field == (87, 87)
    assert receptive_field(5, rho_time=9) == (87, 199)


def empirical_extent(model: CPResNet, axis: int, size: int, other: int = 40) -> int:
    """Span of input positions along ``axis`` whose change moves the centre unit of the last
    feature map. Positive weights and a large bump make every path count."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 1.0 / module.weight[0].numel())
    shape = (size, other) if axis == 0 else (other, size)
    x = torch.zeros(size + 1, *shape)  # the last one stays blank
    for position in range(size):
        index = (position, other // 2) if axis == 0 else (other // 2, position)
        x[(position, *index)] = 1e3
    with torch.no_grad():
        features = model.eval().forward_features(x)
    row, column = features.shape[2] // 2, features.shape[3] // 2
    centre = features[:, :, row, column]
    moved = ((centre[:-1] - centre[-1]).abs().amax(dim=1) > 0).nonzero().flatten()
    return int(moved.max() - moved.min() + 1)


def test_receptive_field_is_what_the_network_sees() -> None:
    model = CPResNet(rho=5, rho_time=9, base_channels=2)
    rows, frames = model.receptive_field

    assert empirical_extent(model, axis=0, size=rows + 40) == rows
    assert empirical_extent(model, axis=1, size=frames + 40) == frames


def test_usc_layers_reduce_a_4_6_s_chunk_to_one_time_step() -> None:
    # USC's "receptive field of 4.6 s": strides (2, 3) in the last two layers take the 216
    # frames of 4.6 s to a single step, where Won et al.'s all-(2, 2) network leaves 2 steps of
    # its 3.69-s chunk (173 frames).
    usc = narrow("shortchunk_resnet_usc").eval()
    won = narrow("shortchunk_resnet").eval()

    with torch.no_grad():
        usc_map = usc.layers(torch.zeros(1, 1, 96, 216))
        won_map = won.layers(torch.zeros(1, 1, 96, 173))

    assert usc_map.shape[2:] == (1, 1)
    assert won_map.shape[2:] == (1, 2)


def test_mirable_rejects_inputs_without_the_hpcp_rows() -> None:
    model = narrow("mirable_crnn")

    with pytest.raises(ValueError, match="108"):
        model(mel_batch(1, 96, 434))
    with pytest.raises(ValueError, match="40 frames"):
        model(mel_batch(1, 108, 39))
