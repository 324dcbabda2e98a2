"""The app's pieces without a server or a model: drawing, palette, errors, inspect, layout."""

from __future__ import annotations

import re

import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from app import drawing, engine, handlers, palette, settings  # noqa: E402
from core.conditions.masks import looks_painted  # noqa: E402
from core.errors import CheckpointError, InputError, NoSubjectError  # noqa: E402
from core.results import LevelView  # noqa: E402
from tests.app_server import free_port  # noqa: E402


def _level(h: int, w: int, k: int, size: int) -> LevelView:
    rng = np.random.default_rng(0)
    return LevelView(size=(h, w), warp=np.zeros((size, size, 3), np.uint8), flow=np.zeros((size, size, 3), np.uint8),
                     confidence=rng.random((h, w)).astype(np.float32),
                     candidates=rng.random((h, w, k, 2)).astype(np.float32) * size,
                     weights=np.full((h, w, k), 1.0 / k, np.float32))


def test_grid_cell_maps_output_pixels_to_level_cells():
    assert drawing.grid_cell((0, 0), (256, 256), (32, 32)) == (0, 0)
    assert drawing.grid_cell((255.9, 255.9), (256, 256), (32, 32)) == (31, 31)
    assert drawing.grid_cell((8, 17), (256, 256), (32, 32)) == (2, 1)  # (x, y) -> (row, col)
    assert drawing.grid_cell((1000, -5), (256, 128), (64, 32)) == (0, 31)  # clipped
    assert drawing.grid_cell((63, 0), (128, 64), (32, 16)) == (0, 15)  # non-square


def test_mark_candidates_disc_area_follows_weight():
    exemplar = np.zeros((256, 256, 3), np.uint8)
    candidates = np.array([[64, 64], [192, 192]], np.float32)
    marked = drawing.mark_candidates(exemplar, candidates, np.array([0.8, 0.2], np.float32))
    assert marked.shape == exemplar.shape and marked.dtype == np.uint8
    changed = marked.any(axis=2)
    heavy, light = changed[:128, :128].sum(), changed[128:, 128:].sum()
    assert light > 0
    assert 2.5 < heavy / light < 6.0  # area ~ weight (4x), drawn discs are not exact
    assert not changed[:, 128 - 30 : 128 + 30].all()  # marks stay local
    assert exemplar.max() == 0  # input untouched


def test_confidence_picture_and_gallery():
    conf = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    pic = drawing.confidence_picture(conf, (64, 32))
    assert pic.shape == (64, 32, 3) and pic.dtype == np.uint8
    assert (pic[:32, :16] == pic[0, 0]).all()  # nearest upsampling keeps level cells visible
    assert pic[0, 0].sum() < pic[0, 31].sum()  # viridis: low confidence is dark
    levels = [_level(8, 8, 4, 64), _level(16, 16, 4, 64)]
    gallery = drawing.warp_gallery(levels)
    assert [c for _, c in gallery] == ["level 1/2 - 8x8", "level 2/2 - 16x16"]


def test_inspect_marks_the_clicked_cells_candidates():
    lv = _level(8, 8, 4, 64)
    lv.candidates[2, 5] = np.array([[10, 50], [40, 12], [40, 12], [40, 12]], np.float32)
    lv.weights[2, 5] = np.array([0.97, 0.01, 0.01, 0.01], np.float32)
    state = handlers.InspectState(exemplar=np.zeros((64, 64, 3), np.uint8), size=(64, 64), levels=[lv])
    marked, text = handlers.inspect(state, None, (5 * 8 + 3, 2 * 8 + 1))  # (x, y) inside cell (2, 5)
    assert "row 2, col 5" in text and "0.97" in text
    changed = marked.any(axis=2)
    assert changed[50, 10] and changed[50, 10 + 4]  # big disc around the heavy candidate
    assert changed[30:40, 40:].sum() < changed[45:56, 4:16].sum()
    assert handlers.inspect(None, None, (1, 1))[0] is None


def test_a_click_or_level_a_client_sends_is_checked():
    """The inspect events take a point and a gallery index from the client: text (the string "12" is not the
    click (1, 2)), NaN, infinity, a lone number, a list of one or three, or a huge index is no click or the
    finest level, never an error; a list of two numbers is a click."""
    state = handlers.InspectState(exemplar=np.zeros((64, 64, 3), np.uint8), size=(64, 64),
                                  levels=[_level(4, 4, 2, 64), _level(8, 8, 4, 64)])
    for point in [(float("nan"), 1), ("a", 1), (1,), 5, (float("inf"), 0), None, "12", b"12", ("1", "2"),
                  (True, 1), (1, 2, 3), {1: 0, 2: 0}, (10**400, 1)]:
        picture, text = handlers.inspect(state, None, point)
        assert picture is state.exemplar and text.startswith("Click a point"), point
    state.flow, state.confidence = np.full((64, 64, 3), 7, np.uint8), np.ones((64, 64), np.float32)  # the final ones
    # Only what the gallery sends picks a level (its index: 0 or 1 here); the rest is no pick, never converted or
    # clipped into one: numbers as text, booleans, fractions, out of range.
    for level in ["x", "0", "1", b"0", float("nan"), float("inf"), [1], None, 10**30, -1, -5, True, False, 0.0, 1.0]:
        assert "level 2/2" in handlers.inspect(state, level, (3, 3))[1], level
        assert handlers.level_pictures(state, level)[0] is state.flow, level
    assert handlers.picked_level(state, "0") is None and handlers.picked_level(state, np.int64(1)) == 1
    for level in (0, 1):
        assert f"level {level + 1}/2" in handlers.inspect(state, level, (3, 3))[1]
        assert handlers.level_pictures(state, level)[0] is state.levels[level].flow
    assert "row 0, col 0" in handlers.inspect(state, None, [np.float32(3), 3])[1]


