"""benchmarks/completion_sheet.py: options that would draw one column twice are refused before any work."""

from __future__ import annotations

import sys

import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
import completion_sheet  # noqa: E402


def test_layers_with_the_face_guess_is_refused(monkeypatch, tmp_path, capsys):
    """``compose.complete`` splits a hole in layers only with the follow guess: with ``--face`` the ``--layers``
    column was the plain completion again."""
    monkeypatch.setattr(completion_sheet, "exemplars", lambda: [])  # no work, whatever the options
    out = tmp_path / "sheet.png"
    with pytest.raises(SystemExit) as refused:
        completion_sheet.main([str(out), "--face", "--layers"])
    assert refused.value.code == 2 and "--layers needs the follow guess" in capsys.readouterr().err
    assert not out.exists()
