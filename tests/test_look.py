"""benchmarks/look.py: the contact sheets the team looks at (input | exemplar | output a row)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import look  # noqa: E402


def test_a_sheet_has_a_row_a_pair_and_a_grey_square_for_a_refusal(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    look.main(["pairs", str(out), "--task", "pose", "--resolution", "128",
               "grace_hopper", "astronaut", "cameraman/mirrored", "astronaut/rotated"])
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[0] == 2 * (look.ROW_HEIGHT + 4)
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("0 pose grace_hopper -> astronaut") and "refused" not in said[0]
    assert said[1].startswith("1 pose cameraman/mirrored -> astronaut/rotated: refused: The exemplar does not show")
    second_output = sheet[look.ROW_HEIGHT + 4:-4, -look.ROW_HEIGHT:]
    assert (second_output == 128).all()  # the refused pair's output square
    first_output = sheet[:look.ROW_HEIGHT, -look.ROW_HEIGHT:]
    assert first_output.std() > 10  # a picture, not a square


def test_pairs_need_a_task_and_whole_pairs(tmp_path):
    with pytest.raises(SystemExit):
        look.main(["pairs", str(tmp_path / "s.png"), "--task", "face", "astronaut"])
    with pytest.raises(SystemExit):
        look.main(["pairs", str(tmp_path / "s.png"), "astronaut", "grace_hopper"])
    assert not (tmp_path / "s.png").exists()


def test_the_unseen_pairs_are_in_no_evaluation_list():
    from core.eval_pairs import PAIRS

    for task, input_name, exemplar_name in look.UNSEEN:
        assert (input_name, exemplar_name) not in PAIRS[task]
