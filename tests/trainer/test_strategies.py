"""Training strategies against Han et al.'s, Xie et al.'s and Izmailov et al.'s rules."""

import numpy as np
import pytest
import torch
from torch import nn

from trainer import recipe as recipe_module
from trainer.losses import BinaryCrossEntropy, FocalLoss
from trainer.recipe import NetworkSpec, StrategySpec
from trainer.strategies import STRATEGIES, build_strategy
from trainer.strategies.averaging import WeightAveraging, average_state_dicts
from trainer.strategies.base import Network, TrainingLoss
from trainer.strategies.coteaching import coteaching_step, forget_rate, small_loss_indices
from trainer.strategies.noisy_student import pseudo_labels, student_spec
from trainer.strategies.standard import Standard, standard_step


def test_forget_rate_ramps_linearly_over_the_first_epochs_then_stays():
    rates = [forget_rate(epoch, final=0.05, ramp_epochs=10) for epoch in range(12)]

    # Han et al.'s code: linspace(0, tau, T_k) for the first T_k epochs, then tau.
    assert rates[:10] == pytest.approx(list(np.linspace(0, 0.05, 10)))
    assert rates[10:] == [0.05, 0.05]


def test_small_loss_selection_keeps_the_smallest_losses():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0])

    kept = small_loss_indices(losses, forget=0.2)

    # int((1 - 0.2) * 10) = 8 examples: all but the two largest losses.
    assert kept.tolist() == [1, 5, 3, 7, 2, 8, 4, 6]


def test_small_loss_selection_rounds_down_like_the_reference_code():
    assert len(small_loss_indices(torch.rand(32), forget=0.05)) == 30
    assert len(small_loss_indices(torch.rand(32), forget=0.0)) == 32


