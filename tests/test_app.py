"""End to end: the real app (``python app.py``) on a free port, driven with gradio_client like a user's script."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from app.settings import ASSETS, ROOT  # noqa: E402
from tests.app_server import running_app  # noqa: E402

RES = 128  # small: the point is the plumbing, not the picture


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    before = _repo_files()
    (work / "checkpoints").mkdir()  # none: "auto" means training-free whatever the developer has installed
    env = {"WARPAINT_MAX_FILE_SIZE": "1mb", "WARPAINT_MAX_PIXELS": "20000000",
           "WARPAINT_CHECKPOINTS": str(work / "checkpoints")}
    with running_app(work, env=env) as url:
        yield url, work
    assert _repo_files() == before, "the app wrote files into the repository"


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return Client(server[0], download_files=str(tmp_path_factory.mktemp("downloads")), verbose=False)


def _repo_files() -> set[str]:
    watched = [ROOT / "app", ROOT / "assets", ROOT / ".gradio", ROOT / "flagged"]
    return {str(p) for d in watched if d.exists() for p in d.rglob("*") if "__pycache__" not in p.parts}


def _translate(client, task, source, exemplar, *, source_is_condition=False, oil=False):
    return client.predict(task, handle_file(str(source)), handle_file(str(exemplar)), source_is_condition, RES,
                          "auto", "", 2, 0.01, 0, oil, api_name="/translate")


def _picture(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("task, source, exemplar, oil", [
    ("pose", "astronaut.jpg", "grace_hopper.jpg", False),
    ("face", "grace_hopper.jpg", "astronaut.jpg", False),
    ("mask", "cameraman.png", "astronaut.jpg", False),
    ("face", "astronaut.jpg", "grace_hopper.jpg", True),  # Oil portrait: the exemplar is oil-painted first
])
def test_each_task_returns_an_image_and_the_warp_gallery(client, server, task, source, exemplar, oil):
    image, warps, flow, confidence, info = _translate(client, task, ASSETS / source, ASSETS / exemplar, oil=oil)
    out = _picture(image)
    assert out.shape == (RES, RES, 3) and out.std() > 1.0  # a picture, not a blank
    assert len(warps) == len(info["levels"]) >= 2
    assert [w["caption"] for w in warps] == [f"level {i + 1}/{len(warps)} - {w}x{h}"
                                             for i, (h, w) in enumerate(info["levels"])]
    for w in warps:
        assert _picture(w["image"]).shape == (RES, RES, 3)  # every level upsampled to the output size
    assert info["levels"][-1] == [RES, RES]
    assert _picture(flow).shape == _picture(confidence).shape == (RES, RES, 3)
    assert info["engine"] and ("training-free" in info["engine"] or "learned" in info["engine"])
    assert any((server[1] / "temp").rglob("*.png"))  # results are written in the app's own temporary folder


def test_a_painted_mask_is_a_ready_condition(client, tmp_path):
    from core.conditions.ade20k import PALETTE, class_index

    mask = np.zeros((RES, RES, 3), np.uint8)
    mask[: RES // 2] = PALETTE[class_index("sky")]
    mask[RES // 4 :, RES // 3 : 2 * RES // 3] = PALETTE[class_index("person")]
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    image, warps, _, _, info = _translate(client, "mask", path, ASSETS / "astronaut.jpg", source_is_condition=True)
    assert _picture(image).shape == (RES, RES, 3) and len(warps) == len(info["levels"])


def test_a_learned_checkpoint_is_used_when_chosen(client, server):
    import shutil

    import torch

    from core.config import get_preset
    from core.model import Warpaint

    torch.manual_seed(0)
    folder = server[1] / "checkpoints" / "tiny-pose"  # the server's own folder: clients choose by name
    Warpaint(get_preset("tiny", task="pose", label_channels=20)).save_pretrained(folder)
    try:
        image, warps, _, _, info = client.predict(
            "pose", handle_file(str(ASSETS / "astronaut.jpg")), handle_file(str(ASSETS / "grace_hopper.jpg")), False,
            RES, "learned", "tiny-pose", 2, 0.01, 0, False, api_name="/translate")
    finally:
        shutil.rmtree(folder)  # the other tests expect auto = training-free
    assert info["engine"].startswith("learned") and "tiny-pose" in info["engine"]
    assert _picture(image).shape == (RES, RES, 3) and len(warps) == 3  # the tiny preset has 3 levels


def test_extract_endpoint_returns_the_condition_picture(client):
    picture, messages = client.predict("pose", handle_file(str(ASSETS / "astronaut.jpg")), False, RES,
                                       api_name="/extract")
    pose = _picture(picture)
    assert pose.shape == (RES, RES, 3) and (pose.sum(axis=2) > 0).mean() > 0.01  # a skeleton is drawn
    assert isinstance(messages, str)


def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    good = ASSETS / "grace_hopper.jpg"
    text = tmp_path / "notes.png"  # a text file with an image name
    text.write_text("this is not a picture")
    with pytest.raises(AppError, match=r"notes\.png\) is not an image"):
        _translate(client, "pose", text, good)

    bomb = tmp_path / "huge.png"  # 25 MP of black: small file, too many pixels
    Image.new("L", (5000, 5000)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(AppError, match="MP limit"):
        _translate(client, "face", bomb, good)

    noise = tmp_path / "noise.png"  # no person in it
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(noise)
    with pytest.raises(AppError, match="(?i)person|body"):
        _translate(client, "pose", noise, good)

    big = tmp_path / "big.bmp"  # over the 1 MB upload limit this server was started with
    Image.new("RGB", (700, 700)).save(big)
    with pytest.raises(Exception, match="maximum file size"):  # refused before any byte is processed
        _translate(client, "pose", big, good)

    with pytest.raises(AppError, match="No learned checkpoint .* choose Advanced > Engine > training-free"):
        client.predict("pose", handle_file(str(good)), handle_file(str(good)), False, RES, "learned", "", 2, 0.01, 0,
                       False, api_name="/translate")
    with pytest.raises(AppError, match="paths are not accepted"):
        client.predict("pose", handle_file(str(good)), handle_file(str(good)), False, RES, "learned",
                       str(tmp_path), 2, 0.01, 0, False, api_name="/translate")

    image, *_ = _translate(client, "pose", ASSETS / "astronaut.jpg", good)  # still serving
    assert _picture(image).shape == (RES, RES, 3)


def test_the_log_a_new_user_reads(client, server):
    """After start and a face and a pose extraction: where to open the app and the app's own share switch,
    none of Gradio's "set `share=True` in `launch()`", httpx's line per request, nor MediaPipe's notices."""
    for task in ("face", "pose"):
        client.predict(task, handle_file(str(ASSETS / "grace_hopper.jpg")), False, RES, api_name="/extract")
    log = (server[1] / "app.log").read_text()
    assert f"Warpaint app: open {server[0]} in a browser" in log
    assert "python app.py --share or WARPAINT_SHARE=1" in log
    for noise in ("share=True", "launch()", "httpx", "HTTP Request", "Feedback manager", "XNNPACK", "absl::"):
        assert noise not in log, (noise, log[-3000:])


