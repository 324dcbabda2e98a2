"""The public API under hostile use: the real app (``python app.py``) driven with gradio_client.

Every hostile call is refused fast with a clear message and the server keeps serving; models
are chosen by name only; a request over the time budget, a cancelled one and an abandoned one
all give their slot back; eight simultaneous users are all served.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.settings import ASSETS  # noqa: E402
from tests.app_server import running_app  # noqa: E402

RES = 128
PHOTO, EXEMPLAR = ASSETS / "astronaut.jpg", ASSETS / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("safe-app")
    (work / "checkpoints").mkdir()
    with running_app(work, env={"WARPAINT_CHECKPOINTS": str(work / "checkpoints")}) as url:
        client = Client(url, download_files=str(work / "downloads"), verbose=False)
        _normal(client)  # warm up: the first request imports torch and MediaPipe
        yield url, work, client


def _translate(client, **changes):
    """/translate with the normal values, some replaced by ``changes``."""
    values = dict(task="mask", source=handle_file(str(PHOTO)), exemplar=handle_file(str(EXEMPLAR)),
                  source_is_condition=False, resolution=RES, engine="auto", checkpoint="", iterations=2,
                  temperature=0.01, seed=0, oil_paint_exemplar=False, mirror="auto")
    values.update(changes)
    return client.predict(*values.values(), api_name="/translate")


def _normal(client) -> dict:
    image, warps, _, _, info = _translate(client)
    assert Path(image).is_file() and len(warps) == len(info["levels"])
    return info


HOSTILE = [  # (what is sent, words the message must hold)
    (dict(iterations=1_000_000), "iterations 1000000 is out of range: use 1 to 16"),
    (dict(iterations="lots"), "iterations must be a whole number from 1 to 16"),
    (dict(temperature=-1), "temperature -1 is out of range: use 0.001 to 0.1"),
    (dict(seed=2**80), "seed 1208925819614629174706176 is out of range: use 0 to 4294967295"),
    (dict(resolution=100_000), "resolution 100000 is out of range: use 128 to 1024"),
    (dict(resolution=64), "use 128 to 1024"),
    (dict(resolution=[512]), "resolution must be a whole number"),
    (dict(task="cartoon"), "Unknown task 'cartoon': choose one of 'pose', 'face', 'mask'"),
    (dict(engine={"x": 1}), "Unknown engine {'x': 1}: choose one of 'auto', 'learned', 'training-free'"),
    (dict(oil_paint_exemplar="yes"), "oil_paint_exemplar must be true or false"),
    (dict(mirror="sideways"), "Unknown mirror setting 'sideways': choose one of 'auto', 'never', 'always'"),
    (dict(mirror=["never"]), "Unknown mirror setting ['never']"),
    (dict(checkpoint="../../../../etc"), "No model named '../../../../etc' for the mask task"),
    (dict(checkpoint="/etc", engine="learned"), "paths are not accepted"),
    (dict(checkpoint="x" * 5000), "No model named 'xxxxxxxx"),
]


@pytest.mark.parametrize("changes, words", HOSTILE, ids=[next(iter(c)) + "-" + str(i) for i, (c, _) in
                                                         enumerate(HOSTILE)])
def test_hostile_values_are_refused_fast_and_clearly(server, changes, words):
    client = server[2]
    start = time.monotonic()
    with pytest.raises(AppError) as info:
        _translate(client, **changes)
    assert time.monotonic() - start < 2.0
    message = str(info.value)
    assert words in message and len(message) < 400
    assert "Error" not in message.split(":")[0] and "Traceback" not in message


def _raw_call(url: str, api_name: str, body: str) -> str:
    """POST a hand-written JSON body to Gradio's REST API (``NaN`` included, which gradio_client
    cannot send) and return the event stream's text."""
    import httpx

    posted = httpx.post(f"{url}gradio_api/call/{api_name}", content=body,
                        headers={"Content-Type": "application/json"}, timeout=30)
    posted.raise_for_status()
    event_id = posted.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=30).text


@pytest.mark.parametrize("value, words", [("NaN", "finite"), ("-Infinity", "finite"), ("1e400", "finite")])
def test_non_finite_numbers_sent_as_raw_json_are_refused(server, value, words):
    start = time.monotonic()
    stream = _raw_call(server[0], "translate",
                       f'{{"data": ["mask", null, null, false, 128, "auto", "", 2, {value}, 0, false, "auto"]}}')
    assert time.monotonic() - start < 2.0
    assert "event: error" in stream and f"temperature must be a {words} number" in stream, stream


