"""Optimiser phases and learning-rate shapes against the papers' schedules."""

import itertools

import pytest

from trainer.recipe import PhaseSpec, ScheduleSpec
from trainer.schedule import LearningRate


def test_phases_switch_optimiser_at_their_boundaries():
    schedule = LearningRate(
        [
            PhaseSpec("adam", 1e-4, epochs=80),
            PhaseSpec("sgd", 1e-2, epochs=30),
            PhaseSpec("sgd", 1e-3),
        ],
        ScheduleSpec(),
    )

    assert [schedule.phase_index(e) for e in (0, 79, 80, 109, 110, 199)] == [0, 0, 1, 1, 2, 2]
    assert [schedule.lr(e) for e in (79, 80, 110)] == [1e-4, 1e-2, 1e-3]


def test_cpjku_schedule_warms_up_holds_decays_linearly_and_stays_at_the_floor():
    schedule = LearningRate(
        [PhaseSpec("adam", 1e-4)],
        ScheduleSpec(
            "warmup_linear",
            {"warmup_epochs": 10, "hold_epochs": 60, "decay_epochs": 50, "final_lr": 1e-6},
        ),
    )

    rates = [schedule.lr(epoch) for epoch in range(200)]

    assert rates[0] == pytest.approx(1e-5) and rates[9] == pytest.approx(1e-4)
    assert rates[10:70] == [1e-4] * 60
    assert rates[70] == pytest.approx(1e-4 - (1e-4 - 1e-6) / 50)
    assert rates[119] == pytest.approx(1e-6)
    assert rates[120:] == [1e-6] * 80
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))


def test_plateau_divides_after_the_stated_epochs_without_improvement():
    schedule = LearningRate(
        [PhaseSpec("adam", 1e-3)], ScheduleSpec("plateau", {"factor": 0.1, "patience": 5})
    )
    rates = []
    for score in [0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3]:
        schedule.observe(score)
        rates.append(schedule.lr(0))

    # 5 epochs after the best (0.2) without a better score: divided by 10 once.
    assert rates == pytest.approx([1e-3] * 6 + [1e-4] * 3)
