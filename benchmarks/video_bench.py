"""Seeded vs independent frames: speed, flicker and PCK on clips made from shipped photos.

    .venv/bin/python benchmarks/video_bench.py --resolution 512 --frames 24 [--threads 2] [--out bench.json]

Two clips, both driving Grace Hopper (matplotlib's sample photo, head and shoulders):
- ``photo``: scikit-image's astronaut filmed by a swaying camera (shift, rotation, zoom), as MP4;
- ``poses``: the astronaut's detected skeleton with both arms waving, as OpenPose JSON files.
Each runs with the training-free engine v1 twice (independent frames, then seeded) and, with
``--v2``, with engine v2 (the pose default: charts, nothing to seed), and prints
one JSON line per run and a comparison: seconds per frame (wall and process CPU, per stage),
flicker (mean |frame t - frame t-1 warped by the input's motion| over the person, 0-255) and
PCK@0.1 of keypoints re-detected in the outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.environment import set_process_defaults  # noqa: E402

set_process_defaults()  # passive OpenMP waiting, before torch starts

from core.pipeline import Translator  # noqa: E402


def make_clips(folder: Path, frames: int) -> dict[str, Path]:
    from matplotlib import cbook
    from skimage import data

    from core.conditions import pose
    from core.conditions.openpose_io import write_keypoints_json
    from core.imageio import load_image
    from core.video.encode import write_video
    from core.video.samples import moving_photo, waving_poses

    astronaut = data.astronaut()
    write_video(folder / "photo.mp4", moving_photo(astronaut, frames), 25)
    poses = folder / "poses"
    poses.mkdir()
    side = 512
    keypoints = pose.detect_keypoints(astronaut, (side, side))
    for t, kp in enumerate(waving_poses(keypoints, frames)):
        write_keypoints_json(poses / f"{t:04d}.json", (side, side), pose=kp)
    exemplar = folder / "grace_hopper.png"
    from core.imageio import save_image

    save_image(exemplar, load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return {"photo": folder / "photo.mp4", "poses": poses, "exemplar": exemplar}


def save_sheet(path: Path, folder: Path, frames: int, modes: list[str]) -> None:
    """Four frames per clip: the input (the photo frame, or the skeleton) | one column per mode."""
    import cv2
    import numpy as np

    from core.video.clip import open_clip

    photos = list(open_clip(folder / "photo.mp4").frames())
    rows = []
    for name in ("photo", "poses"):
        for t in np.linspace(1, frames - 1, 4).round().astype(int):
            outs = [cv2.imread(str(folder / f"{name}-{mode}" / f"{t:06d}.png")) for mode in modes]
            side = outs[0].shape[0]
            first = (cv2.cvtColor(cv2.resize(photos[t], (side, side)), cv2.COLOR_RGB2BGR) if name == "photo"
                     else cv2.imread(str(folder / f"{name}-skeletons" / f"{t:06d}.png")))
            rows.append(np.concatenate([first, *outs], 1))
    sheet = np.concatenate(rows, 0)
    scale = min(1.0, 1600 / sheet.shape[0])
    cv2.imwrite(str(path), cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--v2", action="store_true", help="also run engine v2 (charts; not seeded)")
    parser.add_argument("--sheet", type=Path,
                        help="also save a contact sheet (PNG): per clip, rows of input | independent | seeded")
    args = parser.parse_args()

    import torch

    from core.imageio import load_image
    from core.video.clip import open_clip
    from core.video.retarget import VideoOptions, VideoRetargeter

    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = make_clips(folder, args.frames)
        exemplar = load_image(clips["exemplar"])
        v1 = VideoRetargeter(Translator("pose", engine="training-free", version=1))
        v2 = VideoRetargeter(Translator("pose", engine="training-free", version=2))
        modes = {"independent": (v1, False), "seeded": (v1, True)}
        if args.v2:
            modes["v2"] = (v2, False)
        for name in ("photo", "poses"):
            for mode, (retargeter, seeded) in modes.items():
                clip = open_clip(clips[name])
                frames = folder / f"{name}-{mode}"
                result = retargeter.run(clip, exemplar, folder / f"{name}-{mode}.mp4", VideoOptions(
                    resolution=args.resolution, seeding=seeded, measure=True, frames_dir=frames,
                    skeletons_dir=folder / f"{name}-skeletons"))
                summary = {k: v for k, v in result.summary().items() if k not in ("flicker", "pck")}
                summary.update(clip=name, mode=mode, threads=args.threads)
                results[f"{name}-{mode}"] = summary
                print(json.dumps(summary), flush=True)
        if args.sheet is not None:
            save_sheet(args.sheet, folder, args.frames, list(modes))
    for name in ("photo", "poses"):
        a, b = results[f"{name}-independent"], results[f"{name}-seeded"]

        def whole(r, kind):  # poses pass + rendering + encoding, per frame
            return r[f"{kind}_poses_per_frame"] + r[f"{kind}_per_frame"] + r[f"{kind}_encode_per_frame"]

        if f"{name}-v2" in results:
            c = results[f"{name}-v2"]
            print(f"{name} v2: engine {c['wall_engine']:.3f} s/frame wall, {c['cpu_engine']:.3f} CPU; whole pipeline "
                  f"{whole(c, 'cpu'):.3f} CPU; flicker {c['flicker_mean']}; PCK {c['pck_mean']}")
        print(f"{name}: engine {a['wall_engine']:.3f} -> {b['wall_engine']:.3f} s/frame wall "
              f"({a['wall_engine'] / b['wall_engine']:.2f}x), {a['cpu_engine']:.3f} -> {b['cpu_engine']:.3f} CPU "
              f"({a['cpu_engine'] / b['cpu_engine']:.2f}x); whole pipeline {whole(a, 'wall'):.3f} -> "
              f"{whole(b, 'wall'):.3f} s/frame wall, {whole(a, 'cpu'):.3f} -> {whole(b, 'cpu'):.3f} CPU; "
              f"flicker {a['flicker_mean']} -> {b['flicker_mean']}; PCK {a['pck_mean']} -> {b['pck_mean']}")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
