"""``python -m core push --model DIR --repo org/name``: upload a model folder and its model card.

Uploads config.json, model.safetensors and README.md (the model card: written when the folder has
none; provenance from the trainer's train.json when present). Needs a Hub token (`hf auth login`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="model folder (config.json + model.safetensors)")
    parser.add_argument("--repo", required=True, help="Hub repo id, org/name (created when missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--license", default="other", help="license id for the card's front matter (default: other)")


def run(args: argparse.Namespace) -> int:
    from core.hub import push_model

    url = push_model(args.model, args.repo, private=args.private, license=args.license)
    print(f"pushed {args.model} to {args.repo}: {url}")
    return 0