def test_the_mask_editor_value_is_checked_before_any_work(monkeypatch):
    """Values the editor would never send are refused with the editor's message; a mask over the pixel limit is
    refused before a float copy of it is made; in the tab, the refusal is a message (gr.Error)."""
    from app.tasks import TABS
    from app.ui import _source

    for value in ["text", [1, 2], {"background": "x"}, {"layers": "abc"}, {"layers": [None, "x"]},
                  {"layers": [np.zeros((2, 2, 5), np.uint8)]}, {"composite": np.zeros((4, 4, 3), np.float64)}]:
        with pytest.raises(InputError, match="mask editor's picture could not be read"):
            palette.editor_to_mask(value)
    monkeypatch.setattr(settings, "MAX_PIXELS", 100)
    with pytest.raises(InputError, match="more than 0 MP"):
        palette.editor_to_mask({"background": np.zeros((20, 20, 4), np.uint8)})
    mask_tab = next(spec for spec in TABS if spec.task == "mask")
    with pytest.raises(gr.Error, match="mask editor's picture could not be read"):
        engine.friendly_errors(_source)(mask_tab, "Ready condition", None, {"background": "x"})


def test_every_input_keeps_its_checks_when_gradio_rebuilds_it():
    """Gradio rebuilds a component for one session (``block.__class__(**constructor_args)``) after a handler sends
    it a property update; a check patched onto the instance was lost there. Every input of every event is one of
    the app's component classes (the checks are the class's), drawn by Gradio's stock front end."""
    from gradio.data_classes import FileData

    from app import components
    from app.ui import build_demo

    demo = build_demo()
    seen = set()
    for fn in demo.fns.values():
        for block in fn.inputs:
            if isinstance(block, (gr.State, gr.Video)):  # the server's own state; a clip's path, read by the handler
                continue
            assert type(block).__module__ == "app.components" and "preprocess" not in vars(block), block
            rebuilt = type(block)(**{**block.constructor_args, "render": False})
            assert type(rebuilt) is type(block) and rebuilt.get_block_name() == type(block).__base__.__name__.lower()
            seen.add(type(block).__name__)
    assert seen == {"PhotoInput", "MaskEditor", "ExampleClicks", "RawRadio", "RawCheckbox", "RawSlider",
                    "RawDropdown", "RawNumber", "RawTextbox"}, seen
    photo = components.photo_input(label="x")
    rebuilt = type(photo)(**{**photo.constructor_args, "render": False})
    with pytest.raises(gr.Error, match="could not be read as a picture"):
        rebuilt.preprocess(FileData(path="", url="data:text/plain,hello"))


def test_the_app_s_component_classes_write_nothing_beside_their_source(tmp_path):
    """Gradio's component metaclass writes a ``.pyi`` stub beside the module of every component class it creates,
    at each import (gradio/component_meta.py ``create_or_modify_pyi``): the app's classes skip it, so importing
    them (here from a copy of the package) adds no file to the app's folder."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.app_server import ROOT

    copy = tmp_path / "app"
    shutil.copytree(ROOT / "app", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    before = sorted(p.name for p in copy.iterdir())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "PYTHONDONTWRITEBYTECODE": "1"}
    script = (f"import app.components as c, gradio.component_meta as m; assert c.__file__.startswith({str(copy)!r}); "
              "assert m.create_or_modify_pyi.__name__ == 'create_or_modify_pyi'")  # the writer given back
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, timeout=120)
    assert sorted(p.name for p in copy.iterdir()) == before


def test_an_oversized_mask_editor_upload_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    from gradio.components.image_editor import EditorData
    from gradio.data_classes import FileData
    from PIL import Image

    from app.components import mask_editor

    big = tmp_path / "mask.png"
    Image.new("RGB", (400, 300)).save(big)
    editor = mask_editor(type="numpy", image_mode="RGBA")
    payload = EditorData(background=FileData(path=str(big)), layers=[], composite=FileData(path=str(big)))
    assert editor.preprocess(payload)["background"].shape == (300, 400, 4)
    monkeypatch.setattr(settings, "MAX_PIXELS", 100_000)
    decoded = []
    monkeypatch.setattr(gr.ImageEditor, "convert_and_format_image", lambda *a, **k: decoded.append(1))
    with pytest.raises(gr.Error, match="more than 0 MP"):
        editor.preprocess(payload)
    assert not decoded


def test_the_mask_editor_bounds_its_layers_before_decoding(tmp_path, monkeypatch):
    """The editor checked only its largest picture: one small PNG of many pixels named as every layer (or uploaded
    as every layer) was decoded by Gradio once per layer (40 layers of 4 MP: +600 MB). Now, before any decoding:
    at most ``MAX_EDITOR_LAYERS`` layers (the page has one: no "add layer" button), all pictures together at most
    ``MAX_EDITOR_PICTURES`` times the pixel limit, every layer the background's size."""
    from io import BytesIO

    from gradio.components.image_editor import EditorData, EditorDataBlobs
    from gradio.data_classes import FileData
    from PIL import Image

    from app.components import MAX_EDITOR_LAYERS, mask_editor

    Image.new("L", (400, 300)).save(tmp_path / "m.png")
    Image.new("L", (300, 400)).save(tmp_path / "turned.png")
    part, turned = FileData(path=str(tmp_path / "m.png")), FileData(path=str(tmp_path / "turned.png"))
    editor = mask_editor(type="numpy", image_mode="RGBA")
    assert editor.layers.allow_additional_layers is False and MAX_EDITOR_LAYERS <= 4
    assert len(editor.preprocess(EditorData(background=part, layers=[part], composite=part))["layers"]) == 1
    decoded = []
    monkeypatch.setattr(gr.ImageEditor, "convert_and_format_image", lambda *a, **k: decoded.append(1))
    monkeypatch.setattr(settings, "MAX_PIXELS", 200_000)  # each picture 120,000 px; 600,000 px together
    editor.preprocess(EditorData(background=part, layers=[part, part], composite=part))  # 480,000 px: taken
    decoded.clear()
    for layers, words in (([part] * (MAX_EDITOR_LAYERS + 1), "sent 5 layers; it takes at most 4"),
                          ([part] * 4, "more than 1 MP together"), ([turned], "not the size of its picture")):
        with pytest.raises(gr.Error, match=words):
            editor.preprocess(EditorData(background=part, layers=layers, composite=part))
    png = BytesIO()
    Image.new("L", (400, 300)).save(png, format="PNG")
    for count, words in ((MAX_EDITOR_LAYERS + 1, "sent 5 layers"), (4, "MP together")):  # the upload route's way
        editor.blob_storage["u"] = EditorDataBlobs(background=png.getvalue(), layers=[png.getvalue()] * count,
                                                   composite=png.getvalue())
        with pytest.raises(gr.Error, match=words):
            editor.preprocess(EditorData(id="u"))
        assert "u" not in editor.blob_storage
    assert not decoded


