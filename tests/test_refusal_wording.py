"""Every refusal of a picture reads as one natural sentence that says what is missing and what to do, in the
words of the front end that shows it (the app has no keypoint files, no command-line flags, no docs folder)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import WarpaintError
from core.pipeline import Translator
from core.vocabulary import about, missing_in_exemplar

ASSETS = Path(__file__).resolve().parent.parent / "assets"

NOISE = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
ASTRONAUT = np.asarray(Image.open(ASSETS / "astronaut.jpg").convert("RGB"))
APP_ONLY_WORDS = ("--", "$", "OpenPose JSON", "docs/", "give a photo (not as a condition)")


def _refusal(task: str, source: np.ndarray, exemplar: np.ndarray, ready: bool = False) -> WarpaintError:
    translator = Translator(task, engine="training-free")
    with pytest.raises(WarpaintError) as info:
        translator.prepare(source, exemplar, (256, 256), source_is_condition=ready)
    return info.value


def _reads_as_sentences(text: str) -> None:
    assert text[0].isupper() and text.endswith("."), text
    assert not re.search(r"\b(input|exemplar): [A-Z]", text), text  # not "The input: No face found..."
    assert "(No " not in text and ") Choose" not in text, text  # no sentence inside brackets
    assert not re.search(r"[.:;,] [a-z]+ [A-Z]", text.replace("OpenPose", "openpose")), text


@pytest.mark.parametrize("task, missing, first_words", [
    ("face", "face", "No face found in the input picture."),
    ("pose", "person", "No person found in the input picture."),
    ("mask", "person", "In the input, no person found to segment."),
])
def test_an_input_or_exemplar_without_its_subject(task, missing, first_words):
    given = _refusal(task, NOISE, ASTRONAUT)
    cli, app = str(given), given.for_front_end("app")
    assert cli.startswith(first_words) and app.startswith(first_words)
    for text in (cli, app):
        _reads_as_sentences(text)
    assert not any(w in app for w in APP_ONLY_WORDS), app
    if task != "mask":
        assert cli.endswith("or give the keypoints as OpenPose JSON.")  # the CLI can take keypoint files
    else:
        assert app.endswith("paint the mask with the ADE20K palette in the editor (Input is: Ready condition).")

    lacking = _refusal(task, ASTRONAUT, NOISE)
    cli, app = str(lacking), lacking.for_front_end("app")
    assert app.endswith(f"Choose an exemplar where a {missing} is clearly visible.")
    assert cli.endswith(f"Choose an exemplar where a {missing} is clearly visible, or allow a partial result "
                        "(--allow-partial).")
    assert "exemplar picture" in app or "In the exemplar," in app
    for text in (cli, app):
        _reads_as_sentences(text)
    assert not any(w in app for w in APP_ONLY_WORDS), app


@pytest.mark.parametrize("task, app_advice", [
    ("pose", "draw joints with the 18 standard OpenPose colours on a dark background."),
    ("mask", "Paint regions with the ADE20K colours (the editor's brushes; the legend under it names them), or "
             "choose Input is: Photo to extract a person/background mask from a photo."),
])
def test_a_photo_given_as_a_ready_condition(task, app_advice):
    refused = _refusal(task, ASTRONAUT, ASTRONAUT, ready=True)
    app = refused.for_front_end("app")
    assert app.endswith(app_advice) and not any(w in app for w in APP_ONLY_WORDS), app
    assert "OpenPose JSON" in str(refused) or "docs/conditions.md" in str(refused)  # the CLI's own options


@pytest.mark.parametrize("message, which, expected", [
    ("No face found in the picture. Use a photo.", "input", "No face found in the input picture. Use a photo."),
    ("The photo has too few body joints.", "exemplar", "The exemplar photo has too few body joints."),
    ("A face was detected but not placed.", "input", "In the input, a face was detected but not placed."),
    ("ADE20K colours are missing.", "input", "In the input, ADE20K colours are missing."),
    ("The input has no face.", "exemplar", "The input has no face."),  # already says which picture
])
def test_about_says_which_picture_in_the_sentence(message, which, expected):
    assert about(which, message) == expected


def test_an_exemplar_refusal_keeps_the_finding_and_gives_the_exemplars_own_advice():
    text = missing_in_exemplar("face", "No face found in the picture. Use a photo$or_keypoints_json.")
    assert text == "No face found in the exemplar picture. Choose an exemplar where a face is clearly visible" \
                   "$or_allow_partial."
    assert missing_in_exemplar("person", "Too few joints", or_allow_partial=False) == \
        "In the exemplar, too few joints. Choose an exemplar where a person is clearly visible."
