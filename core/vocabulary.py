"""Names used in many places, spelled once: tasks, engines, precisions, the files of a model folder,
and the wording of the common user errors. Imported by the library, the CLI (``choices``) and the
app alike; no torch here (the app imports it at start-up).

Library messages name the user's options as ``$placeholders`` (``OPTION_WORDS``): the command line
and the app word them differently, and ``core.errors.WarpaintError`` fills them in for each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TASKS = ("pose", "face", "mask")  # condition kinds: the tasks a model or engine translates

LEARNED = "learned"
TRAINING_FREE = "training-free"
AUTO = "auto"  # learned when a checkpoint for the task is found, else training-free
ENGINE_KINDS = (LEARNED, TRAINING_FREE)
ENGINES = (AUTO, *ENGINE_KINDS)

PRECISIONS = ("fp32", "bf16", "fp16")
CONV_MATH_MODES = ("fp32", "bf16x3", "bf16_inputs")  # math of fp32 CPU convolutions (core.fpmath)
MIRROR_MODES = ("auto", "never", "always")  # engine v2: use the exemplar mirrored when it mirrors the input (auto)
MIRROR_HELP = ("training-free engine v2: auto (default) uses a mirror-image exemplar (faces and poses: its scene "
               "mirrors the input's, or its face is turned the other way; masks: its face is turned the other "
               "way) mirrored; never keeps it as given (a mirrored exemplar also mirrors any text it shows); "
               "always mirrors it")
MATCHING_MODES = ("learned", "official")  # PatchMatch: continuous positions, or the released integer indices

CONFIG_FILE = "config.json"  # a model folder: its architecture...
WEIGHTS_FILE = "model.safetensors"  # ...and its weights
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE)
CHECKPOINTS_HELP = "checkpoints/README.md"  # where to get weights and how a model folder looks

FRONT_ENDS = ("cli", "app")
OPTION_WORDS: dict[str, dict[str, str]] = {
    "cli": {
        "choose_checkpoint": "pass --checkpoint DIR",
        "choose_training_free": "use --engine training-free",
        "choose_cpu": "use --device cpu",
        "choose_resolution": "choose --resolution",
        "or_allow_partial": ", or allow a partial result (--allow-partial)",
        "or_keypoints_json": ", or give the keypoints as OpenPose JSON",
        "palette_help": " (see docs/conditions.md)",
        "or_extract_from_photo": ", or give a photo (not as a condition) to extract a person/background mask from it",
        "give_as_condition": " and give it as a condition instead",
        "as_painted_mask": "",  # the command line reads a painted mask so with or without its condition flags
    },
    "app": {
        "choose_checkpoint": "pick one in Advanced > Model",
        "choose_training_free": "choose Advanced > Engine > training-free",
        "choose_cpu": "run on the CPU",
        "choose_resolution": "choose the resolution in Advanced",
        "or_allow_partial": "",  # the app has no such option
        "or_keypoints_json": "",  # nor keypoint files
        "palette_help": " (the editor's brushes; the legend under it names them)",
        "or_extract_from_photo": ", or choose Input is: Photo to extract a person/background mask from a photo",
        "give_as_condition": " in the editor (Input is: Ready condition)",
        "as_painted_mask": " (Input is: Ready condition)",
    },
}
# Mask task: a painted ADE20K mask given where a photo was expected (core.conditions.masks.looks_painted decides,
# in core.conditions.masks.extract only).
PAINTED_INPUT = ("This picture is painted in ADE20K colours, so it was read as a painted mask$as_painted_mask, not "
                 "segmented as a photo.")
# A photo stored with a colour palette (GIF-style, dithered) is smoothed before its subject is looked for
# (core.conditions.extract(..., palette=True)).
UNDITHERED = ("This picture is stored with a colour palette (GIF-style): its dithering was smoothed out before "
              "looking for the {what}.")
PAINTED_EXEMPLAR = ("The exemplar is a painted mask: its flat colours are no looks to copy. Give a photo as the "
                    "exemplar, and the painted mask as the input.")
_PLACEHOLDER = re.compile(r"\$(" + "|".join(OPTION_WORDS["cli"]) + r")\b")


def worded(message: str, front_end: str = "cli") -> str:
    """``message`` with its option placeholders in the words of ``front_end`` (cli or app)."""
    words = OPTION_WORDS[front_end]
    return _PLACEHOLDER.sub(lambda m: words[m.group(1)], message)


_THE_PICTURE = re.compile(r"\bthe picture\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _lower_first(text: str) -> str:
    """"No face" -> "no face", "A face" -> "a face", but "ADE20K..." and "OpenPose..." keep their capitals."""
    word = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if word[1:].islower() or len(word) == 1 else text


def about(which: str, message: str) -> str:
    """An extractor's message about "the picture" said of the input's or the exemplar's (``which``), as one
    sentence: "No face found in the input picture. Use...", "The input photo has too few...", "In the
    exemplar, no person found...", never "The input: No face found..."."""
    if message.startswith(("The input", "The exemplar")):  # already says which
        return message
    if _THE_PICTURE.search(message.split(". ")[0]):
        return _THE_PICTURE.sub(f"the {which} picture", message, count=1)
    if message.startswith("The "):
        return f"The {which} {message[4:]}"
    return f"In the {which}, {_lower_first(message)}"


def subject_word(task: str) -> str:
    """What a task's extractor looks for in a photo: a face, or a person (pose; mask: people are what a photo's
    mask is segmented from)."""
    return "face" if task == "face" else "person"


def missing_in_exemplar(what: str, message: str, or_allow_partial: bool = True) -> str:
    """An extractor's refusal said of the exemplar: its finding, then what to choose (the extractor's own advice
    is for inputs: keypoint files, painting a mask, which an exemplar, a photo to copy the looks of, cannot be)."""
    finding = _SENTENCE_END.split(about("exemplar", message), maxsplit=1)[0].rstrip()
    finding += "" if finding.endswith((".", "!", "?")) else "."
    return (f"{finding} Choose an exemplar where a {what} is clearly visible"
            f"{'$or_allow_partial' if or_allow_partial else ''}.")


def shown(value: object, width: int = 40) -> str:
    """A short, safe rendering of a user's value for a message."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print (Python refuses over 4300 digits)
        return "a very large number"
    return text if len(text) <= width else text[:width] + "..."


def unknown(what: str, value: object, choices: Iterable[str]) -> str:
    """The one wording of an unknown choice: "Unknown task 'cats': choose one of 'pose', 'face', 'mask'." """
    listed = ", ".join(repr(c) for c in choices) or "(none)"
    return f"Unknown {what} {shown(value)}: choose one of {listed}."
