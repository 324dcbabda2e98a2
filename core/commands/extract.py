"""``python -m core extract``: photo (or keypoints, or a ready condition picture) -> condition picture."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core.commands.paths import PICTURE_FORMATS, check_writable
from core.errors import InputError
from core.vocabulary import TASKS, worded

LABEL_FORMATS = (".npy", ".pt", ".safetensors")

EPILOG = """\
what --input is:
  a photo (default): the person / face / person mask is detected in it;
  with --from-condition: a ready condition picture (an OpenPose-coloured skeleton, a face
  sketch or edge map, or a mask painted with the ADE20K palette / an ADE20K index PNG).

keypoints (pose and face):
  --keypoints-json IN   use these keypoints instead of detecting: OpenPose JSON
                        (pose_keypoints_2d COCO-18 or BODY_25, face_keypoints_2d) or a
                        DeepFashionHD <name>_candidate.txt / <name>_subset.txt pair (give
                        either file). Their pixel frame is the JSON's canvas_width/height,
                        else the --input photo's size, else 1024x1024 for the txt pair,
                        else the output size. --input is then optional (face: its edges
                        outside the face are added when given).
  --keypoints-out OUT   write the keypoints used (detected or read) as OpenPose JSON in
                        output pixels; it can be fed back with --keypoints-json.

examples:
  python -m core extract --task pose --input photo.jpg --output pose.png --keypoints-out pose.json
  python -m core extract --task pose --keypoints-json pose.json --output pose.png --label-out pose.npy
  python -m core extract --task face --input portrait.jpg --output edges.png --resolution 256
  python -m core extract --task mask --input painted.png --from-condition --output mask.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--task", required=True, choices=TASKS, help="condition kind")
    parser.add_argument("--input", type=Path, help="photo (or, with --from-condition, a condition picture)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the condition picture (PNG)")
    parser.add_argument("--resolution", default="512",
                        help="output size: N for NxN, or WxH (default 512, the model's native size)")
    parser.add_argument("--from-condition", action="store_true",
                        help="--input is a ready skeleton picture / sketch / painted mask, not a photo")
    parser.add_argument("--keypoints-json", type=Path, metavar="IN",
                        help="read keypoints from this file instead of detecting (see below)")
    parser.add_argument("--keypoints-out", type=Path, metavar="OUT",
                        help="write the keypoints used as OpenPose JSON (pose and face)")
    parser.add_argument("--label-out", type=Path, metavar="PATH",
                        help="also write the model's label tensor (C, H, W) float32: .npy, .pt or .safetensors")
    parser.add_argument("--canny", type=int, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="face: Canny thresholds for the photo's edges outside the face (default 60 140)")


def parse_resolution(text: str) -> tuple[int, int]:
    """'512' -> (512, 512); '768x512' (W x H) -> (512, 768)."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) in (1, 2):
        from core.limits import RESOLUTION

        for side in values:
            RESOLUTION.check(side)
        return (values[0], values[0]) if len(values) == 1 else (values[1], values[0])
    raise InputError(f"--resolution must be N or WxH (e.g. 512 or 768x512), got {text!r}.")


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse bad outputs before any work, so nothing half-done is written."""
    outputs = [(args.output, PICTURE_FORMATS, "--output")]
    if args.label_out is not None:
        outputs.append((args.label_out, LABEL_FORMATS, "--label-out"))
    if args.keypoints_out is not None:
        outputs.append((args.keypoints_out, (".json",), "--keypoints-out"))
    for path, formats, flag in outputs:
        check_writable(path, formats, flag, inputs=(args.input, args.keypoints_json))
    if args.input is None and args.keypoints_json is None:
        raise InputError("Give --input (a photo or, with --from-condition, a condition picture) "
                         "or --keypoints-json.")
    if args.task == "mask" and (args.keypoints_json or args.keypoints_out):
        raise InputError("Masks have no keypoints: drop --keypoints-json / --keypoints-out for --task mask.")
    if args.from_condition and args.input is None:
        raise InputError("--from-condition needs --input (the condition picture).")
    if args.from_condition and args.keypoints_json is not None:
        raise InputError("Use either --from-condition or --keypoints-json, not both.")


