"""``python -m core convert-official``: the official .pth pair -> a Warpaint model folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corr", required=True, type=Path, help="official latest_net_Corr.pth")
    parser.add_argument("--gen", required=True, type=Path, help="official latest_net_G.pth")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder to write config.json + model.safetensors (e.g. checkpoints/deepfashionHD)")
    parser.add_argument("--iterations", type=int, default=5, help="PatchMatch iterations stored in the config")


def run(args: argparse.Namespace) -> int:
    from core.hub import CONVERTED, write_model_card
    from core.official import load_official

    model = load_official(args.corr, args.gen, iterations=args.iterations)
    model.save_pretrained(args.out)
    card = write_model_card(args.out, model.config, provenance=CONVERTED, overwrite=True,
                            license="other")  # the official release's own terms apply to the weights
    c = model.config
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"wrote {args.out}/config.json and model.safetensors: task {c.task}, {c.label_channels}-channel label, "
          f"{c.levels} levels, nef {c.nef}, ngf {c.ngf}, {params:.1f} M parameters, matching '{c.matching}'; "
          f"model card {card}")
    return 0
