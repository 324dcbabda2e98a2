"""The layout: one tab per task, each wired to ``app.handlers``; plus the ``extract`` / ``translate`` API."""

from __future__ import annotations

import gradio as gr

from app import atomic_cache, drawing, handlers, models, settings, video
from app.components import (
    INLINE_PICTURES,
    RawCheckbox,
    RawDropdown,
    RawNumber,
    RawRadio,
    RawSlider,
    RawTextbox,
    checked_examples,
    event_index,
    mask_editor,
    photo_input,
)
from app.engine import engine_plan, friendly_errors, refuse_malformed_requests
from app.jobs import run_heavy
from app.palette import editor_to_mask, legend_html, make_brush
from app.tasks import TABS, TabSpec
from core.limits import check_choice
from core.vocabulary import ENGINES, MIRROR_MODES, TASKS

PHOTO, READY = "Photo", "Ready condition"
INPUT_KINDS = (PHOTO, READY)
PROGRESS = gr.Progress()  # marks a handler's progress parameter; Gradio gives each call its own tracker
MIRROR_INFO = ("auto: training-free faces and poses use a mirror-image exemplar mirrored, masks one whose face is "
               "turned the other way (any text it shows then reads backwards); never: keep it as given; "
               "always: mirror it")
LEARNED_ONLY = "learned engine only: the training-free engine ignores it"
HEAVY = dict(concurrency_id="heavy", concurrency_limit=settings.CONCURRENCY, api_visibility="undocumented")

INTRO = """# Warpaint
Exemplar-based image translation with full-resolution correspondence (after CoCosNet v2).
Give an **input** (a photo, or a ready-made condition) and an **exemplar**: Warpaint finds, for every
output pixel, where it matches in the exemplar (coarse to fine, level by level) and paints the input
with the exemplar's looks. Below the output you can *see* that correspondence: the warp at every
level, the flow, the confidence, and, by clicking the output, the matched points in the exemplar.
Everything runs on this machine; nothing is downloaded."""


def _source(spec: TabSpec, kind: object, photo, condition):
    """The picture to translate: the photo, or the ready condition (a painted mask is flattened first)."""
    if check_choice("input kind", kind, INPUT_KINDS) == PHOTO:
        return photo, False
    return (editor_to_mask(condition) if spec.task == "mask" else condition), True


def _checkpoint_choices(task: str) -> list[tuple[str, str]]:
    try:
        found = models.names(task)
    except Exception:  # no pipeline yet / unreadable folder: offer none rather than break the page
        found = []
    return [("none (auto picks)", "")] + [(name, name) for name in found]


def _plan_updater(task: str):
    def show_plan(engine_name, ckpt):
        return f"**Engine:** {friendly_errors(engine_plan)(task, engine_name, ckpt or None)}"

    return show_plan