def test_pictures_given_as_paths_or_urls_are_never_opened(server, tmp_path):
    """A client names a server file or a URL instead of uploading: refused before the app runs, nothing fetched
    (a URL is refused before Gradio would download it), nothing read, and the answer names no server path."""
    import http.server
    import json

    secret = tmp_path / "secret.jpg"  # a real picture outside the upload folder: opening it would succeed
    secret.write_bytes(PHOTO.read_bytes())
    fetched: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PHOTO.read_bytes())

        def log_message(self, *args):
            pass

    internal = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=internal.serve_forever, daemon=True).start()
    at = f"http://127.0.0.1:{internal.server_address[1]}/x.jpg"
    public = "https://example.invalid/huge.png"  # a public address Gradio would download, unbounded (never resolves)
    try:
        for given in ({"path": str(secret)}, {"path": str(PHOTO)}, {"path": "../../../etc/passwd"},
                      {"path": at, "url": at}, {"path": public}, str(secret)):
            picture = {**given, "meta": {"_type": "gradio.FileData"}} if isinstance(given, dict) else given
            for api, data in (("extract", ["pose", picture, False, RES]),
                              ("translate", ["mask", picture, picture, False, RES, "auto", "", 2, 0.01, 0, False,
                                             "auto"])):
                start = time.monotonic()
                stream = _raw_call(server[0], api, json.dumps({"data": data}))
                assert time.monotonic() - start < 2.0
                assert "event: error" in stream and "event: complete" not in stream, (api, given, stream)
                assert str(tmp_path) not in stream and "/etc" not in stream and "Traceback" not in stream
                if isinstance(given, dict) and "://" in given["path"]:  # refused before Gradio fetches anything
                    assert "Files are not fetched from URLs: upload the file" in stream, stream
    finally:
        internal.shutdown()
    assert fetched == []
    _normal(server[2])


def test_extract_refuses_hostile_values_too(server):
    client = server[2]
    for args, words in [(("pose", handle_file(str(PHOTO)), False, "big"), "resolution must be a whole number"),
                        (("pose", handle_file(str(PHOTO)), "no", RES), "ready_condition must be true or false"),
                        (("x" * 5000, handle_file(str(PHOTO)), False, RES), "Unknown task 'xxx")]:
        start = time.monotonic()
        with pytest.raises(AppError, match=words):
            client.predict(*args, api_name="/extract")
        assert time.monotonic() - start < 2.0
    _normal(client)


def _inline_png(picture) -> dict:
    """``picture`` as a PNG data URL in a FileData, as a webcam, the clipboard or an API client sends it."""
    import base64
    import io

    stored = io.BytesIO()
    picture.save(stored, "PNG")
    url = "data:image/png;base64," + base64.b64encode(stored.getvalue()).decode()
    return {"path": None, "url": url, "meta": {"_type": "gradio.FileData"}}


def test_a_picture_sent_inline_is_read_like_an_upload(server):
    """A data URL in place of an upload: Gradio decoded it whole and re-encoded it before the app's pixel limit
    (a 450 kB PNG of 144 MP: 7 s of CPU, 430 MB, then "image.webp is 144 MP"). Its bytes are now stored as they
    came and read like any upload: refused from the header at once; a real photo sent so is used."""
    import json

    from PIL import Image

    body = json.dumps({"data": ["pose", _inline_png(Image.new("RGB", (12000, 12000))), False, RES]})
    start = time.monotonic()
    stream = _raw_call(server[0], "extract", body)
    assert time.monotonic() - start < 2.0
    assert "event: error" in stream and "12000x12000 pixels (144 MP), over the 25 MP limit" in stream, stream
    for url in ("data:image/png;base64,not base64!", "data:text/plain,hello"):
        stream = _raw_call(server[0], "extract", json.dumps(
            {"data": ["pose", {"path": None, "url": url, "meta": {"_type": "gradio.FileData"}}, False, RES]}))
        assert "could not be read as a picture" in stream, stream
    stream = _raw_call(server[0], "extract", json.dumps({"data": ["pose", _inline_png(Image.open(PHOTO)), False, RES]}))
    assert "event: complete" in stream, stream


@functools.cache
def _config(url: str) -> dict:
    """The page's configuration (its events and their indices), fetched once per server."""
    import httpx

    return httpx.get(f"{url}config", timeout=30).json()