def test_a_painted_mask_given_as_a_photo_is_read_as_the_painted_mask(client):
    """The Mask tab with "Input is: Photo" and a painted ADE20K mask: its painted regions, not a person
    segmented out of flat colours; the note says so. A painted mask as the exemplar is refused with what to do."""
    painted = handle_file(str(ASSETS / "mask_cameraman.png"))
    as_photo, note = client.predict("mask", painted, False, RES, api_name="/extract")
    as_ready, _ = client.predict("mask", painted, True, RES, api_name="/extract")
    np.testing.assert_array_equal(_picture(as_photo), _picture(as_ready))
    assert note.startswith("This picture is painted in ADE20K colours, so it was read as a painted mask (Input is: "
                           "Ready condition)")  # core's note, in the app's words
    _, photo_note = client.predict("mask", handle_file(str(ASSETS / "astronaut.jpg")), False, RES, api_name="/extract")
    assert "painted in ADE20K colours" not in photo_note  # a photo is still segmented

    *_, info = _translate(client, "mask", ASSETS / "mask_cameraman.png", ASSETS / "astronaut.jpg")
    assert any(m.startswith("This picture is painted in ADE20K colours") for m in info["messages"])
    with pytest.raises(AppError, match="The exemplar is a painted mask.*Give a photo as the exemplar"):
        _translate(client, "mask", ASSETS / "astronaut.jpg", ASSETS / "mask_cameraman.png")


def test_a_palette_photo_is_smoothed_before_its_person_is_looked_for(client, tmp_path):
    """A photo stored with a palette (GIF-style, dithered) hid its person from the pose detector; it is found
    once the dithering is smoothed out, and the note says so. A palette-stored painted mask stays exact."""
    dithered = tmp_path / "grace_hopper.png"
    Image.open(ASSETS / "grace_hopper.jpg").convert("P").save(dithered)  # Pillow's default: web palette, dithered
    skeleton, note = client.predict("pose", handle_file(str(dithered)), False, RES, api_name="/extract")
    assert (_picture(skeleton).sum(axis=2) > 0).mean() > 0.01 and "dithering was smoothed out" in note
    *_, info = _translate(client, "pose", dithered, ASSETS / "astronaut.jpg")
    assert any("dithering was smoothed out before looking for the person" in m for m in info["messages"])

    mask = tmp_path / "mask.png"
    Image.open(ASSETS / "mask_cameraman.png").convert("RGB").quantize(colors=64, dither=Image.Dither.NONE).save(mask)
    assert Image.open(mask).mode == "P"
    from_palette, _ = client.predict("mask", handle_file(str(mask)), True, RES, api_name="/extract")
    exact, _ = client.predict("mask", handle_file(str(ASSETS / "mask_cameraman.png")), True, RES, api_name="/extract")
    np.testing.assert_array_equal(_picture(from_palette), _picture(exact))
