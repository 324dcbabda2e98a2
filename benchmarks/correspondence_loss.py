"""Held-out warp quality after the same number of training steps with and without the
correspondence loss (same generated data, same seed, one thread), and seconds per step.

    .venv/bin/python benchmarks/correspondence_loss.py --steps 60 --out /tmp/corr_ablation

Trains the ``tiny`` preset at 64x64 on a generated mask set (``core.train.synthetic``: 12 photos,
4 held out) once per ``--weights`` value of ``weight_correspondence``, evaluates the held-out
pseudo pairs before and after (``Trainer.evaluate_warp``: PSNR of the finest warp, PSNR over the
pixels T(x) shows, end-point error of the correspondence), prints one JSON line per run and
writes ``sheet.png``: one row per held-out photo, x | T(x) | the warp after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.imageio import from_tensor, save_image  # noqa: E402
from core.train import Trainer, load_train_config  # noqa: E402
from core.train.synthetic import make_mask_dataset  # noqa: E402


def heldout_warps(trainer: Trainer) -> list[np.ndarray]:
    """x | T(x) | finest warp per held-out photo (the evaluation's own pseudo pairs)."""
    rows = []
    model = trainer.model.eval()
    for i, rel in enumerate(trainer.heldout):
        image, cond = trainer.dataset.photo(rel), trainer.cache.load(rel)
        rng = torch.Generator().manual_seed(10_000 + i)  # evaluate_warp's seeds
        exemplar, ex_label, _, _ = trainer.dataset.pseudo_exemplar(image, cond, rng)
        with torch.no_grad():
            warp = model(cond.label[None], exemplar[None], ex_label[None], synthesize=False).levels[-1].warp
        rows.append([from_tensor(image[None]), from_tensor(exemplar[None]), from_tensor(warp.clamp(-1, 1))])
    model.train()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="/tmp/correspondence_ablation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = make_mask_dataset(out / "toy", count=12, size=(64, 64), seed=1)
    columns: list[list[np.ndarray]] = []
    for weight in args.weights:
        cfg = load_train_config("tiny", steps=args.steps, lr=1e-3, holdout=4, checkpoint_every=10**9,
                                image_every=10**9, log_every=1, weight_correspondence=weight)
        trainer = Trainer(cfg, data, out / f"run-{weight:g}", task="mask")
        before = trainer.evaluate_warp()
        trainer.fit()
        logged = [json.loads(line) for line in (trainer.out / "metrics.jsonl").read_text().splitlines()]
        seconds = statistics.median(x["seconds"] for x in logged if x["kind"] == "train")  # iterations alone
        after = trainer.evaluate_warp()
        keep = ("psnr", "visible_psnr", "epe", "identity_psnr")
        print(json.dumps({"weight_correspondence": weight, "steps": args.steps,
                          "before": {k: round(before[k], 2) for k in keep},
                          "after": {k: round(after[k], 2) for k in keep},
                          "seconds_per_step": round(seconds, 2), "threads": args.threads,
                          "cpu": platform.processor() or platform.machine(), "load": round(os.getloadavg()[0], 1)}),
              flush=True)
        rows = heldout_warps(trainer)
        columns = [r[:2] for r in rows] if not columns else columns
        for c, r in zip(columns, rows):
            c.append(r[2])
    sheet = np.concatenate([np.concatenate(c, axis=1) for c in columns], axis=0)
    save_image(out / "sheet.png", np.kron(sheet, np.ones((2, 2, 1), np.uint8)))  # 2x for viewing
    print(f"sheet: {out / 'sheet.png'} (x | T(x) | warp with weight_correspondence {args.weights})")


if __name__ == "__main__":
    main()