def _page_event(url: str, name: str, data: list, event_data=None, session: str | None = None) -> tuple[int, str]:
    """Call one of the page's own events (not in the API docs, "private" ones included) as a browser does: by
    its index, on Gradio's direct route (events outside the queue) or through the queue; in a new browser
    session, or in ``session`` (one page's calls share it, and with it the components Gradio rebuilt for it)."""
    import json
    import uuid

    import httpx

    event = next(d for d in _config(url)["dependencies"] if d.get("api_name") == name)
    body = {"data": data, "fn_index": event["id"], "session_hash": session or uuid.uuid4().hex[:10],
            "event_data": event_data, "trigger_id": event["targets"][0][0]}
    if event.get("queue") is False:
        answer = httpx.post(f"{url}gradio_api/run/predict", json=body, timeout=30)
        return answer.status_code, answer.text
    httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=30).raise_for_status()
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": body["session_hash"]},
                      timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                return 200, line
    raise AssertionError(f"{name}: no answer")


def test_a_server_fault_while_reading_a_request_is_logged_and_told_as_one(server):
    """A failure of the server's own while Gradio reads a request's values (here: the folder for inline pictures
    cannot be made, as with a full disk) was answered "Malformed request" and logged at INFO; now the client reads
    an error id and nothing about the server, and the log holds that id with the traceback."""
    import json
    import re
    import shutil

    from PIL import Image

    url, work = server[0], server[1]
    inline = work / "temp" / "inline"  # where PhotoInput stores a data URL's bytes (the server's GRADIO_TEMP_DIR)
    moved = inline.with_name("inline-moved")
    if inline.exists():
        inline.rename(moved)
    inline.write_text("a file where the folder goes")
    try:
        stream = _raw_call(url, "extract", json.dumps({"data": ["pose", _inline_png(Image.open(PHOTO)), False, RES]}))
    finally:
        inline.unlink()
        if moved.exists():
            moved.rename(inline)
    assert "event: error" in stream and "Malformed" not in stream and str(work) not in stream, stream
    error_id = re.search(r"Something went wrong on the server \(error id ([0-9a-f]{12})\)", stream).group(1)
    time.sleep(0.5)
    log = (work / "app.log").read_text()
    assert f"unexpected error {error_id} in reading the values of" in log
    assert "FileExistsError" in log[log.index(error_id):] and "Traceback" in log[log.index(error_id):]
    shutil.rmtree(moved, ignore_errors=True)
    assert "event: complete" in _raw_call(url, "extract", json.dumps({"data": ["pose", _inline_png(Image.open(PHOTO)),
                                                                                False, RES]}))


