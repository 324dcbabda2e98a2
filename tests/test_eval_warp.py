"""``python -m core eval-warp``: one JSON line, both baselines, and the engine ahead of identity."""

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np

from core.__main__ import main
from core.commands.eval_warp import synthetic_scene
from core.conditions.masks import index_to_palette
from core.imageio import save_image

HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
METRICS = {"psnr", "ssim", "psnr_subject", "ssim_subject"}


def _report(capsys) -> dict:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    return json.loads(lines[0])


def test_pose_pairs_report_all_baselines(tmp_path, capsys):
    shutil.copy(HOPPER, tmp_path / "hopper.jpg")
    shutil.copy(ASSETS / "astronaut.jpg", tmp_path / "astronaut.jpg")
    (tmp_path / "readme.txt").write_text("ignored")
    rc = main(["eval-warp", "--task", "pose", "--images", str(tmp_path), "--resolution", "128", "--limit", "2"])
    assert rc == 0
    report = _report(capsys)
    assert report["task"] == "pose" and report["engine"] == "training-free" and report["pairs"] == report["photos"] == 2
    for name in ("warp", "identity", "tps"):
        assert set(report[name]) == METRICS
    assert report["warp"]["psnr"] > report["identity"]["psnr"]
    assert report["warp"]["psnr_subject"] > report["identity"]["psnr_subject"]
    assert isinstance(report["beats_baselines"], bool) and report["skipped"] == []
    assert report["engine_version"] == 2  # the pose default
    rc = main(["eval-warp", "--task", "pose", "--images", str(tmp_path), "--resolution", "128", "--limit", "1",
               "--engine-version", "1"])
    assert rc == 0 and _report(capsys)["engine_version"] == 1


def test_masks_from_sibling_files_and_synthetic_scenes(tmp_path, capsys):
    picture, index = synthetic_scene(160, seed=7)
    save_image(tmp_path / "scene.png", picture)
    save_image(tmp_path / "scene_mask.png", index_to_palette(index))
    rc = main(["eval-warp", "--task", "mask", "--images", str(tmp_path), "--synthetic", "1", "--resolution", "128",
               "--pairs", "2"])
    assert rc == 0
    report = _report(capsys)
    assert report["photos"] == 2 and report["pairs"] == 4 and report["tps"] is None  # masks have no keypoints
    assert report["warp"]["psnr"] > report["identity"]["psnr"] + 1.0
    assert report["warp"]["ssim"] > report["identity"]["ssim"]


def test_synthetic_scene_is_deterministic():
    a, ia = synthetic_scene(64, 3)
    b, ib = synthetic_scene(64, 3)
    assert np.array_equal(a, b) and np.array_equal(ia, ib)
    assert a.shape == (64, 64, 3) and ia.shape == (64, 64) and len(np.unique(ia)) >= 2


def test_no_images_is_a_clear_error(tmp_path, capsys):
    assert main(["eval-warp", "--task", "pose", "--images", str(tmp_path)]) == 1
    assert "No photos" in capsys.readouterr().err


def test_cross_pairs_report_every_figure_and_draw_the_sheet(tmp_path, capsys):
    from PIL import Image

    from core.utils.contact_sheet import CAPTION, HEADER

    sheet = tmp_path / "sheet.png"
    rc = main(["eval-warp", "--task", "face", "--cross", "--cross-limit", "1", "--resolution", "128",
               "--sheet", str(sheet), "--sheet-tile", "96"])
    assert rc == 0
    report = _report(capsys)
    assert "warp" not in report  # no --images: cross pairs only
    cross = report["cross"]
    assert cross["task"] == "face" and cross["pairs"] == 1 and set(cross["engines"]) == {"v1", "v2"}
    for version in ("v1", "v2"):
        (row,) = cross["engines"][version]["rows"]
        assert row["pair"] == "grace_hopper -> astronaut" and not row["painted_exemplar"]
        assert 0 <= row["nme"] < 0.2 and 0.5 < row["coherence"] < 5 and 0 <= row["folds"] < 1 and row["seconds"] > 0
        summary = cross["engines"][version]["summary"]
        assert summary["translated"] == 1 and summary["nme_photo_exemplars"]["max"] == row["nme"]
    with Image.open(sheet) as im:  # input | exemplar | v1 | v2, one row
        assert im.size == (4 * 96, HEADER + CAPTION + 96)


