"""Compare Warpaint's official mode with the recorded official CoCosNet v2 outputs (the fixture).

Prints one JSON line: seconds, warp agreement per level, index agreement per level, generator
error on the stored warps and on our own warps. Use it after every performance change:

    .venv/bin/python benchmarks/check_official.py [--precision fp32|bf16] [--channels-last]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.official import load_official  # noqa: E402
from core.precision import inference_context, prepare_model  # noqa: E402
from core.vocabulary import PRECISIONS  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "cocosnet2_official"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return round(10 * math.log10(4 / mse), 2) if mse > 0 else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixture", default=str(FIXTURE))
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-channels-last", action="store_true")
    args = parser.parse_args()
    folder = Path(args.fixture)
    model = load_official(folder / "netCorr.pth", folder / "netG.pth")
    device = torch.device(args.device)
    if device.type == "cuda":  # true fp32 (TF32 would move the encoder features by ~1e-3)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    prepare_model(model, device, channels_last=not args.no_channels_last)
    inp = {k: v.to(device) for k, v in torch.load(folder / "inputs.pt", weights_only=True).items()}
    ref = torch.load(folder / "outputs.pt", weights_only=True)
    draws = json.loads((folder / "draws.json").read_text())["draws"]
    orders = [[d["horizontal_first"] for d in draws if d["level"] == lv] for lv in (1, 2, 3)]
    with inference_context(device, args.precision):
        start = time.perf_counter()
        out = model(inp["seg_map"], inp["ref_img"], inp["ref_seg_map"], orders=orders)
        seconds = time.perf_counter() - start
        stored = [ref[f"warp_out_{s}"] for s in (64, 128, 256, 512)]
        gen_on_stored = model.generator([w.to(device) for w in stored], inp["seg_map"]).float().cpu()
    out.levels = [type(lv)(**{k: None if v is None else v.cpu() for k, v in vars(lv).items()}) for lv in out.levels]
    out.image = out.image.cpu()
    report = {"precision": args.precision, "seconds": round(seconds, 2)}
    for warp, s in zip(out.warps, (64, 128, 256, 512)):
        diff = (warp.float() - ref[f"warp_out_{s}"]).abs()
        report[f"warp_{s}_max"] = float(diff.max())
        report[f"warp_{s}_off_pct"] = round(100 * float((diff.amax(1) > 1e-3).float().mean()), 4)
    report["top1_64_equal_pct"] = round(100 * float(
        (out.levels[0].indices[:, :, :1] == ref["level0_top1_inds"]).float().mean()), 4)
    for lv in (1, 2, 3):
        ours, theirs = out.levels[lv].indices, ref[f"level{lv}_matching_inds"]
        report[f"inds_{lv}_equal_pct"] = round(100 * float((ours == theirs).float().mean()), 4)
    for warp, s in zip(out.warps, (64, 128, 256, 512)):  # PSNR against the official fp32 (range [-1, 1])
        report[f"psnr_warp_{s}"] = _psnr(warp, ref[f"warp_out_{s}"])
    report["psnr_image"] = _psnr(out.image, ref["fake_image"])
    report["gen_on_stored_max"] = float((gen_on_stored - ref["fake_image"]).abs().max())
    report["fake_image_max"] = float((out.image.float() - ref["fake_image"]).abs().max())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