def test_the_page_s_own_events_check_what_they_are_sent(server):
    """The events behind the page (examples, the engine line, the gallery and click selections, the video tab)
    are callable by any client too: a value the page cannot send gets a message or is no selection (a select
    event's data naming a file outside the cache: a message); nothing is echoed back, and Gradio writes no
    traceback to the log (it did for each of these)."""
    import httpx

    url, work = server[0], server[1]
    log = work / "app.log"
    tracebacks = log.read_text().count("Traceback")
    for index in (999, -1, "0", None, 1.0, True):
        status, text = _page_event(url, "load_example", [index])
        assert "No such example: click one of the examples shown" in text, (index, text)
    status, text = _page_event(url, "load_example", [0])
    assert status == 200 and "astronaut" in text
    for engine, checkpoint, words in (("learned", "/etc/passwd", "No model named '(a server path)'"),
                                      ("<b>x</b>" * 100, "", "Unknown engine '<b>x</b><b>x</b>"),
                                      (["auto"], "", "Unknown engine ['auto']")):
        status, text = _page_event(url, "show_plan", [engine, checkpoint])
        assert words in text and "/etc" not in text and "<b>x</b>" * 10 not in text, text
    assert "training-free (no checkpoint" in _page_event(url, "show_plan", ["auto", ""])[1]
    for event_data in ({"index": "1"}, {"index": [1, 2]}, {}, None, "x", {"index": 10**40}):
        assert _page_event(url, "pick_level", [None], event_data)[0] == 200, event_data
        assert _page_event(url, "on_click", [None, None], event_data)[0] == 200, event_data
    for path in ("/etc/passwd", "x" * 5000):  # a file outside the cache in an event's data: a traceback per call
        event_data = {"index": 1, "value": {"image": {"path": path, "url": None}}}
        for name, data in (("pick_level", [None]), ("on_click", [None, None])):
            text = _page_event(url, name, data, event_data)[1]
            assert "This request's values could not be read" in text and "/etc" not in text and "xxx" not in text
    for clip, resolution, words in ((None, "256", "resolution must be a whole number from 128 to 512; got '256'"),
                                    (None, 256, "No clip given")):
        status, text = _page_event(url, "video", [clip, None, resolution, "training-free"])
        assert words in text, text
    status, text = _page_event(url, "video", [None, None, "256", "x"])
    assert "Unknown engine 'x'" in text, text
    editor = next(c["id"] for c in _config(url)["components"] if c["type"] == "imageeditor")
    for index in (str(10**7), "abc", "-1"):  # the mask editor's upload route: an 80 MB list; a 500 and a traceback
        fields = {"type": "layer", "index": index, "id": "u1", "component_id": str(editor), "session_hash": "s1",
                  "fn_name": "accept_blobs"}
        answer = httpx.post(f"{url}gradio_api/component_server/", data=fields, files=[("files", ("blob", b"x"))],
                            timeout=30)
        assert answer.status_code == 200 and answer.text == "null", (index, answer.text)
    # values Gradio itself cannot take (too few, text for a file, a path nobody uploaded): a message, one log line
    for name, data in (("show_plan", []), ("on_click", [None]), ("extract", ["pose", "a.png", False, RES]),
                       ("extract", ["pose", {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, False, RES]),
                       ("video", [{"path": "/etc/hosts", "meta": {"_type": "gradio.FileData"}}, None, 256, "auto"])):
        status, text = _page_event(url, name, data)
        assert "This request's values could not be read" in text and "/etc" not in text, (name, text)
    time.sleep(0.5)
    assert log.read_text().count("Traceback") == tracebacks, log.read_text()[-3000:]


def test_checks_hold_after_a_property_update_in_the_same_session(server):
    """Gradio rebuilds a component for one session (``block.__class__(**constructor_args)``) once a handler sends
    it a property update: an example click, the "Input is" toggle, the page load's model list. Checks patched onto
    the instance were gone for the rest of that session (a data URL decoded whole by Gradio, a 30 MP mask decoded
    before the limit, a model name echoed by the stock dropdown); the app's component classes keep them."""
    import io
    import uuid

    import httpx
    from PIL import Image

    url = server[0]
    session = uuid.uuid4().hex[:10]
    status, text = _page_event(url, "load_example", [0], session=session)  # the pose tab's photo and exemplar
    assert status == 200 and "astronaut" in text, text
    huge = _inline_png(Image.new("RGB", (12000, 12000)))  # 144 MP in 450 kB
    start = time.monotonic()
    text = _page_event(url, "preview", [huge, RES], session=session)[1]
    assert time.monotonic() - start < 2.0 and "webp" not in text  # Gradio's decoding wrote image.webp
    assert "12000x12000 pixels (144 MP), over the 25 MP limit" in text, text
    text = _page_event(url, "preview", [{"path": None, "url": "data:text/plain,hello",
                                        "meta": {"_type": "gradio.FileData"}}, RES], session=session)[1]
    assert "could not be read as a picture" in text, text

    assert _page_event(url, "toggle_2", ["Ready condition"], session=session)[0] == 200  # the mask tab's editor
    stored = io.BytesIO()
    Image.new("L", (6000, 5000)).save(stored, "PNG")  # 30 MP in 30 kB
    uploaded = httpx.post(f"{url}gradio_api/upload", files=[("files", ("mask.png", stored.getvalue(), "image/png"))],
                          timeout=30).json()[0]
    mask = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
    editor = {"background": mask, "layers": [], "composite": mask}
    text = _page_event(url, "run_tab_2", ["Ready condition", None, editor, None, False, RES, "auto", "", 2, 0.01, 0,
                                          "auto"], session=session)[1]
    assert "The mask editor's picture has more than 25 MP" in text, text  # refused before Gradio decoded it

    assert _page_event(url, "refresh", ["auto"], session=session)[0] == 200  # the page load's model list
    for engine, checkpoint in (("learned", "/etc/passwd"), ("auto", "<b>x</b>" * 100)):
        text = _page_event(url, "show_plan", [engine, checkpoint], session=session)[1]
        assert "No model named" in text and "/etc" not in text and "<b>x</b>" * 10 not in text, text


def test_models_are_chosen_by_name_and_paths_reveal_nothing(server, tmp_path):
    import torch

    from core.config import get_preset
    from core.model import Warpaint

    url, work, client = server
    torch.manual_seed(0)
    outside = tmp_path / "run"  # a real model folder outside the app's: its task must not leak
    Warpaint(get_preset("tiny", task="mask", label_channels=151)).save_pretrained(outside)
    for given in (str(outside), str(tmp_path), f"{work}/checkpoints/../../run", "tiny-pose"):
        with pytest.raises(AppError) as info:
            _translate(client, engine="learned", checkpoint=given)
        message = str(info.value)
        assert "paths are not accepted" in message and "this server has none" in message
        assert "'mask' task" not in message and "config" not in message and "not a model folder" not in message

    inside = work / "checkpoints" / "tiny-pose"
    Warpaint(get_preset("tiny", task="pose", label_channels=20)).save_pretrained(inside)
    try:
        assert client.predict(api_name="/models") == {"pose": ["tiny-pose"], "face": [], "mask": []}
        image, warps, _, _, info = _translate(client, task="pose", engine="learned", checkpoint="tiny-pose")
        assert info["engine"] == "learned (checkpoints/tiny-pose)"  # the name, not the server's folder
        assert str(work) not in str(info) and len(warps) == 3
        with pytest.raises(AppError, match="No model named 'tiny-pose' for the mask task"):
            _translate(client, engine="learned", checkpoint="tiny-pose")  # a pose model offered for pose only
    finally:
        for f in inside.iterdir():
            f.unlink()
        inside.rmdir()
    _normal(client)


def test_eight_simultaneous_users_are_all_served(server):
    url = server[0]
    results: list[object] = [None] * 8

    def user(i: int) -> None:
        try:
            results[i] = _normal(Client(url, verbose=False, download_files=str(server[1] / f"user{i}")))
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            results[i] = exc

    threads = [threading.Thread(target=user, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(isinstance(r, dict) for r in results), [r for r in results if not isinstance(r, dict)]


def _slow(client):
    """A long request: pose at 1024 with the most iterations (about 10 s on 2 cores)."""
    return client.submit("pose", handle_file(str(PHOTO)), handle_file(str(EXEMPLAR)), False, 1024, "auto", "",
                         16, 0.01, 0, False, api_name="/translate")


def _wait_processing(job, timeout: float = 60.0) -> None:
    from gradio_client.utils import Status

    deadline = time.monotonic() + timeout
    while job.status().code not in (Status.PROCESSING, Status.PROGRESS):
        assert time.monotonic() < deadline, "the slow job never started"
        time.sleep(0.05)
    time.sleep(0.5)


def _log_count(work: Path, words: str) -> int:
    return (work / "app.log").read_text(errors="replace").count(words)


def test_a_cancelled_request_stops_and_frees_its_slot(server):
    url, work, client = server
    before = _log_count(work, "request stopped (Cancelled)")
    slow_client = Client(url, verbose=False, download_files=str(work / "slow"))
    job = _slow(slow_client)
    _wait_processing(job)
    job.cancel()
    _normal(client)  # queued behind the slow one: served once it has stopped
    assert _log_count(work, "request stopped (Cancelled)") == before + 1


def test_an_abandoned_request_stops_and_frees_its_slot(server):
    url, work, client = server
    before = _log_count(work, "request stopped (Cancelled)")
    script = (f"import sys, time; from gradio_client import Client, handle_file; c = Client({url!r}, verbose=False); "
              f"j = c.submit('pose', handle_file({str(PHOTO)!r}), handle_file({str(EXEMPLAR)!r}), False, 1024, "
              "'auto', '', 16, 0.01, 0, False, api_name='/translate'); "
              "[time.sleep(0.05) for _ in iter(lambda: j.status().code.name in ('PROCESSING', 'PROGRESS'), True)]; "
              "print('processing', flush=True); time.sleep(600)")
    user = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert user.stdout.readline().strip() == "processing"
        time.sleep(0.5)
    finally:
        user.kill()  # the user closes the script: the connection goes away
        user.wait(timeout=20)
    deadline = time.monotonic() + 60
    while _log_count(work, "request stopped (Cancelled)") == before:
        assert time.monotonic() < deadline, "the abandoned request was not stopped"
        time.sleep(0.2)
    _normal(client)


def test_a_request_over_the_time_budget_is_stopped_and_the_next_is_served(tmp_path_factory):
    work = tmp_path_factory.mktemp("budget-app")
    (work / "checkpoints").mkdir()
    env = {"WARPAINT_CHECKPOINTS": str(work / "checkpoints"), "WARPAINT_REQUEST_SECONDS": "2"}
    with running_app(work, env=env) as url:
        client = Client(url, verbose=False, download_files=str(work / "downloads"))
        for _ in range(3):  # warm up: imports are not charged, building the mask extractor is
            try:
                _normal(client)
                break
            except AppError:
                pass
        stopped = _log_count(work, "request stopped (BudgetExceeded)")  # a warm-up over 2 s on a loaded machine too
        slow = _slow(client)
        follower = threading.Thread(target=lambda: results.append(_normal(
            Client(url, verbose=False, download_files=str(work / "follower")))))
        results: list[dict] = []
        start = time.monotonic()
        with pytest.raises(AppError, match="took longer than 2 s, this server's limit per request"):
            _wait_processing(slow)
            follower.start()  # queued behind the slow request
            slow.result()
        follower.join(timeout=120)
        assert results and time.monotonic() - start < 60  # served once the slot was freed
        assert _log_count(work, "request stopped (BudgetExceeded)") == stopped + 1


@pytest.fixture(scope="module")
def fast_cleanup_server(tmp_path_factory):
    """The app deleting files older than 2 s every 2 s (``WARPAINT_CACHE_SECONDS``)."""
    work = tmp_path_factory.mktemp("cleanup-app")
    (work / "checkpoints").mkdir()
    env = {"WARPAINT_CHECKPOINTS": str(work / "checkpoints"), "WARPAINT_CACHE_SECONDS": "2"}
    with running_app(work, env=env) as url:
        yield url, work


def _upload(url: str, name: str, content: bytes) -> str:
    import httpx

    answer = httpx.post(f"{url}gradio_api/upload", files=[("files", (name, content, "application/octet-stream"))],
                        timeout=30)
    return answer.json()[0]


def _extract_path(url: str, path: str) -> str:
    import json

    return _raw_call(url, "extract", json.dumps({"data": ["pose", {"path": path, "meta": {"_type": "gradio.FileData"}},
                                                          False, RES]}))


def test_a_folder_named_as_a_file_is_refused_and_cleanup_goes_on(fast_cleanup_server):
    """A client named a folder of the upload area (the /upload reply shows it) as a file: Gradio added it to the
    component's temporary files, and the scheduled cleanup's ``os.remove`` raised IsADirectoryError, which ended
    Gradio's cleanup loop for the server's life (uploads never deleted again, shutdown failed). It is refused
    before Gradio reads it, and a later upload is still deleted."""
    url, work = fast_cleanup_server
    first = _upload(url, "a.txt", b"x")
    for folder in (str(Path(first).parent), str(Path(first).parent.parent)):
        stream = _extract_path(url, folder)
        assert "This request's values could not be read" in stream and str(work) not in stream, stream
    later = _upload(url, "b.txt", b"y")
    assert "event: error" in _extract_path(url, later)  # not a picture; now one of the component's temporary files
    deadline = time.monotonic() + 20
    while Path(later).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(later).exists(), "the cleanup loop stopped"
    assert "IsADirectoryError" not in (work / "app.log").read_text()


def test_an_inline_picture_is_deleted_after_an_example_click(fast_cleanup_server):
    """A picture sent inline (webcam, clipboard: a data URL) was written to the component's temporary files; in a
    session where Gradio rebuilt the component (an example click), that copy's files were in no cleanup list and
    stayed for the server's life. All inline pictures are now in one set the cleanup goes through."""
    import json
    import uuid

    from PIL import Image

    url, work = fast_cleanup_server
    session = uuid.uuid4().hex[:10]
    assert "astronaut" in _page_event(url, "load_example", [0], session=session)[1]
    inline = work / "temp" / "inline"
    before = set(inline.iterdir()) if inline.exists() else set()
    status, text = _page_event(url, "preview", [_inline_png(Image.open(PHOTO).resize((64, 64))), RES], session=session)
    assert status == 200 and json.loads(text[5:])["success"], text
    written = set(inline.iterdir()) - before
    assert written, "no inline picture written"
    deadline = time.monotonic() + 20
    while any(path.exists() for path in written) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(path.exists() for path in written), "the inline picture was never deleted"