def build_tab(spec: TabSpec) -> tuple[gr.Radio, gr.Dropdown, gr.Markdown]:
    """One task tab: inputs, previews, Advanced, Run, output, and the correspondence views."""
    key = spec.key
    gr.Markdown(spec.intro)
    with gr.Row():
        with gr.Column():
            kind = RawRadio(list(INPUT_KINDS), value=PHOTO, label="Input is", elem_id=f"{key}-kind")
            photo = photo_input(label="Input photo", elem_id=f"{key}-photo", height=320)
            if spec.task == "mask":
                condition = mask_editor(label=spec.condition_label, type="numpy", image_mode="RGBA",
                                       brush=make_brush(), eraser=gr.Eraser(), canvas_size=(512, 512),
                                       sources=["upload", "clipboard"], visible=False, elem_id=f"{key}-condition",
                                       height=420)
                legend = gr.HTML(legend_html(), visible=False)
            else:
                condition = photo_input(label=spec.condition_label, visible=False, elem_id=f"{key}-condition",
                                       sources=["upload", "clipboard"], height=320)
                legend = gr.Markdown(spec.condition_help, visible=False)
        with gr.Column():
            exemplar = photo_input(label="Exemplar", elem_id=f"{key}-exemplar", height=320)
            oil = RawCheckbox(value=spec.oil_paint, visible=key == "oil", elem_id=f"{key}-oil",
                              label="Oil-paint the exemplar first (OpenCV xphoto.oilPainting)")
    with gr.Row():
        checked_examples(gr.Examples(spec.example_paths(), inputs=[photo, exemplar],
                                     label="Examples: photos (public domain, offline)", cache_examples=False))
        checked_examples(gr.Examples([[READY, *pair] for pair in spec.condition_example_paths()],
                                     inputs=[kind, condition, exemplar], label="Examples: ready conditions",
                                     cache_examples=False))
    with gr.Row():
        with gr.Column():
            input_preview = gr.Image(label="Input's condition (click to inspect after a run)", interactive=False,
                                     format="png", elem_id=f"{key}-input-condition", height=256)
            input_notes = gr.Markdown(elem_id=f"{key}-input-notes")
        with gr.Column():
            exemplar_preview = gr.Image(label="Exemplar's condition", interactive=False, format="png",
                                        elem_id=f"{key}-exemplar-condition", height=256)
            exemplar_notes = gr.Markdown(elem_id=f"{key}-exemplar-notes")
    with gr.Accordion("Advanced", open=False, elem_id=f"{key}-advanced"):
        with gr.Row():
            resolution = _slider(settings.RESOLUTION, spec.resolution, "Resolution (output side, pixels)",
                                 elem_id=f"{key}-resolution")
            engine = RawRadio(list(ENGINES), value="auto", label="Engine",
                              info="auto: a learned checkpoint when one is found, else training-free")
            checkpoint = RawDropdown(_checkpoint_choices(spec.task), value="",
                                     label="Model (checkpoints/ folders, allowed Hub ids)")
        with gr.Row():
            # engine v2 (training-free, the default without weights) has no PatchMatch, softmax or seed of its own
            iterations = _slider(settings.ITERATIONS, 5, "PatchMatch iterations per level", info=LEARNED_ONLY)
            temperature = _slider(settings.TEMPERATURE, 0.01, "Softmax temperature", info=LEARNED_ONLY)
            seed = RawNumber(value=0, precision=0, minimum=settings.SEED.minimum, maximum=settings.SEED.maximum,
                             label="Seed", info=LEARNED_ONLY)
            mirror = RawRadio(list(MIRROR_MODES), value="auto", label="Mirror the exemplar",
                              elem_id=f"{key}-mirror", info=MIRROR_INFO)
    plan = gr.Markdown("**Engine:** auto", elem_id=f"{key}-engine")
    run = gr.Button("Run", variant="primary", elem_id=f"{key}-run")
    with gr.Row():
        output = gr.Image(label="Output (click a point to see its matches)", interactive=False, format="png",
                          elem_id=f"{key}-output", height=384)
        with gr.Column():
            inspect_view = gr.Image(label="Matched points in the exemplar (disc area = weight)", interactive=False,
                                    format="png", elem_id=f"{key}-inspect", height=384)
            inspect_text = gr.Markdown("Run, then click a point of the output or of the input's condition.")
    status = gr.Markdown(elem_id=f"{key}-status")
    gallery = gr.Gallery(label="Warp at every level, coarsest first (select one for its flow and confidence)",
                         columns=4, height=260, format="png", elem_id=f"{key}-gallery", allow_preview=False,
                         object_fit="contain")
    with gr.Row():
        flow = gr.Image(label="Flow (colour wheel: hue = direction, saturation = distance)", interactive=False,
                        format="png", elem_id=f"{key}-flow", height=256)
        confidence = gr.Image(label="Confidence (dark = unsure)", interactive=False, format="png",
                              elem_id=f"{key}-confidence", height=256)
    state = gr.State(None, time_to_live=settings.CACHE_SECONDS)
    level = gr.State(None)

    # -- events ------------------------------------------------------------------------------
    def toggle(choice):
        ready = choice == READY
        return gr.update(visible=not ready), gr.update(visible=ready), gr.update(visible=ready)

    kind.change(toggle, kind, [photo, condition, legend], queue=False, api_visibility="private")

    def previewer(ready: bool):
        async def preview(picture, res):
            if picture is None:
                return None, ""
            return await run_heavy(handlers.extract, spec.task, picture, ready, res)

        return preview

    photo.change(previewer(False), [photo, resolution], [input_preview, input_notes], show_progress="minimal",
                 **HEAVY)
    exemplar.change(previewer(False), [exemplar, resolution], [exemplar_preview, exemplar_notes],
                    show_progress="minimal", **HEAVY)
    if spec.task != "mask":  # a painted mask previews on Run (the editor changes at every stroke)
        condition.change(previewer(True), [condition, resolution], [input_preview, input_notes],
                         show_progress="minimal", **HEAVY)

    for trigger in (engine.change, checkpoint.change):
        trigger(_plan_updater(spec.task), [engine, checkpoint], plan, queue=False, api_visibility="private")

    async def run_tab(kind_value, photo_value, condition_value, exemplar_value, oil_value, res, engine_name, ckpt,
                      iters, temp, seed_value, mirror_value, progress=PROGRESS):
        source, is_condition = friendly_errors(_source)(spec, kind_value, photo_value, condition_value)
        outcome = await run_heavy(
            handlers.translate, spec.task, source, exemplar_value, source_is_condition=is_condition,
            resolution=res, engine=engine_name, checkpoint=ckpt, iterations=iters, temperature=temp,
            seed=seed_value, oil_paint_exemplar=oil_value, mirror=mirror_value,
            progress=lambda f, text: progress(f, desc=text))
        r = outcome.result
        flow_pic, conf_pic = handlers.level_pictures(outcome.state, None)
        return (r.image, r.input_condition, r.exemplar_condition, drawing.warp_gallery(r.levels), flow_pic,
                conf_pic, outcome.status(), f"**Engine:** {r.engine}", outcome.state, None, outcome.state.exemplar,
                "Click a point of the output or of the input's condition.")

    run.click(run_tab, [kind, photo, condition, exemplar, oil, resolution, engine, checkpoint, iterations,
                        temperature, seed, mirror],
              [output, input_preview, exemplar_preview, gallery, flow, confidence, status, plan, state, level,
               inspect_view, inspect_text], **HEAVY)

    def pick_level(saved, evt: gr.EventData):
        picked = handlers.picked_level(saved, event_index(evt))  # None: not a level the gallery shows
        flow_pic, conf_pic = handlers.level_pictures(saved, picked)
        return picked, flow_pic, conf_pic

    gallery.select(pick_level, state, [level, flow, confidence], queue=False, api_visibility="private")

    def on_click(saved, level_value, evt: gr.EventData):
        return handlers.inspect(saved, level_value, event_index(evt))  # checked there: two finite numbers

    for view in (output, input_preview):
        view.select(on_click, [state, level], [inspect_view, inspect_text], queue=False,
                    api_visibility="private")
    return engine, checkpoint, plan


