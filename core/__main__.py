"""Command line: ``python -m core <command> [options]`` (no install needed)."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.environment import set_malloc, set_process_defaults

# command name -> (module under core.commands, one-line help). Each module defines
# ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when used.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("bench", "time the model (seconds per image, per level, peak memory)"),
    "extract": ("extract", "turn a photo into a condition (pose, face edges, mask)"),
    "translate": ("translate", "translate an input to the style of an exemplar"),
    "video": ("video", "drive one exemplar person through a whole clip (pose)"),
    "convert-official": ("convert_official", "convert the official CoCosNet v2 checkpoint"),
    "push": ("push", "upload a model folder and its model card to the Hugging Face Hub"),
    "eval-warp": ("eval_warp", "measure warp quality on pseudo pairs"),
    "train": ("train", "train a model on a folder of images"),
    "retrieve": ("retrieve", "rank exemplars for each training image"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(
        f"{name}: {text}" for name, (_, text) in sorted(COMMANDS.items())))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1] or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    set_process_defaults(allocator=None)  # before the command imports torch
    module = importlib.import_module(f"core.commands.{COMMANDS[name][0]}")
    sub = argparse.ArgumentParser(prog=f"python -m core {name}", description=COMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    set_malloc(getattr(args, "allocator", "default"))  # before the command allocates anything big
    try:
        return int(module.run(args) or 0)
    except WarpaintError as exc:  # a clear message for the user, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


from core.errors import WarpaintError  # noqa: E402  (kept light: no torch import)

if __name__ == "__main__":
    sys.exit(main())
