"""Time the app as users see it: start-up, and /translate per tab through gradio_client.

    .venv/bin/python benchmarks/app_bench.py [--resolutions 256 512] [--repeats 3]

Starts ``python app.py`` on a free port (no checkpoints: the training-free engine), warms
each task up once, then prints one JSON line: seconds to first page, and per task and
resolution the median request time seen by the client and by the server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import ASSETS  # noqa: E402
from tests.app_server import running_app  # noqa: E402

CASES = {  # tab -> (task, input photo, exemplar, oil-paint the exemplar)
    "Pose to body": ("pose", "astronaut.jpg", "grace_hopper.jpg", False),
    "Edge to face": ("face", "grace_hopper.jpg", "astronaut.jpg", False),
    "Mask to image": ("mask", "cameraman.png", "astronaut.jpg", False),
    "Oil portrait": ("face", "astronaut.jpg", "grace_hopper.jpg", True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/app_bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory(prefix="warpaint-bench-") as work:
        (Path(work) / "checkpoints").mkdir()
        t0 = time.perf_counter()
        with running_app(work, env={"WARPAINT_CHECKPOINTS": str(Path(work) / "checkpoints")}) as url:
            report: dict = {"startup_s": round(time.perf_counter() - t0, 2), "tabs": {}}
            client = Client(url, verbose=False, download_files=str(Path(work) / "downloads"))
            for tab, (task, source, exemplar, oil) in CASES.items():
                for res in args.resolutions:
                    times, server = [], []
                    for i in range(args.repeats + 1):  # the first call warms up (model, MediaPipe graphs)
                        t = time.perf_counter()
                        *_, info = client.predict(task, handle_file(str(ASSETS / source)),
                                                  handle_file(str(ASSETS / exemplar)), False, res, "auto", "", 5,
                                                  0.01, 0, oil, api_name="/translate")
                        if i:
                            times.append(time.perf_counter() - t)
                            server.append(info["wall_seconds"])
                    report["tabs"].setdefault(tab, {})[str(res)] = {
                        "client_s": round(statistics.median(times), 2), "server_s": round(statistics.median(server), 2),
                        "engine": info["engine"]}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
