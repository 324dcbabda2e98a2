"""Fast-inference code paths: device/precision helpers, channels_last, bf16/fp16 autocast, stage
timing, and the rewritten hot paths (SDDMM scoring, pixel-major PatchMatch, concatenation-free
GRU, fused modulation convs, layout-preserving InstanceNorm) against plain reference code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.config import get_preset
from core.corr import gather_values, normalize_features, pixel_grid, score_indices
from core.errors import InputError
from core.layers import ModulatedNorm, instance_norm, positional_norm, resize_nearest
from core.model import Warpaint
from core.patchmatch import MATCHERS, index_to_offsets, seed_offsets
from core.precision import (
    autocast_dtype,
    bf16_support,
    configure_allocator,
    cpu_features,
    inference_context,
    prepare_model,
    resolve_device,
    to_channels_last,
)
from core.timing import record_stages, stage
from core.update import MotionEncoder, SepConvGRU

CL = torch.channels_last


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _inputs(model: Warpaint, size=(32, 32), batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = model.config.label_channels
    cond = F.interpolate(torch.rand(batch, c, 8, 8, generator=g), size=size, mode="bilinear")
    ex = F.interpolate(torch.rand(batch, 3, 8, 8, generator=g), size=size, mode="bilinear") * 2 - 1
    return cond, ex, torch.roll(cond, shifts=(3, -2), dims=(2, 3))


# -- helpers -------------------------------------------------------------------------------
def test_cpu_features_and_bf16_support_are_read_at_run_time():
    feats = cpu_features()
    assert set(feats) == {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"}
    assert all(isinstance(v, bool) for v in feats.values())
    expected = "amx" if feats["amx_bf16"] else "avx512_bf16" if feats["avx512_bf16"] else "emulated"
    assert bf16_support("cpu") == expected


def test_devices_and_precisions_are_checked():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu-9000")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device cpu"):
            resolve_device("cuda")
    assert autocast_dtype("fp32") is None
    assert autocast_dtype("bf16") is torch.bfloat16 and autocast_dtype("fp16") is torch.float16
    with pytest.raises(InputError, match="'fp32', 'bf16', 'fp16'"):
        autocast_dtype("int8")


def test_inference_context_lowers_convolutions_only():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 8, 8)
    with inference_context("cpu", "fp32"):
        assert torch.is_inference_mode_enabled() and conv(x).dtype == torch.float32
    for precision, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with inference_context("cpu", precision):
            assert conv(x).dtype == dtype
    assert configure_allocator("system") is False  # changes nothing
    with pytest.raises(InputError, match="'default', 'fast', 'lean', 'system'"):
        configure_allocator("huge")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_keeps_matching_in_float32(precision):
    torch.manual_seed(0)
    model = prepare_model(Warpaint(get_preset("tiny", label_channels=4)), "cpu", allocator="default")
    with inference_context("cpu", precision):
        out = model(*_inputs(model))
    assert out.image.dtype == torch.float32 and torch.isfinite(out.image).all()
    for level in out.levels:
        assert level.warp.dtype == level.weights.dtype == level.positions.dtype == torch.float32
        assert torch.allclose(level.weights.sum(1), torch.ones(()), atol=1e-4)


@pytest.mark.parametrize("matching", ["learned", "official"])
def test_channels_last_model_matches_nchw(matching):
    torch.manual_seed(0)
    ref = Warpaint(get_preset("tiny", label_channels=4, matching=matching)).eval()
    fast = Warpaint(ref.config)
    fast.load_state_dict(ref.state_dict())
    prepare_model(fast, "cpu", channels_last=True, allocator="default")
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(m.weight.is_contiguous(memory_format=CL) for m in convs)
    inputs = _inputs(ref)
    with torch.inference_mode():
        a = ref(*inputs)
        feats_a = ref.correspondence.encode(*inputs)
    with inference_context("cpu"):
        fast_inputs = [to_channels_last(x) for x in inputs]
        b = fast(*fast_inputs)
        feats_b = fast.correspondence.encode(*fast_inputs)
        image_b = fast.generator(a.warps, fast_inputs[0])  # the same warps: a continuous map
    for fa, fb in zip(feats_a[0] + feats_a[1], feats_b[0] + feats_b[1]):
        assert torch.allclose(fa, fb, atol=1e-4)
    assert torch.allclose(a.levels[0].warp, b.levels[0].warp, atol=1e-4)  # dense attention: continuous
    assert torch.allclose(a.image, image_b, atol=1e-4)
    # (finer levels go through discrete candidate choices: see benchmarks/check_official.py)


def test_stage_timing_is_recorded_only_when_asked():
    torch.manual_seed(0)
    model = Warpaint(get_preset("tiny", label_channels=4)).eval()
    inputs = _inputs(model, size=(32, 16))
    with record_stages() as times, torch.inference_mode():
        model(*inputs)
    assert list(times) == ["encoders", "level_8x4", "level_16x8", "level_32x16", "generator"]
    assert all(v >= 0 for v in times.values())
    with stage("nobody listens"):
        pass  # no recorder: a no-op


# -- hot paths against reference code ------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_score_indices_equals_brute_force(dtype):
    g = torch.Generator().manual_seed(0)
    left = normalize_features(torch.randn(2, 8, 5, 7, generator=g)).flatten(2)
    right = normalize_features(torch.randn(2, 8, 6, 4, generator=g)).flatten(2)
    index = torch.randint(0, 24, (2, 35, 9), generator=g)
    index[:, :, 1] = index[:, :, 0]  # duplicates are allowed
    ref = torch.stack([left[b].t() @ right[b] for b in range(2)])  # (B, N, Nr)
    ref = torch.gather(ref, 2, index) / 0.01
    assert torch.allclose(score_indices(left, right, index.to(dtype), 0.01), ref, atol=1e-4)
    assert torch.allclose(score_indices(left, right, index, 0.01, chunk=4), ref, atol=1e-4)
    values = torch.randn(2, 3, 24, generator=g)
    weights = torch.rand(2, 35, 9, generator=g)
    brute = (values.transpose(1, 2)[torch.arange(2)[:, None, None], index] * weights[..., None]).sum(2)
    assert torch.allclose(gather_values(values, index.to(dtype), weights), brute.transpose(1, 2), atol=1e-5)


def propagate(offsets: torch.Tensor, horizontal: bool) -> torch.Tensor:
    """Channel-major propagation, the readable form: (B, 2, K, H, W) -> (B, 2, 3K, H, W) as
    [from previous neighbour, own, from next neighbour]; zero offsets at the border."""
    dim = -1 if horizontal else -2
    n = offsets.shape[dim]
    zero = torch.zeros_like(offsets.narrow(dim, 0, 1))
    prev = torch.cat([zero, offsets.narrow(dim, 0, n - 1)], dim=dim)
    nxt = torch.cat([offsets.narrow(dim, 1, n - 1), zero], dim=dim)
    return torch.cat([prev, offsets, nxt], dim=2)


def offsets_to_index(offsets: torch.Tensor, official: bool) -> torch.Tensor:
    """Channel-major (B, 2, M, H, W) offsets -> (B, H*W, M) long flat indices, the readable form."""
    _, _, m, h, w = offsets.shape
    grid = pixel_grid(h, w, offsets.device, offsets.dtype).unsqueeze(1)  # (2, 1, H, W)
    row = (grid[0] + offsets[:, 0]).clamp(0, h - 1)
    col = (grid[1] + offsets[:, 1]).clamp(0, w - 1)
    if official:  # float32 arithmetic then truncation, as the released code does
        flat = (row.float() * w + col.float()).long()
    else:
        flat = row.round().long() * w + col.round().long()
    return flat.flatten(2).transpose(1, 2)


def _reference_level(k: int, official: bool, temperature: float, left, right, offsets, order):
    """PatchMatch without a GRU written channel-major with plain per-step functions (the readable form)."""
    b, _, h, w = left.shape
    lf, rf = left.flatten(2), right.flatten(2)
    for horizontal_first in order:
        for horizontal in (horizontal_first, not horizontal_first):
            cand = propagate(offsets, horizontal)
            index = offsets_to_index(cand, official)
            prob = F.softmax(score_indices(lf, rf, index, temperature, chunk=97), -1)
            _, top = torch.topk(prob, k, dim=-1)
            offsets = index_to_offsets(torch.gather(index, -1, top), h, w)
    return offsets


@pytest.mark.parametrize("official", [True, False])
def test_pixel_major_patchmatch_equals_the_readable_form(official):
    g = torch.Generator().manual_seed(1)
    left = normalize_features(torch.randn(2, 8, 24, 20, generator=g))
    right = normalize_features(torch.randn(2, 8, 24, 20, generator=g))
    exemplar = torch.rand(2, 3, 24, 20, generator=g)
    seeds = seed_offsets(torch.randint(-3, 4, (2, 2, 12, 10), generator=g).float(), 3, 2)
    order = [True, False, False]
    pm = MATCHERS["official" if official else "learned"](8, 9, use_gru=False)
    with torch.no_grad():
        got = pm(left, right, exemplar, seeds, iterations=len(order), temperature=0.01, horizontal_first=order)
    ref = _reference_level(9, official, 0.01, left, right, seeds, order)
    grid = torch.stack(torch.meshgrid(torch.arange(24.0), torch.arange(20.0), indexing="ij")).view(1, 2, 1, 24, 20)
    ref_pos = torch.maximum(grid + ref, torch.zeros(())).transpose(1, 2)
    ref_pos = torch.stack([ref_pos[:, :, 0].clamp_max(23), ref_pos[:, :, 1].clamp_max(19)], 2)
    assert torch.equal(got.positions, ref_pos)
    if official:
        assert torch.equal(got.indices, offsets_to_index(ref, True)) and got.indices.dtype == torch.int64


def test_gru_inference_buffer_equals_concatenation():
    torch.manual_seed(0)
    enc, gru = MotionEncoder(4, 16).eval(), SepConvGRU(8, 16).eval()
    h, scores, offsets = torch.randn(2, 8, 6, 5), torch.rand(2, 4, 6, 5), torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        x = enc(offsets, scores)
        ref = gru._step(h, x, gru.convz1, gru.convr1, gru.convq1)
        ref = gru._step(ref, x, gru.convz2, gru.convr2, gru.convq2)
        hx = torch.empty(2, 24, 6, 5)
        enc(offsets, scores, out=hx[:, 8:])
        assert torch.allclose(hx[:, 8:], x)
        got = gru(h, hx[:, 8:], hx=hx)
    assert torch.allclose(got, ref, atol=1e-6)


def test_fused_modulation_and_instance_norm_equal_the_plain_ops():
    torch.manual_seed(0)
    norm = ModulatedNorm(6, 3, hidden=5).eval()
    x, guide = torch.randn(2, 6, 8, 8), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        actv = norm.pad(norm.mlp_shared(resize_nearest(guide, (8, 8))))
        ref = positional_norm(x) * (1 + norm.mlp_gamma(actv)) + norm.mlp_beta(actv)
        assert torch.allclose(norm(x, guide), ref, atol=1e-5)
    y = torch.randn(2, 5, 9, 7) * 0.1 + 3  # an offset mean: the two-pass variance must stay exact
    got = instance_norm(y.contiguous(memory_format=CL))
    assert got.is_contiguous(memory_format=CL)
    assert torch.allclose(got, F.instance_norm(y.double()).float(), atol=1e-4)


def test_motion_encoder_buffer_keeps_the_weights_layout():
    """Its concatenation buffer is NHWC like the (channels_last) weights, though ``out`` is a channel
    slice of the GRU buffer: an NCHW buffer made oneDNN copy 128 channels at full size per step."""
    enc = MotionEncoder(4, 16).eval().to(memory_format=CL)
    seen = []
    enc.conv.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=CL)))
    scores, offsets = torch.rand(1, 4, 6, 5).to(memory_format=CL), torch.randn(1, 8, 6, 5).to(memory_format=CL)
    hx = torch.empty(1, 24, 6, 5, memory_format=CL)
    with torch.no_grad():
        enc(offsets, scores, out=hx[:, 8:])
    assert seen == [True]