def _from_keypoint_file(args: argparse.Namespace, size: tuple[int, int]):
    from core.conditions import from_keypoints
    from core.conditions.openpose_io import read_keypoints
    from core.imageio import fit_points, load_image

    found = read_keypoints(args.keypoints_json)
    kp = found.pose if args.task == "pose" else found.face
    if kp is None:
        raise InputError(f"{args.keypoints_json} has no {args.task} keypoints.")
    photo = load_image(args.input) if args.input is not None else None
    messages = list(found.messages)
    frame = found.frame or (photo.shape[:2] if photo is not None else size)
    if photo is not None and found.frame is not None:
        fh, fw = found.frame
        aspects = (photo.shape[1] / photo.shape[0], size[1] / size[0])  # the photo, or the photo fitted
        if min(abs(fw / fh - a) for a in aspects) > 0.02:
            messages.append(f"The keypoints' canvas ({fw}x{fh}) and the photo ({photo.shape[1]}x"
                            f"{photo.shape[0]}) have different shapes; they may not line up.")
    kp = np.array(kp, dtype=np.float64)
    if found.normalized:
        kp[:, 0] *= frame[1]
        kp[:, 1] *= frame[0]
    present = kp[:, 2] > 0
    kp[:, :2] = fit_points(kp[:, :2], frame, size)
    kp[~present] = 0.0
    cond = from_keypoints(args.task, kp, size, photo)
    cond.messages[:0] = messages
    return cond


def _from_condition_picture(args: argparse.Namespace, size: tuple[int, int]):
    from core.conditions import from_user_condition
    from core.imageio import load_image, load_label_map

    if args.task == "mask":
        raw = load_label_map(args.input)
        if raw is not None:  # a grey PNG: an ADE20K annotation (class index per pixel)
            return from_user_condition("mask", raw, size)
    return from_user_condition(args.task, load_image(args.input), size)


def _write_label(path: Path, label, task: str) -> None:
    import torch

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            np.save(path, label.numpy())
        elif suffix == ".pt":
            torch.save(label, path)
        else:
            from safetensors.torch import save_file

            save_file({"label": label.contiguous()}, str(path), metadata={"task": task})
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc}.") from exc


def run(args: argparse.Namespace) -> int:
    size = parse_resolution(args.resolution)
    _check_paths(args)

    from core.conditions import extract, face
    from core.conditions.framing import check_size
    from core.conditions.openpose_io import write_keypoints_json
    from core.imageio import PALETTE_MODES, load_image, load_image_and_mode, save_image

    size = check_size(size)
    if args.keypoints_json is not None:
        cond = _from_keypoint_file(args, size)
        if args.task == "face" and args.canny is not None and cond.image is not None:
            cond = face.from_keypoints(cond.keypoints, size, cond.image, tuple(args.canny), messages=cond.messages)
    elif args.from_condition:
        cond = _from_condition_picture(args, size)
    elif args.task == "face" and args.canny is not None:
        cond = face.extract(load_image(args.input), size, canny=tuple(args.canny))
    else:
        photo, mode = load_image_and_mode(args.input)
        cond = extract(args.task, photo, size, palette=mode in PALETTE_MODES)

    save_image(args.output, cond.preview)
    written = [str(args.output)]
    if args.label_out is not None:
        _write_label(args.label_out, cond.label, args.task)
        written.append(str(args.label_out))
    if args.keypoints_out is not None:
        if cond.keypoints is None:
            raise InputError("No keypoints to write: none were found in this condition picture.")
        pose_kp = cond.keypoints if args.task == "pose" else None
        face_kp = cond.keypoints if args.task == "face" else None
        write_keypoints_json(args.keypoints_out, size, pose=pose_kp, face=face_kp)
        written.append(str(args.keypoints_out))
    for message in cond.messages:
        print(f"note: {worded(message)}", file=sys.stderr)
    h, w = cond.size
    print(f"{args.task} condition {w}x{h}, {cond.label.shape[0]} channels: wrote {', '.join(written)}")
    return 0