def _slider(limit, value: float, label: str, **kwargs) -> RawSlider:
    """A slider spanning exactly what the server accepts (``limit``: see app/settings.py); its value reaches the
    handler untouched (checked there)."""
    return RawSlider(limit.minimum, limit.maximum, value=value, step=limit.step, label=label, **kwargs)


async def api_extract(task: str, image: str, ready_condition: bool, resolution: float):
    """API ``/extract``: the condition picture of ``image`` (a photo, or a ready condition) and messages."""
    return await run_heavy(handlers.extract, task, image, ready_condition, resolution)


async def api_translate(task: str, source: str, exemplar: str, source_is_condition: bool, resolution: float,
                        engine: str, checkpoint: str, iterations: float, temperature: float, seed: float,
                        oil_paint_exemplar: bool, mirror: str = "auto", progress=PROGRESS):
    """API ``/translate``: output, per-level warps, flow and confidence (finest level), and an info dict."""
    outcome = await run_heavy(
        handlers.translate, task, source, exemplar, source_is_condition=source_is_condition, resolution=resolution,
        engine=engine, checkpoint=checkpoint, iterations=iterations, temperature=temperature, seed=seed,
        oil_paint_exemplar=oil_paint_exemplar, mirror=mirror, progress=lambda f, text: progress(f, desc=text))
    flow, confidence = handlers.level_pictures(outcome.state, None)
    return outcome.result.image, drawing.warp_gallery(outcome.result.levels), flow, confidence, outcome.info()


