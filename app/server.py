"""Serve the app: queue with a concurrency limit, upload limits, offline, local address unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from app import settings


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """Heavy events run ``settings.CONCURRENCY`` at a time; at most ``QUEUE_SIZE`` wait, later ones are refused."""
    return demo.queue(default_concurrency_limit=settings.CONCURRENCY, max_size=settings.QUEUE_SIZE)


def on_spaces() -> bool:
    """Hugging Face Spaces serves this app itself (and sets SPACE_ID): a share link means nothing there."""
    return bool(os.environ.get("SPACE_ID"))


def start_lines(local_url: str, share: bool) -> list[str]:
    """What a person who just typed ``python app.py`` reads: where to open the app, and the app's own
    switch for a public link (Gradio's hint names ``launch(share=True)``, a code change, instead)."""
    if on_spaces():
        return [f"Warpaint app: serving the Space {os.environ['SPACE_ID']} on {local_url}"]
    lines = [f"Warpaint app: open {local_url} in a browser (Ctrl+C stops it)"]
    if not share:
        lines.append("Public link: off (python app.py --share or WARPAINT_SHARE=1 opens one; needs network)")
    return lines


def launch(demo: gr.Blocks, *, server_name: str | None = None, server_port: int | None = None,
           share: bool | None = None, prevent_thread_lock: bool = False, quiet: bool = False):
    """Serve ``demo`` on 127.0.0.1:7860 by default (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT honoured).
    Gradio's own start-up text is replaced by ``start_lines`` (unless ``quiet``)."""
    configure_queue(demo)
    share = (settings.SHARE if share is None else share) and not on_spaces()
    served = demo.launch(
        server_name=server_name or settings.SERVER_NAME,
        server_port=server_port or settings.SERVER_PORT,
        share=share,
        max_file_size=settings.MAX_FILE_SIZE,
        allowed_paths=[str(settings.ASSETS)],  # the examples; uploads and results live in settings.TEMP_DIR
        ssr_mode=False,  # no Node server: plain Python serving, works offline
        footer_links=["api", "gradio"],
        prevent_thread_lock=True,  # blocked below, after the start lines
        quiet=True,  # Gradio still prints the public URL when there is one, and any share failure
    )
    if not quiet:
        print("\n".join(start_lines(demo.local_url, bool(demo.share_url))), flush=True)
    if not prevent_thread_lock:
        demo.block_thread()
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the Warpaint app.")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs network)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLCONFIGDIR", str(settings.TEMP_DIR / "matplotlib"))  # its font cache, not in $HOME
    # The app's own lines (refusals, stops, error ids) at INFO; libraries' INFO (httpx's every request,
    # matplotlib's font cache) is noise to an operator: their warnings and errors only.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("warpaint").setLevel(logging.INFO)
    from app.ui import build_demo

    print(f"Warpaint app: temporary files in {settings.TEMP_DIR}", flush=True)
    if settings.HUB_MODELS:
        from app.models import hub_models

        print(f"Hub models offered: {', '.join(hub_models()) or 'none'} (of {', '.join(settings.HUB_MODELS)})",
              flush=True)
    launch(build_demo(), server_name=args.host, server_port=args.port, share=args.share or None)
    return 0