def test_a_refused_mask_editor_upload_leaves_no_blobs_behind(monkeypatch):
    """Uploads sent as blobs wait in ``blob_storage`` until Gradio's preprocess removes them; a refused (too
    large) or unreadable one is removed too, not kept for the server's life."""
    from io import BytesIO

    from gradio.components.image_editor import EditorData, EditorDataBlobs
    from PIL import Image

    from app.components import mask_editor

    png = BytesIO()
    Image.new("RGB", (400, 300)).save(png, format="PNG")
    editor = mask_editor(type="numpy", image_mode="RGBA")
    monkeypatch.setattr(settings, "MAX_PIXELS", 100_000)
    for blob, words in ((png.getvalue(), "more than 0 MP"), (b"not a picture", "could not be read")):
        editor.blob_storage["upload"] = EditorDataBlobs(background=blob, layers=[], composite=blob)
        with pytest.raises(gr.Error, match=words):
            editor.preprocess(EditorData(id="upload"))
        assert "upload" not in editor.blob_storage, words


def test_mask_editor_uploads_are_checked_and_bounded(monkeypatch, caplog):
    """The page uploads the editor's pictures (``accept_blobs``, callable by any client) before the event. Gradio's
    own stored any layer index (10^10: an 80 GB list, the server killed), answered a missing or non-numeric field
    with a 500 and a traceback, and kept uploads whose event never came for the server's life. Now: such uploads
    are dropped with one log line; the waiting ones, one store for every editor and its session copies, are bounded
    (the oldest dropped first)."""
    from gradio.data_classes import DataWithFiles

    from app import components

    monkeypatch.setattr(components, "_PENDING_EDITOR_BLOBS", {})
    editor = components.mask_editor(type="numpy")
    copy = type(editor)(**{**editor.constructor_args, "render": False})  # as Gradio rebuilds it for a session

    def upload(target, kind="layer", index="0", upload_id="u1", size=10, **fields):
        data = {"type": kind, "index": index, "id": upload_id, **fields}
        return target.accept_blobs(DataWithFiles(data={k: v for k, v in data.items() if v is not ...},
                                                 files=[("blob", b"x" * size)]))  # as the route passes it

    with caplog.at_level("INFO", logger="warpaint.app"):
        for bad in (dict(index=str(10**7)), dict(index="-1"), dict(index="abc"), dict(index=...), dict(kind="x"),
                    dict(kind=...), dict(upload_id=...), dict(upload_id="i" * 500), dict(index=None)):
            assert upload(editor, **bad) is None, bad
    assert components._PENDING_EDITOR_BLOBS == {} and caplog.text.count("a mask editor upload the page") == 9
    upload(editor, index="1")
    upload(copy, kind="background", index=None)
    assert editor.blob_storage is copy.blob_storage and list(editor.blob_storage) == ["u1"]
    assert len(editor.blob_storage["u1"].layers) == 2 and editor.blob_storage["u1"].background == b"x" * 10
    monkeypatch.setattr(components, "MAX_PENDING_EDITOR_BYTES", 1000)
    for i in range(5):
        upload(editor, upload_id=f"big{i}", size=400)
    assert list(editor.blob_storage) == ["big3", "big4"]  # the oldest went first, u1 with them
    monkeypatch.setattr(components, "MAX_PENDING_EDITOR_UPLOADS", 3)
    for i in range(5):
        upload(copy, upload_id=f"small{i}", size=1)
    assert list(editor.blob_storage) == ["small2", "small3", "small4"]


def test_an_upload_is_opened_once_and_its_palette_storage_known(tmp_path, monkeypatch):
    """``load_upload`` gives the pixels and whether the file was stored with a palette (a dithered photo is then
    smoothed before detection), reading the file once."""
    from PIL import Image

    photo = Image.open(settings.ASSETS / "grace_hopper.jpg")
    photo.convert("P").save(tmp_path / "dithered.png")
    photo.save(tmp_path / "plain.png")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    picture, dithered = engine.load_upload(str(tmp_path / "dithered.png"), "input")
    assert dithered and picture.shape == (600, 512, 3) and len(opened) == 1
    assert engine.load_upload(str(tmp_path / "plain.png"), "input")[1] is False
    assert engine.load_upload(np.zeros((20, 20, 3), np.uint8), "input")[1] is False


