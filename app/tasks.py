"""The four tabs: which core task each one runs, what its inputs are called, and its examples."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.settings import ASSETS


@dataclass(frozen=True)
class TabSpec:
    """One tab of the app. ``task`` is the core task (pose | face | mask) the tab translates with."""

    key: str  # short id, used in element ids
    title: str
    task: str
    intro: str
    condition_label: str  # what a ready-made condition is for this task
    condition_help: str
    resolution: int  # default output side
    oil_paint: bool = False  # oil-paint the exemplar by default (Oil portrait)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (input photo, exemplar) in assets/
    condition_examples: list[tuple[str, str]] = field(default_factory=list)  # (ready condition, exemplar)

    def example_paths(self) -> list[list[str]]:
        return [[str(ASSETS / a), str(ASSETS / b)] for a, b in self.examples]

    def condition_example_paths(self) -> list[list[str]]:
        return [[str(ASSETS / a), str(ASSETS / b)] for a, b in self.condition_examples]


TABS: list[TabSpec] = [
    TabSpec(
        key="pose", title="Pose to body", task="pose",
        intro="Give a photo of a person (or a skeleton) and an exemplar: the exemplar's person is redrawn "
              "in the input's pose.",
        condition_label="Skeleton (OpenPose colours)",
        condition_help="An OpenPose-style skeleton picture (coloured limbs on black), e.g. one made by "
                       "`python -m core extract --task pose`.",
        resolution=512,
        # (The cameraman's whole standing figure needs legs none of the other photos shows: refused.)
        examples=[("astronaut.jpg", "grace_hopper.jpg"), ("grace_hopper.jpg", "astronaut.jpg")],
        condition_examples=[("skeleton_raised_arm.png", "grace_hopper.jpg")],
    ),
    TabSpec(
        key="face", title="Edge to face", task="face",
        intro="Give a face photo (or an edge sketch) and an exemplar face: the exemplar's face is redrawn "
              "on the input's edges.",
        condition_label="Edge sketch",
        condition_help="Lines of a face: white on black or black on white (it is normalised and thinned).",
        resolution=512,
        examples=[("grace_hopper.jpg", "astronaut.jpg"), ("astronaut.jpg", "grace_hopper.jpg")],
        condition_examples=[("sketch_grace_hopper.png", "astronaut.jpg")],
    ),
    TabSpec(
        key="mask", title="Mask to image", task="mask",
        intro="Paint a segmentation mask with the ADE20K palette (or give a photo: its person/background "
              "mask is used) and an exemplar photo: its looks fill the regions.",
        condition_label="Painted mask (ADE20K colours)",
        condition_help="Paint with the palette brushes, or upload an ADE20K-coloured mask as the background.",
        resolution=512,  # the training-free engine (no mask weights ship) takes 0.7 s at 512; 256 is blurred
        # (cameraman.png onto the astronaut shows a standing figure and tripod onto an upper body: mostly
        # patch fill, see README limits; the painted cameraman onto Grace Hopper's plain backdrop reads.)
        examples=[("grace_hopper.jpg", "astronaut.jpg"), ("astronaut.jpg", "grace_hopper.jpg")],
        condition_examples=[("mask_cameraman.png", "grace_hopper.jpg")],
    ),
    TabSpec(
        key="oil", title="Oil portrait", task="face",
        intro="Your portrait as an oil painting: the face's edges drawn with an oil-painted exemplar. "
              "The example exemplars are photos filtered with OpenCV's xphoto.oilPainting (no package "
              "ships a real painting); tick the box to filter your own exemplar the same way.",
        condition_label="Edge sketch",
        condition_help="Lines of a face: white on black or black on white.",
        resolution=512,
        oil_paint=False,
        examples=[("astronaut.jpg", "oil_grace_hopper.jpg"), ("grace_hopper.jpg", "oil_astronaut.jpg")],
        condition_examples=[("sketch_grace_hopper.png", "oil_astronaut.jpg")],
    ),
]
