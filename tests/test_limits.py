"""core.limits (one definition of what users may set) and core.budget (a request's time budget)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from core import budget
from core.errors import InputError
from core.limits import ITERATIONS, RESOLUTION, SEED, TEMPERATURE, check_choice, check_flag


@pytest.mark.parametrize("limit, value, expected", [
    (ITERATIONS, 5, 5), (ITERATIONS, 5.0, 5), (ITERATIONS, np.int64(50), 50), (TEMPERATURE, 0.01, 0.01),
    (TEMPERATURE, 1 / 10, 0.1), (SEED, 2**32 - 1, 2**32 - 1), (RESOLUTION, 512, 512),
])
def test_values_in_range_pass_with_their_type(limit, value, expected):
    out = limit.check(value)
    assert out == expected and type(out) is (int if limit.integer else float)


@pytest.mark.parametrize("limit, value, words", [
    (ITERATIONS, 1_000_000, "iterations 1000000 is out of range: use 0 to 50"),
    (ITERATIONS, -1, "use 0 to 50"),
    (ITERATIONS, 2.5, "whole number"),
    (ITERATIONS, "lots", "must be a whole number from 0 to 50; got 'lots'"),
    (ITERATIONS, True, "whole number"),
    (ITERATIONS, [5], "whole number"),
    (TEMPERATURE, -1, "use 0.001 to 0.1"),
    (TEMPERATURE, math.nan, "finite"),
    (TEMPERATURE, math.inf, "finite"),
    (SEED, 2**80, "seed 1208925819614629174706176 is out of range: use 0 to 4294967295"),
    (SEED, -1, "use 0 to 4294967295"),
    (RESOLUTION, 10**6, "use 64 to 2048"),
    pytest.param(SEED, 10**5000, "seed a very large number is out of range", id="seed-5000-digits"),
    (RESOLUTION, "x" * 5000, "got 'xxxxxxxx"),
])
def test_bad_values_are_refused_naming_the_allowed_range(limit, value, words):
    with pytest.raises(InputError) as info:
        limit.check(value)
    assert words in str(info.value)
    assert len(str(info.value)) < 200  # never echoes a long value


def test_an_operator_may_narrow_a_limit_never_widen_it():
    app = RESOLUTION.narrowed(minimum=128, maximum=99999, step=64)
    assert (app.minimum, app.maximum, app.step) == (128, 2048, 64)
    assert RESOLUTION.narrowed(maximum=512).check(512) == 512
    with pytest.raises(InputError, match="64 to 512"):
        RESOLUTION.narrowed(maximum=512).check(1024)
    assert ITERATIONS.check_optional(None) is None and SEED.check_optional(None) == 0


def test_choices_and_flags():
    assert check_choice("engine", "auto", ("auto", "learned")) == "auto"
    with pytest.raises(InputError, match="Unknown engine 'x+...: choose one of 'auto', 'learned'"):
        check_choice("engine", "x" * 5000, ("auto", "learned"))
    with pytest.raises(InputError, match="Unknown engine 3"):
        check_choice("engine", 3, ("auto",))
    assert check_flag("oil", True) is True and check_flag("oil", None) is False
    with pytest.raises(InputError, match="true or false"):
        check_flag("oil", "yes")


def test_the_cli_shares_the_number_checks(capsys):
    from core.__main__ import main

    code = main(["translate", "--task", "pose", "--input", "a.png", "--output", "b.png", "--exemplar", "c.png",
                 "--iterations", "1000000"])
    assert code == 1 and "iterations 1000000 is out of range: use 0 to 50" in capsys.readouterr().err
    code = main(["translate", "--task", "pose", "--input", "a.png", "--output", "b.png", "--exemplar", "c.png",
                 "--temperature", "nan"])
    assert code == 1 and "finite" in capsys.readouterr().err
    code = main(["extract", "--task", "pose", "--input", "a.png", "--output", "b.png", "--resolution", "99999"])
    assert code == 1 and "use 64 to 2048" in capsys.readouterr().err


def test_a_budget_stops_work_between_checks_and_only_inside_its_block():
    budget.check()  # no budget: nothing happens (CLI, trainer, tests)
    with budget.time_budget(0.05):
        budget.check()
        time.sleep(0.06)
        with pytest.raises(budget.BudgetExceeded, match="took longer than 0.05 s"):
            budget.check()
    budget.check()
    gone = [False]
    with budget.time_budget(60, cancelled=lambda: gone[0]):
        budget.check()
        gone[0] = True
        with pytest.raises(budget.Cancelled):
            budget.check()


def test_matching_checks_the_budget_between_levels_and_iterations(monkeypatch):
    from core.patchmatch import PatchMatch

    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(1, 8, 16, 16), dim=1)
    pm = PatchMatch(8, 4, use_gru=False)
    run = dict(iterations=6, temperature=0.01)
    seeds = torch.zeros(1, 2, 4, 16, 16)
    calls = []
    real_check = budget.check

    def counting_check():
        calls.append(1)
        real_check()

    monkeypatch.setattr(budget, "check", counting_check)
    pm(feats, feats, feats[:, :3], seeds, **run)
    assert len(calls) == 6  # once per iteration
    with budget.time_budget(0.0), pytest.raises(budget.BudgetExceeded):
        pm(feats, feats, feats[:, :3], seeds, **run)


def test_the_training_free_engine_stops_when_the_budget_is_spent():
    from core.conditions import from_user_condition
    from core.conditions.ade20k import PALETTE, class_index
    from core.engine import TrainingFreeEngine

    painted = np.zeros((64, 64, 3), np.uint8)
    painted[:32] = PALETTE[class_index("sky")]
    painted[16:, 20:44] = PALETTE[class_index("person")]
    cond = from_user_condition("mask", painted, (64, 64))
    cond.image = painted
    exemplar = torch.rand(1, 3, 64, 64) * 2 - 1
    TrainingFreeEngine()([cond], exemplar, [cond])  # runs without a budget
    with budget.time_budget(0.0), pytest.raises(budget.BudgetExceeded):
        TrainingFreeEngine()([cond], exemplar, [cond])


def test_docs_list_the_apps_limits():
    pytest.importorskip("gradio")
    from pathlib import Path

    from app import settings

    text = (Path(__file__).resolve().parents[1] / "docs" / "app.md").read_text()
    for limit in (settings.RESOLUTION, settings.ITERATIONS, settings.TEMPERATURE, settings.SEED):
        assert f"| `{limit.name}` | {limit.describe()}" in text, limit.name