class Memorise(nn.Module):
    """One free logit vector per example index (the input is the index)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(logits.clone())

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.table[index.long().flatten()]


def _network(name: str, logits: torch.Tensor) -> Network:
    module = Memorise(logits)
    return Network(name, module, module, torch.optim.SGD(module.parameters(), lr=1.0))


def test_each_network_learns_only_from_the_examples_its_peer_finds_easy():
    targets = torch.zeros(10, 3)
    first_logits = torch.zeros(10, 3)
    first_logits[:2] = 5.0  # the first network finds examples 0 and 1 hard
    second_logits = torch.zeros(10, 3)
    second_logits[8:] = 5.0  # the second finds 8 and 9 hard
    first, second = _network("first", first_logits), _network("second", second_logits)
    batch = (torch.arange(10), targets, torch.ones(10, 3))

    coteaching_step(first, second, TrainingLoss(BinaryCrossEntropy()), batch, forget=0.2)

    first_moved = (first.module.table.detach() != first_logits).any(dim=1)
    second_moved = (second.module.table.detach() != second_logits).any(dim=1)
    # The first is taught by the second's easy examples (all but 8, 9), and vice versa.
    assert first_moved.tolist() == [True] * 8 + [False] * 2
    assert second_moved.tolist() == [False] * 2 + [True] * 8


def test_per_example_losses_average_to_the_batch_loss():
    logits, targets = torch.randn(6, 56), (torch.rand(6, 56) < 0.1).float()
    for module in (BinaryCrossEntropy(), FocalLoss()):
        loss = TrainingLoss(module)

        assert loss.per_example(logits, targets).mean().item() == pytest.approx(
            loss(logits, targets).item(), rel=1e-6
        )


def test_a_masked_cell_adds_nothing_and_is_not_counted():
    logits, targets = torch.randn(4, 56), (torch.rand(4, 56) < 0.1).float()
    mask = torch.ones(4, 56)
    mask[:, 30:] = 0
    loss = TrainingLoss(BinaryCrossEntropy())

    masked = loss(logits, targets, mask)

    assert masked.item() == pytest.approx(loss(logits[:, :30], targets[:, :30]).item(), rel=1e-6)


def test_the_standard_step_lowers_the_loss_on_its_batch():
    module = Memorise(torch.zeros(4, 56))
    network = Network("model", module, module, torch.optim.SGD(module.parameters(), lr=1.0))
    loss = TrainingLoss(BinaryCrossEntropy())
    batch = (torch.arange(4), (torch.rand(4, 56) < 0.2).float(), torch.ones(4, 56))

    [first] = Standard().step([network], loss, batch)
    second = standard_step(network, loss, batch)

    assert second < first


def test_pseudo_labels_keep_only_confident_teacher_scores():
    scores = np.array([[0.5, 0.1, 0.05, 1e-6, 5e-7, 0.11]])

    targets, mask = pseudo_labels(scores)

    # > 0.1 positive, < 1e-6 negative, everything else left out.
    assert targets.tolist() == [[1, 0, 0, 0, 0, 1]]
    assert mask.tolist() == [[1, 0, 0, 0, 1, 1]]


def test_the_student_is_the_teacher_with_the_students_configuration():
    teacher = NetworkSpec("teacher", "mirable_crnn", {"hpcp": True, "channels": 16})

    student = student_spec(
        teacher,
        {"student_architecture": "mirable_crnn_noisy", "student_config": {"drop_path": 0.1}},
    )

    assert student.name == "student"
    assert student.architecture == "mirable_crnn_noisy"
    assert student.config == {"hpcp": True, "channels": 16, "drop_path": 0.1}


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 1)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean(dim=-1)


def test_swa_average_is_the_mean_of_the_added_weights():
    torch.manual_seed(0)
    model = Small()
    averaging = WeightAveraging(model, every=3, start_epoch=0)
    added = []
    for _ in range(4):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        averaging.add(model)
        added.append({k: v.clone() for k, v in model.state_dict().items()})

    expected = average_state_dicts(added)
    averaged = averaging.average.module.state_dict()

    assert averaging.count == 4
    for name in ("conv.weight", "conv.bias", "bn.weight", "bn.bias"):
        assert torch.allclose(averaged[name], expected[name], atol=1e-6)
        assert torch.allclose(
            averaged[name], torch.stack([state[name] for state in added]).mean(dim=0), atol=1e-6
        )


def test_swa_adds_every_third_epoch_after_the_start():
    averaging = WeightAveraging(Small(), every=3, start_epoch=120)

    due = [epoch for epoch in range(1, 200) if averaging.due(epoch)]

    assert due[:3] == [123, 126, 129] and due[-1] == 198


def test_a_snapshot_re_estimates_batch_norm_on_the_data_and_keeps_the_last_ones():
    torch.manual_seed(0)
    model = Small()
    averaging = WeightAveraging(model, snapshots=2)
    averaging.add(model)
    batches = [torch.randn(16, 2, 5) * 3 + 2 for _ in range(4)]

    states = [averaging.snapshot(batches) for _ in range(3)]

    features = model.conv(torch.cat(batches))
    expected_mean = features.transpose(0, 1).flatten(1).mean(dim=1)
    assert torch.allclose(states[-1]["bn.running_mean"], expected_mean.detach(), atol=1e-5)
    assert len(averaging.snapshots) == 2
    assert averaging.snapshots[-1] is states[-1]


def test_weighted_state_average_follows_the_weights():
    states = [{"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(1)},
              {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(7)}]  # fmt: skip

    averaged = average_state_dicts(states, weights=[3, 1])

    assert averaged["w"].tolist() == [0.5, 3.0]
    assert averaged["n"].item() == 7


def test_every_strategy_a_recipe_may_name_is_built_by_name():
    assert set(STRATEGIES) == set(recipe_module.STRATEGIES)
    for name in recipe_module.STRATEGIES:
        assert build_strategy(StrategySpec(name)).name == name
    with pytest.raises(ValueError, match="no strategy 'mixmatch'"):
        build_strategy(StrategySpec("mixmatch"))


def test_coteaching_trains_the_model_with_its_peer_and_ramps_the_forget_rate_by_epoch():
    recipe = recipe_module.load_recipe("selab2021_coteaching")
    strategy = build_strategy(recipe.strategy)

    rates = []
    for epoch in (0, 5, 9, 50):
        strategy.begin_epoch(epoch)
        rates.append(strategy.forget)

    assert [spec.name for spec in strategy.networks(recipe)] == ["efficientnet_b0", "rexnet_100"]
    assert rates == pytest.approx([0.0, 0.05 * 5 / 9, 0.05, 0.05])
