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


def launch(demo: gr.Blocks, *, server_name: str | None = None, server_port: int | None = None,
           share: bool | None = None, prevent_thread_lock: bool = False, quiet: bool = False):
    """Serve ``demo`` on 127.0.0.1:7860 by default (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT honoured)."""
    configure_queue(demo)
    return demo.launch(
        server_name=server_name or settings.SERVER_NAME,
        server_port=server_port or settings.SERVER_PORT,
        share=settings.SHARE if share is None else share,
        max_file_size=settings.MAX_FILE_SIZE,
        allowed_paths=[str(settings.ASSETS)],  # the examples; uploads and results live in settings.TEMP_DIR
        ssr_mode=False,  # no Node server: plain Python serving, works offline
        footer_links=["api", "gradio"],
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the Warpaint app.")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs network)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLCONFIGDIR", str(settings.TEMP_DIR / "matplotlib"))  # its font cache, not in $HOME
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from app.ui import build_demo

    print(f"Warpaint app: temporary files in {settings.TEMP_DIR}", flush=True)
    if settings.HUB_MODELS:
        from app.models import hub_models

        print(f"Hub models offered: {', '.join(hub_models()) or 'none'} (of {', '.join(settings.HUB_MODELS)})",
              flush=True)
    launch(build_demo(), server_name=args.host, server_port=args.port, share=args.share or None)
    return 0