def test_core_alone_decides_whether_a_mask_input_is_painted_and_words_it_for_the_app(monkeypatch):
    """The Mask tab's input is looked at once, by core (``masks.extract``), not by the app first and core again; a
    painted mask given as a photo gets core's note, which names the app's control in the app and no flag in the
    CLI's words."""
    from core.conditions import masks
    from core.pipeline import Translator

    seen = []
    real = masks.looks_painted
    monkeypatch.setattr(masks, "looks_painted", lambda picture: seen.append(picture.shape) or real(picture))
    _, notes = handlers.extract("mask", str(settings.ASSETS / "mask_cameraman.png"), False, 128)
    assert len(seen) == 1
    assert notes.startswith("This picture is painted in ADE20K colours, so it was read as a painted mask (Input is: "
                            "Ready condition), not segmented as a photo.")
    seen.clear()
    _, notes = handlers.extract("mask", str(settings.ASSETS / "astronaut.jpg"), False, 128)
    assert len(seen) == 1 and "painted" not in notes
    painted = engine.load_picture(str(settings.ASSETS / "mask_cameraman.png"), "input")
    cli = Translator("mask", engine="training-free").extract(painted, (128, 128)).messages[0]
    assert cli == ("This picture is painted in ADE20K colours, so it was read as a painted mask, not segmented as "
                   "a photo.")


def test_the_video_tab_s_status_names_no_server_folder(monkeypatch, tmp_path):
    """The learned engine's name carries its checkpoint folder: the status shows the model's name only."""
    from app import video
    from core.video import retarget

    folder = settings.CHECKPOINTS / "pose-model"

    class Result:
        output, skeleton_video, frames, size, fps = tmp_path / "r.mp4", tmp_path / "s.mp4", 3, (64, 64), 10.0
        engine, messages = f"learned ({folder})", [f"Engine: learned ({folder})."]

    class Retargeter:
        def __init__(self, translator):
            pass

        def run(self, *args, **kwargs):
            return Result()

    monkeypatch.setattr(video, "check_clip", lambda path: "a clip")
    monkeypatch.setattr(video, "translator_for", lambda *args: None)
    monkeypatch.setattr(retarget, "VideoRetargeter", Retargeter)
    _, _, status = video.retarget("clip.mp4", np.zeros((64, 64, 3), np.uint8), 128, "learned")
    assert "checkpoints/pose-model" in status and str(settings.ROOT) not in str(status)
    assert "(a server path)" not in status


def test_editor_value_to_mask_picture():
    assert palette.editor_to_mask(None) is None
    blank = np.zeros((4, 4, 4), np.uint8)
    assert palette.editor_to_mask({"background": None, "layers": [], "composite": blank}) is None
    painted = blank.copy()
    sky = palette.PALETTE[palette.class_index("sky")]
    painted[:2, :, :3], painted[:2, :, 3] = sky, 255
    mask = palette.editor_to_mask({"composite": painted})
    assert mask.shape == (4, 4, 3)
    assert (mask[:2] == sky).all() and (mask[2:] == 0).all()  # unpainted = black = unlabeled
    white = np.full((4, 4, 4), 255, np.uint8)  # the editor's blank canvas
    assert palette.editor_to_mask({"background": white, "layers": [blank], "composite": white}) is None
    mask = palette.editor_to_mask({"background": white, "layers": [painted], "composite": white})
    assert (mask[:2] == sky).all() and (mask[2:] == 0).all()  # white canvas = unlabeled, strokes on top
    person = palette.PALETTE[palette.class_index("person")]
    uploaded = np.zeros((4, 4, 4), np.uint8)
    uploaded[..., :3], uploaded[..., 3] = person, 255  # an uploaded palette mask as the background
    mask = palette.editor_to_mask({"background": uploaded, "layers": [painted], "composite": None})
    assert (mask[:2] == sky).all() and (mask[2:] == person).all()


def test_brushes_use_the_ade20k_palette():
    from core.conditions.ade20k import PALETTE

    person = palette.class_index("person")
    assert palette.hex_colour(person) == "#{:02x}{:02x}{:02x}".format(*PALETTE[person])
    brush = palette.make_brush()
    assert brush.color_mode == "fixed" and palette.hex_colour(person) in brush.colors
    assert "person" in palette.legend_html() and "sky" in palette.legend_html()


@pytest.mark.parametrize("error, title", [(InputError("bad file: use a PNG"), "Input problem"),
                                          (NoSubjectError("no person: use a photo of one"), "Nothing found"),
                                          (CheckpointError("wrong checkpoint"), "Checkpoint problem")])
def test_warpaint_errors_become_gradio_errors(error, title, caplog):
    @engine.friendly_errors
    def fail():
        raise error

    with caplog.at_level("INFO", logger="warpaint.app"), pytest.raises(gr.Error) as info:
        fail()
    assert info.value.message == str(error) and info.value.title == title
    # a refusal is one log line, not a traceback Gradio prints per refused request (log floods on a public Space)
    assert not info.value.print_exception and f"refused ({title}): {error}" in caplog.text


def test_library_messages_name_options_in_each_front_ends_words(tmp_path):
    """One message in core, worded for the CLI by str() and for the app by friendly_errors."""
    from core.pipeline import Translator
    from core.vocabulary import OPTION_WORDS

    with pytest.raises(CheckpointError) as info:
        Translator("pose", engine="learned", checkpoints_root=tmp_path)
    cli, app = OPTION_WORDS["cli"], OPTION_WORDS["app"]
    assert cli["choose_checkpoint"] in str(info.value) and cli["choose_training_free"] in str(info.value)

    @engine.friendly_errors
    def fail():
        raise info.value

    with pytest.raises(gr.Error) as shown:
        fail()
    assert app["choose_checkpoint"] in shown.value.message and app["choose_training_free"] in shown.value.message
    assert "--" not in shown.value.message and "$" not in shown.value.message