def test_pseudo_pairs_draw_their_sheet(tmp_path, capsys):
    """--pseudo-sheet: one row per pseudo pair (x | T(x) | TPS | engine), the engine's tile the output the
    report scores (its PSNR on the strip); a sheet not named .png is a clear error."""
    from PIL import Image

    from core.utils.contact_sheet import CAPTION, HEADER

    shutil.copy(ASSETS / "astronaut.jpg", tmp_path / "astronaut.jpg")
    sheet = tmp_path / "out" / "pseudo.png"
    rc = main(["eval-warp", "--task", "face", "--images", str(tmp_path), "--resolution", "128", "--pairs", "2",
               "--pseudo-sheet", str(sheet), "--sheet-tile", "96"])
    assert rc == 0
    report = _report(capsys)
    assert report["pairs"] == 2 and report["pseudo_sheet"] == str(sheet)
    with Image.open(sheet) as im:
        assert im.size == (4 * 96, HEADER + 2 * (CAPTION + 96))
        pixels = np.asarray(im.convert("RGB"))
    tiles = [pixels[HEADER + CAPTION + 10:HEADER + CAPTION + 80, c * 96:(c + 1) * 96] for c in range(4)]
    assert all(tile.std() > 10 for tile in tiles)  # four pictures, none of them an empty cell
    assert main(["eval-warp", "--task", "face", "--images", str(tmp_path), "--pseudo-sheet",
                 str(tmp_path / "x.jpg")]) == 1
    assert "PNG" in capsys.readouterr().err


def test_unknown_engine_version_is_a_clear_error(capsys):
    assert main(["eval-warp", "--task", "face", "--cross", "--versions", "v9"]) == 1
    assert "v9" in capsys.readouterr().err


def test_result_positions_are_the_map_the_output_samples():
    """The contract eval-warp's fold-over fraction relies on: ``positions`` (row, col) in the
    exemplar picture the engine sampled, ``mapped`` where the output comes from it."""
    import cv2

    from core.eval_pairs import picture
    from core.imageio import fit_image
    from core.pipeline import Translator

    exemplar = picture("astronaut")
    result = Translator("face", engine="training-free").translate(picture("grace_hopper"), exemplar, resolution=128)
    assert result.positions.shape == (128, 128, 2) and result.mapped.shape == (128, 128)
    fitted = fit_image(exemplar, (128, 128))
    resampled = cv2.remap(fitted, result.positions[..., 1], result.positions[..., 0], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    # Compared a little blurred: engine v2 samples the original (larger) photo, so its warp has detail
    # the fitted picture lacks; the map itself must agree.
    diff = np.abs(cv2.GaussianBlur(resampled.astype(float), (0, 0), 1.0)
                  - cv2.GaussianBlur(result.warped.astype(float), (0, 0), 1.0)).mean(-1)
    assert result.mapped.mean() > 0.3 and np.median(diff[result.mapped]) < 2.0


def test_summary_leaves_degenerate_exemplar_pairs_out_and_names_them():
    from core.commands.eval_warp import _summary

    rows = [{"pair": "a -> b", "painted_exemplar": False, "coherence": 1.0, "nme": 0.02, "seconds": 1.0},
            {"pair": "c -> b/zoomed-out-blur", "painted_exemplar": False, "degenerate_exemplar": True,
             "coherence": 2.4, "nme": 0.03, "seconds": 1.0}]
    summary = _summary(rows)
    assert summary["coherence"]["max"] == 1.0 and summary["nme_photo_exemplars"]["max"] == 0.02
    assert summary["translated"] == 1 and summary["degenerate_exemplar_pairs"] == ["c -> b/zoomed-out-blur"]
