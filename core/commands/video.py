"""``python -m core video``: one exemplar person through a whole clip.

    python -m core video --task pose --input dance.mp4 --exemplar person.jpg --output out.mp4 \\
        [--resolution 512] [--engine auto] [--fps 25] [--max-frames 240] \\
        [--frames-dir frames/] [--skeletons-dir skeletons/] [--skeleton-video skeleton.mp4] [--stats stats.json]

``--input`` is a video file, a folder of frames, or a folder of OpenPose JSON files (one per frame,
in name order). The output has exactly one frame per input frame (after ``--max-frames``) and is
H.264 in MP4 (or VP9 in WebM, by the output's extension). A killed run continues where it stopped
when run again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.commands.paths import check_apart
from core.errors import InputError
from core.vocabulary import ENGINES, MIRROR_HELP, MIRROR_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=("pose",), help="only pose clips are retargeted")
    parser.add_argument("--input", type=Path, required=True,
                        help="a video (mp4, webm, mov, mkv, avi, gif), a folder of frames or of OpenPose JSON")
    parser.add_argument("--exemplar", type=Path, required=True, help="photo of the person to drive")
    parser.add_argument("--output", type=Path, required=True, help="the video to write (.mp4 H.264 or .webm VP9)")
    parser.add_argument("--resolution", type=int, default=None, help="square output side (default: 512 or the model's)")
    parser.add_argument("--engine", default="auto", choices=ENGINES)
    parser.add_argument("--engine-version", type=int, default=None, choices=(1, 2),
                        help="training-free engine: 2 (charts, the default; limbs the exemplar hides get a "
                             "stand-in) or 1 (matching, seeded frame to frame)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="engine v2: map what it can when the exemplar lacks a body part the clip needs")
    parser.add_argument("--mirror", default="auto", choices=MIRROR_MODES,
                        help=MIRROR_HELP + " (auto is decided once, on the first frame)")
    parser.add_argument("--checkpoint", help="a model folder (config.json + model.safetensors), or a Hugging Face "
                                             "Hub id org/name[@revision]")
    parser.add_argument("--fps", type=float, default=None,
                        help="output frame rate (default: the video's; 25 for frames and poses folders)")
    parser.add_argument("--max-frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--no-seeding", action="store_true",
                        help="engine v1: match every frame from scratch (for comparison)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="frames per engine call when frames are independent (learned engine, e.g. on a GPU)")
    parser.add_argument("--iterations", type=int, default=None, help="PatchMatch iterations of an unseeded frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames-dir", type=Path, help="also keep the output frames here (PNG)")
    parser.add_argument("--skeletons-dir", type=Path, help="also keep each frame's skeleton (PNG + OpenPose JSON)")
    parser.add_argument("--skeleton-video", type=Path, help="also write the skeletons as a video")
    parser.add_argument("--stats", type=Path,
                        help="measure flicker and PCK per frame and write them (and the timings) as JSON here")
    parser.add_argument("--device", default=None, help="auto (default), cpu or cuda")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.imageio import load_image
    from core.pipeline import Translator
    from core.video.clip import open_clip
    from core.video.encode import check_output
    from core.video.retarget import VideoOptions, VideoRetargeter

    for path in (args.output, args.skeleton_video):  # before any work: a wrong name fails at once
        if path is not None:
            check_output(path)
    check_apart({"--output": args.output, "--skeleton-video": args.skeleton_video, "--stats": args.stats,
                 "--frames-dir": args.frames_dir, "--skeletons-dir": args.skeletons_dir}, (args.input, args.exemplar))
    from core.limits import BATCH_SIZE, ITERATIONS, RESOLUTION, SEED

    ITERATIONS.check_optional(args.iterations)  # the same number checks as translate and the app
    RESOLUTION.check_optional(args.resolution)
    SEED.check(args.seed)
    BATCH_SIZE.check(args.batch_size)
    if args.stats is not None and not args.stats.parent.is_dir():
        raise InputError(f"Cannot write {args.stats}: the folder {args.stats.parent} does not exist.")
    clip = open_clip(args.input, max_frames=args.max_frames, fps=args.fps)
    exemplar = load_image(args.exemplar)
    translator = Translator(args.task, engine=args.engine, checkpoint=args.checkpoint, device=args.device,
                            version=args.engine_version)
    print(f"engine: {translator.engine_name}; {clip.count} frames at {clip.fps:g} fps from {clip.kind} "
          f"{args.input}", file=sys.stderr)
    options = VideoOptions(resolution=args.resolution, seeding=not args.no_seeding, iterations=args.iterations,
                           seed=args.seed, batch_size=args.batch_size, allow_partial=args.allow_partial,
                           mirror=args.mirror, measure=args.stats is not None, frames_dir=args.frames_dir,
                           skeletons_dir=args.skeletons_dir, skeleton_video=args.skeleton_video)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            bars[stage] = tqdm(total=total, initial=done, unit="frame" if stage != "encoding" else "video",
                               desc=stage, file=sys.stderr, dynamic_ncols=True)
        bar = bars[stage]
        bar.update(done - bar.n)

    try:
        result = VideoRetargeter(translator).run(clip, exemplar, args.output, options, progress)
    finally:
        for bar in bars.values():
            bar.close()
    for message in result.messages:
        print(f"note: {message}", file=sys.stderr)
    summary = result.summary()
    if args.stats is not None:
        args.stats.write_text(json.dumps(summary, indent=1) + "\n")
    resumed = f", {result.resumed} reused from the interrupted run" if result.resumed else ""
    per_frame = (f", {result.seconds['wall_per_frame']:.2f} s per rendered frame"
                 if "wall_per_frame" in result.seconds else "")
    print(f"wrote {args.output}: {result.frames} frames {result.size[1]}x{result.size[0]} at {result.fps:g} fps "
          f"({result.engine}{per_frame}{resumed})")
    if result.flicker or result.pck:
        print(f"flicker {summary['flicker_mean']} (mean |frame t - warped frame t-1| over the person, 0-255), "
              f"PCK@0.2 {summary['pck_mean']} (min {summary['pck_min']})")
    return 0