def test_an_exemplar_without_a_face_names_no_command_line_flag_in_the_app():
    """The CLI may --allow-partial; the app has no such option, so its refusal must not offer it."""
    from core.pipeline import exemplar_condition

    no_face = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    with pytest.raises(NoSubjectError) as info:
        exemplar_condition("face", no_face, 128)
    assert str(info.value).endswith("a face is clearly visible, or allow a partial result (--allow-partial).")

    @engine.friendly_errors
    def fail():
        raise info.value

    with pytest.raises(gr.Error) as shown:
        fail()
    assert shown.value.message.endswith("Choose an exemplar where a face is clearly visible.")
    assert "--" not in shown.value.message


def test_unexpected_errors_become_a_generic_message_with_an_id_that_is_in_the_log(caplog):
    @engine.friendly_errors
    def boom():
        raise OSError(36, "File name too long", "/srv/secret/" + "x" * 300)

    with caplog.at_level("ERROR", logger="warpaint.app"), pytest.raises(gr.Error) as info:
        boom()
    message = info.value.message
    assert "Something went wrong" in message and "secret" not in message and "OSError" not in message
    error_id = re.search(r"error id ([0-9a-f]{12})", message).group(1)
    assert error_id in caplog.text and "File name too long" in caplog.text  # the full story is in the log
    assert not info.value.print_exception  # once, under its id (Gradio would print it a second time)


def test_a_file_given_by_url_is_refused_before_gradio_fetches_it(monkeypatch, caplog):
    """Gradio downloads a FileData whose path is an http(s) URL, with no size limit, before any check of the app's
    (``processing_utils.async_ssrf_protected_download``): such a value is refused first, nothing fetched (no
    network needed: the download is replaced by a recorder)."""
    import asyncio

    from gradio import processing_utils

    from app.components import photo_input

    fetched = []

    async def recorder(url, *args, **kwargs):
        fetched.append(url)
        return "/nonexistent"

    monkeypatch.setattr(processing_utils, "async_ssrf_protected_download", recorder)
    with gr.Blocks() as demo:
        picture = photo_input(label="picture")
        picture.change(lambda p: p, picture, gr.Textbox())
    engine.refuse_malformed_requests(demo)
    fn = next(iter(demo.fns.values()))
    for path in ("https://example.com/huge.png", "http://10.0.0.1/x.png", " HTTPS://example.com/x", "ftp://x/y"):
        for value in ({"path": path, "meta": {"_type": "gradio.FileData"}}, [{"layers": [{"path": path}]}]):
            with caplog.at_level("INFO", logger="warpaint.app"), pytest.raises(gr.Error) as info:
                asyncio.run(demo.preprocess_data(fn, [value], None))
            assert "Files are not fetched from URLs: upload the file" in info.value.message, (path, value)
    assert fetched == [] and "refused (URL given)" in caplog.text
    assert not engine.names_a_url([{"path": None, "url": "data:image/png;base64,AAAA"}, {"path": "/tmp/x.png"}])


def test_reading_failures_are_the_client_s_or_the_server_s(caplog):
    """What Gradio raises while reading a request's values: a value it cannot take, or a file the client named that
    is not there, is the client's doing (a message, one INFO line); a full disk, a permission, no memory or a bug is
    the server's (an error id to the client, revealing nothing; the traceback in the log at ERROR)."""
    import asyncio
    import errno

    from gradio.exceptions import ComponentProcessingError, InvalidPathError
    from pydantic import BaseModel

    demo = gr.Blocks()
    failure: list[BaseException] = []

    async def failing(block_fn, inputs, *args, **kwargs):
        raise failure[-1]

    demo.preprocess_data = failing
    engine.refuse_malformed_requests(demo)
    class Upload(BaseModel):
        size: int

    try:
        Upload.model_validate({"size": "x"})
    except ValueError as exc:  # pydantic's ValidationError, as Gradio raises it for a wrong type
        validation = exc
    client = [validation, InvalidPathError("Cannot move /srv/x: it was not uploaded by a user."),
              ValueError("An event handler didn't receive enough input values"),
              FileNotFoundError(errno.ENOENT, "No such file or directory", "/tmp/gradio/x.png"),
              OSError("cannot identify image file")]
    server = [OSError(errno.ENOSPC, "No space left on device", "/srv/secret/tmp/x"),
              PermissionError(errno.EACCES, "Permission denied", "/srv/secret/tmp"), MemoryError(),
              RuntimeError("a bug at /srv/secret/app.py")]

    def in_a_component(exc: BaseException) -> ComponentProcessingError:
        """``exc`` raised by a component's ``preprocess``, as Gradio passes it on."""
        wrapped = ComponentProcessingError("Could not preprocess input component at index 1 (a `image` component)")
        wrapped.__cause__ = exc
        return wrapped

    client.append(in_a_component(OSError("image file is truncated")))
    server.append(in_a_component(FileExistsError(errno.EEXIST, "File exists", "/srv/secret/tmp/inline")))
    for exc in client + server:
        failure.append(exc)
        caplog.clear()
        with caplog.at_level("INFO", logger="warpaint.app"), pytest.raises(gr.Error) as info:
            asyncio.run(demo.preprocess_data(None, [], None))
        message = info.value.message
        assert "secret" not in message and "/srv" not in message and "/tmp" not in message and not \
            info.value.print_exception
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        if exc in client:
            assert message.startswith("This request's values could not be read"), exc
            assert not errors and "refused (Malformed request)" in caplog.text, exc
        else:
            error_id = re.search(r"Something went wrong on the server \(error id ([0-9a-f]{12})\)", message).group(1)
            assert len(errors) == 1 and error_id in errors[0].getMessage() and errors[0].exc_info[1] is exc, exc
            assert "Malformed" not in caplog.text