def api_models() -> dict[str, list[str]]:
    """API ``/models``: the model names each task accepts as ``checkpoint`` ("" = auto)."""
    return {task: models.names(task) for task in TASKS}


def build_api() -> None:
    """Hidden components behind the public endpoints ``/extract``, ``/translate`` and ``/models`` (see
    docs/app.md). Their values reach the handlers untouched (the ``Raw`` components): the handlers check each one."""
    api = dict(concurrency_id="heavy", concurrency_limit=settings.CONCURRENCY)
    with gr.Group(visible=False):
        task = RawDropdown(list(TASKS), value="pose", label="task")
        resolution = RawNumber(256, precision=0, label="resolution")
        image = photo_input(label="image")
        ready = RawCheckbox(False, label="ready_condition")
        gr.Button("extract").click(
            api_extract, [task, image, ready, resolution],
            [gr.Image(label="condition", format="png"), gr.Textbox(label="messages")], api_name="extract",
            api_description="Photo (or ready condition) -> picture of its condition, and the extractor's messages.",
            **api)
        inputs = [task, photo_input(label="source"), photo_input(label="exemplar"),
                  RawCheckbox(False, label="source_is_condition"), resolution,
                  RawDropdown(list(ENGINES), value="auto", label="engine"),
                  RawTextbox("", label="checkpoint"), RawNumber(5, precision=0, label="iterations"),
                  RawNumber(0.01, label="temperature"), RawNumber(0, precision=0, label="seed"),
                  RawCheckbox(False, label="oil_paint_exemplar"),
                  RawDropdown(list(MIRROR_MODES), value="auto", label="mirror")]
        outputs = [gr.Image(label="image", format="png"), gr.Gallery(label="warps", format="png"),
                   gr.Image(label="flow", format="png"), gr.Image(label="confidence", format="png"),
                   gr.JSON(label="info")]
        gr.Button("translate").click(
            api_translate, inputs, outputs, api_name="translate",
            api_description="Translate source to the looks of exemplar: image, per-level warps (coarsest first), "
                            "flow and confidence of the finest level, info (engine used, messages, seconds).",
            **api)
        gr.Button("models").click(api_models, None, gr.JSON(label="models"), api_name="models", queue=False,
                                  api_description="The model names each task accepts as checkpoint.")


def _load_checkpoints(task: str):
    def refresh(engine_name):
        return gr.update(choices=_checkpoint_choices(task), value=""), _plan_updater(task)(engine_name, "")

    return refresh


def build_demo() -> gr.Blocks:
    """The whole app (not launched: see ``app.server``)."""
    atomic_cache.install()  # identical outputs of simultaneous requests must not break each other's downloads
    with gr.Blocks(title="Warpaint", delete_cache=(settings.CACHE_SECONDS, settings.CACHE_SECONDS)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            for spec in TABS:
                with gr.Tab(spec.title, id=spec.key, elem_id=f"tab-{spec.key}"):
                    engine, checkpoint, plan = build_tab(spec)
                # On each page load: list the checkpoints present now, and say which engine auto picks.
                demo.load(_load_checkpoints(spec.task), [engine], [checkpoint, plan], api_visibility="private")
            with gr.Tab("Pose video", id="video", elem_id="tab-video"):
                video.build_video_tab(HEAVY)
        gr.Markdown(f"Limits: {settings.MAX_FILE_SIZE} per upload, {settings.MAX_PIXELS / 1e6:.0f} MP per picture, "
                    f"{settings.CONCURRENCY} translation(s) at a time, {settings.REQUEST_SECONDS:g} s per request. "
                    "See docs/app.md.")
        build_api()
    demo.temp_file_sets.append(INLINE_PICTURES)  # inline pictures of every session are deleted too
    return refuse_malformed_requests(demo)
