"""``python -m core translate``: one picture with its warps, a folder with skips, clear failures."""

import os
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from core.__main__ import main

HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(autouse=True)
def no_checkpoints(tmp_path, monkeypatch):
    """Run from an empty folder: no checkpoints/ there, so 'auto' means training-free."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def test_one_picture_with_warps(tmp_path, capsys):
    out, warps = tmp_path / "out.png", tmp_path / "warps"
    rc = main(["translate", "--task", "pose", "--input", str(HOPPER), "--exemplar", str(ASSETS / "astronaut.jpg"),
               "--output", str(out), "--warps-dir", str(warps), "--resolution", "128"])
    assert rc == 0
    assert Image.open(out).size == (128, 128)
    captured = capsys.readouterr()
    assert "engine: training-free" in captured.err and "training-free" in captured.out
    names = {p.name for p in warps.iterdir()}
    assert {"warped.png", "flow.png", "confidence.png", "input_condition.png", "exemplar_condition.png"} <= names
    for kind in ("warp", "flow", "confidence"):
        assert len([n for n in names if n.startswith("level") and n.endswith(f"_{kind}.png")]) >= 1  # v2: one
    coarsest = sorted(n for n in names if n.startswith("level0_") and n.endswith("_warp.png"))[0]
    assert Image.open(warps / coarsest).size == (128, 128)  # upsampled to the output size


def test_learned_without_checkpoint_fails_clearly(tmp_path, capsys):
    rc = main(["translate", "--task", "pose", "--input", str(HOPPER), "--exemplar", str(HOPPER),
               "--output", str(tmp_path / "o.png"), "--engine", "learned"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "No learned checkpoint" in err and "checkpoints/README.md" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_folder_skips_corrupt_file_and_writes_only_inside(tmp_path, capsys):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    shutil.copy(HOPPER, inputs / "hopper.jpg")
    shutil.copy(ASSETS / "skeleton_raised_arm.png", inputs / "no_person.png")  # a drawing: no person found
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (inputs / "notes.txt").write_text("not a picture, ignored")
    before = set(os.listdir(tmp_path))
    rc = main(["translate", "--task", "pose", "--input-dir", str(inputs), "--exemplar", str(ASSETS / "astronaut.jpg"),
               "--output-dir", str(outputs), "--resolution", "128", "--batch-size", "2"])
    assert rc == 1  # some files failed
    err = capsys.readouterr().err
    assert "skipped 2" in err and "broken.png" in err and "no_person.png" in err
    assert sorted(p.name for p in outputs.iterdir()) == ["hopper.png"]
    assert set(os.listdir(tmp_path)) == before | {"out"}


def test_folder_of_exemplars_pairs_by_name(tmp_path, capsys):
    inputs, exemplars, outputs = tmp_path / "in", tmp_path / "ex", tmp_path / "out"
    inputs.mkdir()
    exemplars.mkdir()
    shutil.copy(HOPPER, inputs / "a.jpg")
    shutil.copy(HOPPER, inputs / "b.jpg")
    shutil.copy(ASSETS / "astronaut.jpg", exemplars / "a.jpg")
    shutil.copy(ASSETS / "astronaut.jpg", exemplars / "c.jpg")
    rc = main(["translate", "--task", "pose", "--input-dir", str(inputs), "--exemplar", str(exemplars),
               "--output-dir", str(outputs), "--resolution", "128"])
    assert rc == 1
    assert "no exemplar named b" in capsys.readouterr().err
    assert [p.name for p in outputs.iterdir()] == ["a.png"]


def test_folder_mode_smooths_a_palette_photo_like_one_picture_mode(tmp_path, capsys):
    """A photo stored with a palette (GIF-style, dithered) hides its person from the pose detector until the
    dithering is smoothed out: folder mode smooths it as one-picture mode does, to the same result."""
    inputs, outputs, single = tmp_path / "in", tmp_path / "out", tmp_path / "single.png"
    inputs.mkdir()
    Image.open(ASSETS / "grace_hopper.jpg").convert("P").save(inputs / "hopper.png")  # Pillow: web palette, dithered
    common = ["--task", "pose", "--exemplar", str(ASSETS / "astronaut.jpg"), "--resolution", "128"]
    assert main(["translate", *common, "--input-dir", str(inputs), "--output-dir", str(outputs)]) == 0
    folder_err = capsys.readouterr().err
    assert main(["translate", *common, "--input", str(inputs / "hopper.png"), "--output", str(single)]) == 0
    notes = [line[len("note: "):] for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert "skipped" not in folder_err and any("dither" in note for note in notes)
    for note in notes:  # the same notes, each named by its picture
        assert f"note: hopper.png: {note}" in folder_err
    np.testing.assert_array_equal(np.asarray(Image.open(outputs / "hopper.png")), np.asarray(Image.open(single)))


def test_batch_refuses_lists_of_different_lengths():
    """Inputs, exemplars and palette flags pair one to one: a short list is refused, not silently cut."""
    from core.errors import InputError
    from core.pipeline import Translator

    translator = Translator("pose", engine="training-free")
    picture = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="2 inputs, 1 exemplars"):
        translator.translate_batch([picture, picture], [picture])
    with pytest.raises(InputError, match="1 palette flags"):
        translator.translate_batch([picture, picture], [picture, picture], source_palettes=[False])


def test_mixed_modes_rejected(tmp_path, capsys):
    rc = main(["translate", "--task", "pose", "--input", str(HOPPER), "--input-dir", str(tmp_path),
               "--exemplar", str(HOPPER), "--output-dir", str(tmp_path / "o")])
    assert rc == 1 and "either" in capsys.readouterr().err


def test_a_bad_output_is_refused_before_any_work_and_no_input_is_overwritten(tmp_path, capsys, monkeypatch):
    """--output over the input or exemplar, with an unknown suffix, or a folder; --warps-dir naming a file: each
    refused at once (no model built, no translation run), and the input photo is left as it was."""
    import core.pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("a translator was built for a run that cannot write its result")

    monkeypatch.setattr(core.pipeline, "Translator", no_work)
    photo = tmp_path / "me.jpg"
    shutil.copy(HOPPER, photo)
    before = photo.read_bytes()
    notes = tmp_path / "notes.png"
    notes.write_text("a file")
    folder = tmp_path / "out.png"
    folder.mkdir()
    (tmp_path / "w").mkdir()
    cases = [(["--output", str(photo)], "would overwrite an input file"),
             (["--output", str(tmp_path / "out.txt")], "use one of .png"),
             (["--output", str(folder)], "is a folder"),
             (["--output", str(tmp_path / "o.png"), "--warps-dir", str(notes)], "is a file; give a folder"),
             (["--output", str(tmp_path / "w" / "flow.png"), "--warps-dir", str(tmp_path / "w")],
              "would overwrite --output")]
    for extra, words in cases:
        rc = main(["translate", "--task", "pose", "--input", str(photo), "--exemplar", str(ASSETS / "astronaut.jpg"),
                   *extra])
        err = capsys.readouterr().err
        assert rc == 1 and words in err and "Traceback" not in err, (extra, err)
    warped = tmp_path / "warped.png"  # an input named as one of the warp pictures, in --warps-dir
    shutil.copy(HOPPER, warped)
    rc = main(["translate", "--task", "pose", "--input", str(warped), "--exemplar", str(ASSETS / "astronaut.jpg"),
               "--output", str(tmp_path / "o.png"), "--warps-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "would overwrite --input" in err and "Traceback" not in err, err
    assert photo.read_bytes() == before and warped.read_bytes() == HOPPER.read_bytes()


def test_folder_mode_refuses_to_overwrite_an_input_or_exemplar_before_any_work(tmp_path, capsys, monkeypatch):
    """--output-dir over --input-dir (me.png -> me.png), over the exemplar, or a file; --warps-dir naming a file:
    each refused at once, every input left as it was, and the message names only what was typed."""
    import core.pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("a translator was built for a run that cannot write its results")

    monkeypatch.setattr(core.pipeline, "Translator", no_work)
    inputs, exemplars = tmp_path / "in", tmp_path / "ex"
    inputs.mkdir()
    exemplars.mkdir()
    Image.open(HOPPER).save(inputs / "me.png")
    shutil.copy(HOPPER, inputs / "you.jpg")
    Image.open(ASSETS / "astronaut.jpg").save(exemplars / "you.png")
    notes = tmp_path / "notes.png"
    notes.write_text("a file")
    before = {p: p.read_bytes() for p in (*inputs.iterdir(), *exemplars.iterdir(), notes)}
    exemplar = ["--exemplar", str(ASSETS / "astronaut.jpg")]
    cases = [(["--output-dir", str(inputs), *exemplar], "me.png) would overwrite an input"),
             (["--output-dir", str(exemplars), "--exemplar", str(exemplars)], "you.png) would overwrite"),
             (["--output-dir", str(notes), *exemplar], "is a file; give a folder"),
             (["--output-dir", str(tmp_path / "out"), "--warps-dir", str(notes), *exemplar],
              "--warps-dir " + str(notes) + " is a file")]
    for extra, words in cases:
        rc = main(["translate", "--task", "pose", "--input-dir", str(inputs), *extra])
        err = capsys.readouterr().err
        assert rc == 1 and words in err and "Traceback" not in err, (extra, err)
        assert "choose another" in err or "give a folder" in err
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "out").exists()


def test_the_research_commands_refuse_bad_numbers_before_any_work(tmp_path, capsys):
    """train's float overrides (--lr nan ended in torch's traceback), eval-warp's limits (--cross-limit -1 left the
    last pair out, silently) and retrieve's --size (0 read every photo as having no condition): one line each."""
    train = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    cases = [([*train, "--lr", "nan"], "--lr nan is out"), ([*train, "--ema", "1"], "--ema 1.0 is out"),
             ([*train, "--grad-clip=-inf"], "--grad-clip -inf"),
             (["eval-warp", "--task", "pose", "--cross", "--cross-limit", "-1"], "--cross-limit must be at least 1"),
             (["eval-warp", "--task", "pose", "--strength", "nan"], "--strength nan is out of range"),
             (["retrieve", "--data", str(tmp_path), "--size", "0"], "--size 0 is out of range")]
    for argv, words in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 1 and words in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "run").exists()