def test_a_server_fault_in_the_mask_editor_is_not_called_an_unreadable_mask(tmp_path, monkeypatch):
    """The mask editor calls Gradio's decoding failures the client's (an unreadable mask) only when they are:
    a full disk while Gradio writes the layers goes up as what it is (then logged by ``refuse_malformed_requests``)."""
    import errno

    from gradio.components.image_editor import EditorData
    from gradio.data_classes import FileData
    from PIL import Image

    from app.components import mask_editor

    picture = tmp_path / "mask.png"
    Image.new("RGB", (40, 30)).save(picture)
    payload = EditorData(background=FileData(path=str(picture)), layers=[], composite=FileData(path=str(picture)))

    def full_disk(self, payload):
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/tmp")

    monkeypatch.setattr(gr.ImageEditor, "preprocess", full_disk)
    with pytest.raises(OSError, match="No space left"):
        mask_editor(type="numpy").preprocess(payload)
    monkeypatch.setattr(gr.ImageEditor, "preprocess", lambda self, p: Image.open(tmp_path / "not-there.png"))
    with pytest.raises(gr.Error, match="could not be read"):  # a file that is not there: the client's
        mask_editor(type="numpy").preprocess(payload)


def test_error_messages_never_name_server_folders(monkeypatch, tmp_path):
    monkeypatch.setattr(settings, "CHECKPOINTS", tmp_path / "ckpts")

    @engine.friendly_errors
    def fail():
        raise CheckpointError(f"{tmp_path}/ckpts/tiny is a model for the 'mask' task; see /etc/warpaint/x.json")

    with pytest.raises(gr.Error) as info:
        fail()
    assert info.value.message == "checkpoints/tiny is a model for the 'mask' task; see (a server path)"


def test_bad_pictures_are_refused_clearly(tmp_path, monkeypatch):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    with pytest.raises(InputError) as info:
        engine.load_picture(str(bad), "input")
    assert "notes.txt" in str(info.value) and str(tmp_path) not in str(info.value)
    for gone in (tmp_path / "expired.png", tmp_path):  # an upload the cleanup deleted; the upload root, a folder
        with pytest.raises(InputError) as info:
            engine.load_picture(str(gone), "picture")
        assert str(info.value) == "The picture could not be read: upload it again.", info.value
    with pytest.raises(gr.Error, match="not an image"):
        handlers.translate("pose", str(bad), str(settings.ASSETS / "astronaut.jpg"))  # before any model is built
    with pytest.raises(gr.Error, match="No exemplar given"):
        handlers.translate("pose", str(settings.ASSETS / "astronaut.jpg"), None)
    with pytest.raises(gr.Error, match="Unknown task"):
        handlers.translate("cartoon", str(bad), str(bad))
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(big)
    monkeypatch.setattr(settings, "MAX_PIXELS", 100_000)
    with pytest.raises(InputError, match="MP limit"):
        engine.load_picture(str(big), "input")
    assert engine.load_picture(np.zeros((200, 300, 3), np.uint8), "input").shape == (200, 300, 3)


def test_layout_tabs_advanced_closed_and_api_names():
    from app.ui import build_demo

    demo = build_demo()
    config = demo.get_config_file()
    by_type: dict[str, list[dict]] = {}
    for comp in config["components"]:
        by_type.setdefault(comp["type"], []).append(comp.get("props", {}))
    tabs = [p.get("label") for p in by_type["tabitem"]]
    assert tabs == ["Pose to body", "Edge to face", "Mask to image", "Oil portrait", "Pose video"]
    accordions = [p for p in by_type["accordion"] if p.get("label") == "Advanced"]
    assert len(accordions) == 4 and not any(p.get("open") for p in accordions)
    # the messages' "Advanced > X" name controls the page has; the settings engine v2 ignores say so
    from core.vocabulary import OPTION_WORDS

    labels = {p.get("label") or "" for props in by_type.values() for p in props}
    for words in OPTION_WORDS["app"].values():
        for named in re.findall(r"Advanced > (\w+)", words):
            assert any(label.startswith(named) for label in labels), (named, words)
    for label in ("PatchMatch iterations per level", "Softmax temperature", "Seed"):
        infos = [p.get("info") for props in by_type.values() for p in props if p.get("label") == label]
        assert len(infos) == 4 and all("training-free engine ignores it" in (i or "") for i in infos), label
    api_names = {d.get("api_name") for d in config["dependencies"] if d.get("api_visibility", "public") == "public"}
    assert {"extract", "translate"} <= api_names
    assert not any(d.get("api_name") in (None, "") and d.get("api_visibility") == "public"
                   for d in config["dependencies"])
    endpoints = demo.get_api_info()["named_endpoints"]
    assert set(endpoints) == {"/extract", "/translate", "/models"}  # the UI's own events stay out of the API docs
    assert [p["parameter_name"] for p in endpoints["/translate"]["parameters"]] == [
        "task", "source", "exemplar", "source_is_condition", "resolution", "engine", "checkpoint", "iterations",
        "temperature", "seed", "oil_paint_exemplar", "mirror"]
    assert [p["parameter_name"] for p in endpoints["/extract"]["parameters"]] == [
        "task", "image", "ready_condition", "resolution"]


def test_heavy_functions_use_spaces_gpu_when_the_package_is_there(monkeypatch):
    import importlib
    import sys
    import types

    wrapped = []

    def fake_gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=fake_gpu))
    try:
        importlib.reload(engine)
        importlib.reload(handlers)
        assert engine.gpu is fake_gpu
        assert {"extract", "translate"} <= set(wrapped)
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        importlib.reload(engine)
        importlib.reload(handlers)
    assert engine.gpu is not fake_gpu  # without the package: a no-op decorator


def test_defaults_serve_locally_on_7860_without_share_link(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "WARPAINT_"))}
    code = ("import os; from app import settings as s; "
            "print(s.SERVER_NAME, s.SERVER_PORT, s.SHARE, os.environ['GRADIO_ANALYTICS_ENABLED'], "
            "s.TEMP_DIR.name.startswith('warpaint-app-'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["127.0.0.1", "7860", "False", "False", "True"], out.stderr
    env.update(GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT="7999", GRADIO_TEMP_DIR=str(tmp_path / "t"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["0.0.0.0", "7999", "False", "False", "False"], out.stderr
    assert (tmp_path / "t").is_dir()  # the folder the user named is used (and kept)


def test_every_pose_example_runs_with_the_default_engine_v2():
    """The Pose tab's examples (photos and the ready skeleton) with the default training-free engine
    (v2): none is refused; Grace Hopper's portrait shows no elbows, so the messages say what stands
    in for the arms."""
    from app.tasks import TABS
    from core.engine_v2 import TrainingFreeEngineV2

    assert isinstance(engine.translator_for("pose", "auto", None).engine, TrainingFreeEngineV2)
    spec = next(tab for tab in TABS if tab.key == "pose")
    runs = [(pair, False) for pair in spec.example_paths()] + [(pair, True) for pair in spec.condition_example_paths()]
    assert len(runs) == 3
    for (source, exemplar), ready in runs:
        outcome = handlers.translate("pose", source, exemplar, source_is_condition=ready, resolution=256)
        assert outcome.result.image.shape == (256, 256, 3) and outcome.result.image.std() > 10
        if exemplar.endswith("grace_hopper.jpg"):
            assert any("stands in" in m or "drawn with the texture" in m for m in outcome.result.messages)


def test_every_mask_example_runs_at_its_tabs_resolution_without_a_refusal():
    """The Mask tab's examples (photos and the painted mask) with the default training-free engine, at the
    tab's own resolution (512 since engine v2 takes under a second there): each gives a picture."""
    from app.tasks import TABS

    spec = next(tab for tab in TABS if tab.key == "mask")
    runs = [(pair, False) for pair in spec.example_paths()] + [(pair, True) for pair in spec.condition_example_paths()]
    assert len(runs) == 3
    for (source, exemplar), ready in runs:
        outcome = handlers.translate("mask", source, exemplar, source_is_condition=ready, resolution=spec.resolution)
        image = outcome.result.image
        assert image.shape == (spec.resolution, spec.resolution, 3) and image.std() > 10


def test_on_spaces_no_share_link_is_offered_or_attempted(monkeypatch, capsys):
    """A Space is served by Hugging Face: no share hint, and WARPAINT_SHARE / --share cannot start a tunnel."""
    import warnings

    from app import server

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert server.start_lines("http://127.0.0.1:7860/", share=False) == [
        "Warpaint app: open http://127.0.0.1:7860/ in a browser (Ctrl+C stops it)",
        "Public link: off (python app.py --share or WARPAINT_SHARE=1 opens one; needs network)"]
    assert len(server.start_lines("http://127.0.0.1:7860/", share=True)) == 1
    monkeypatch.setenv("SPACE_ID", "someone/warpaint")
    assert server.start_lines("http://0.0.0.0:7860/", share=False) == [
        "Warpaint app: serving the Space someone/warpaint on http://0.0.0.0:7860/"]
    with gr.Blocks() as demo:
        gr.Markdown("hello")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server.launch(demo, server_name="127.0.0.1", server_port=free_port(), share=True, prevent_thread_lock=True)
    try:
        assert not demo.share and demo.share_url is None
        assert not [w for w in caught if "share" in str(w.message).lower()]
        out = capsys.readouterr().out
        assert out.strip() == f"Warpaint app: serving the Space someone/warpaint on {demo.local_url}", out
    finally:
        demo.close()


def _jpeg(picture: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def _painted_scene(seed: int) -> np.ndarray:
    """A street painted with the app's brushes (sky, building, road, trees, cars..., a person), as the project's
    own palette saves it."""
    import cv2

    from core.conditions import ade20k, masks

    rng, c = np.random.default_rng(seed), ade20k.class_index
    index = np.zeros((384, 512), np.uint8)
    index[:128], index[128:256], index[256:] = c("sky"), c("building"), c("road")
    for _ in range(6):
        hull = cv2.convexHull(rng.integers(0, (512, 384), (7, 2)).astype(np.int32))
        cv2.fillPoly(index, [hull], int(rng.choice([c("tree"), c("car"), c("grass"), c("wall"), c("plant")])))
    cv2.ellipse(index, (256, 256), (40, 110), 0, 0, 360, c("person"), -1)
    return masks.index_to_palette(index)


def _flat_graphic(colours: list[tuple[int, int, int]], background=(0, 0, 0), antialiased: bool = False):
    """A logo or poster: discs and lettering in plain colours (ADE20K's too: pure red, blue, yellow are classes)."""
    import cv2

    rng, picture = np.random.default_rng(0), np.zeros((300, 400, 3), np.uint8)
    picture[:] = background
    line = cv2.LINE_AA if antialiased else cv2.LINE_8
    for i, colour in enumerate(colours):
        centre = (int(rng.integers(60, 340)), int(rng.integers(60, 240)))
        cv2.circle(picture, centre, int(rng.integers(30, 90)), colour, -1, line)
        cv2.putText(picture, "WARP", (20, 60 + 70 * i), cv2.FONT_HERSHEY_SIMPLEX, 2, colour, 6, line)
    return picture


def test_only_painted_masks_look_painted():
    """Painted masks (nearly every pixel a palette colour, two regions at least, colours no graphic uses by
    chance), also resized with nearest neighbour or bilinear and saved as JPEG; nothing else: photos, the skeleton
    and sketch conditions (black plus strokes), a plain black picture, palette (dithered) photos, and flat
    graphics in black, pure red, blue, yellow and palette greys (all ADE20K colours), crisp, anti-aliased or JPEG."""
    import cv2
    from PIL import Image
    from skimage import data

    def rgb(name):
        return np.asarray(Image.open(settings.ASSETS / name).convert("RGB"))

    mask = rgb("mask_cameraman.png")
    scenes = [_painted_scene(seed) for seed in range(3)]
    painted = [mask, np.repeat(np.repeat(mask, 8, axis=0), 8, axis=1),  # sampled, not every pixel
               cv2.resize(mask, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_NEAREST),
               cv2.resize(mask, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_LINEAR), _jpeg(mask, 75), *scenes,
               *[_jpeg(s, 60) for s in scenes], *[cv2.resize(s, None, fx=0.7, fy=0.7) for s in scenes]]
    for i, picture in enumerate(painted):
        assert looks_painted(picture), i
    red, blue, yellow = (255, 0, 0), (0, 0, 255), (255, 255, 0)
    graphics = [_flat_graphic([red]), _flat_graphic([red], antialiased=True), _flat_graphic([red, blue, yellow]),
                _flat_graphic([red, blue, yellow], antialiased=True), _jpeg(_flat_graphic([red, blue, yellow]), 85),
                _flat_graphic([yellow, blue], background=red),
                _flat_graphic([(120, 120, 120), (230, 230, 230)], background=(140, 140, 140)),  # wall, windowpane, road
                np.concatenate([np.full((100, 300, 3), colour, np.uint8) for colour in (red, (0, 0, 0), yellow)])]
    for i, picture in enumerate(graphics):
        assert not looks_painted(picture), i
    for name in ("astronaut.jpg", "grace_hopper.jpg", "cameraman.png", "oil_astronaut.jpg",
                 "skeleton_raised_arm.png", "sketch_grace_hopper.png"):
        assert not looks_painted(rgb(name)), name
    for name in ("chelsea", "coffee", "text", "clock", "moon", "page"):
        picture = getattr(data, name)()
        assert not looks_painted(np.dstack([picture] * 3) if picture.ndim == 2 else picture), name
    assert not looks_painted(np.zeros((64, 64, 3), np.uint8))
    dithered = Image.open(settings.ASSETS / "grace_hopper.jpg").convert("P").convert("RGB")
    sixteen = Image.open(settings.ASSETS / "grace_hopper.jpg").convert("P", palette=Image.ADAPTIVE, colors=16)
    assert not looks_painted(np.asarray(dithered))
    assert not looks_painted(np.asarray(sixteen.convert("RGB")))


def test_values_the_page_cannot_send_are_refused_not_guessed(monkeypatch):
    """"Input is" takes its two choices only (anything else was read as Photo); the engine line takes an engine and
    a model the server offers (it echoed any text back); an inline picture over the upload limit is refused
    before it is decoded."""
    import base64

    from app import components
    from app.engine import engine_plan
    from app.tasks import TABS
    from app.ui import _source

    for kind in ("photo", "", None, 1, ["Photo"]):
        with pytest.raises(InputError, match="Unknown input kind"):
            _source(TABS[0], kind, "photo.png", None)
    assert _source(TABS[0], "Photo", "photo.png", None) == ("photo.png", False)
    for engine_name, model in (("turbo", ""), (["auto"], ""), ("auto", "/etc/passwd"), ("learned", "../x")):
        with pytest.raises(InputError, match="Unknown engine|No model named"):
            engine_plan("pose", engine_name, model)
    assert engine_plan("pose", "training-free", "").startswith("training-free")
    hostile = "<img src=x>" + "x" * 300
    for engine_name, model in ((hostile, ""), ("auto", hostile)):  # quoted cut short, never whole
        with pytest.raises(InputError, match=r"<img src=x>x+\.\.\.") as refused:
            engine_plan("pose", engine_name, model)
        assert hostile[:40] not in str(refused.value)
    monkeypatch.setattr(settings, "MAX_FILE_SIZE", "1kb")
    image = gr.Image()
    url = "data:image/png;base64," + base64.b64encode(bytes(2000)).decode()
    with pytest.raises(gr.Error, match=r"larger than this server's upload limit \(1kb\)"):
        components._inline_picture(image, url)
    path = components._inline_picture(image, "data:image/png;base64," + base64.b64encode(bytes(500)).decode())
    assert open(path, "rb").read() == bytes(500) and path in components.INLINE_PICTURES


def test_the_oil_filter_works_on_a_bounded_picture(monkeypatch):
    """Its cost grows with the fourth power of the side (a 25 MP square: ~85 s in one call no budget can stop): an
    exemplar larger than ``OIL_MAX_SIDE`` is brought down first, keeping its shape."""
    monkeypatch.setattr(handlers, "OIL_MAX_SIDE", 200)
    assert handlers.oil_paint(np.full((1000, 600, 3), 128, np.uint8)).shape == (200, 120, 3)
    assert handlers.oil_paint(np.full((150, 100, 3), 128, np.uint8)).shape == (150, 100, 3)
    # a strip (within the pixel limit, 16 px or more a side) keeps a pixel across: cv2.resize refused 0 px
    assert handlers.oil_paint(np.full((16, 70000, 3), 128, np.uint8)).shape == (1, 200, 3)
    assert handlers.oil_paint(np.full((70000, 16, 3), 128, np.uint8)).shape == (200, 1, 3)
