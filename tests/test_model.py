"""Core model (issue 2): shapes at any size and level count, gradients reach the GRU, PatchMatch
recovers known mappings exactly, determinism and the config + safetensors round trip."""

from __future__ import annotations

import math

import pytest
import torch

from core.config import WarpaintConfig, get_preset
from core.corr import normalize_features, pixel_grid
from core.correspondence import match_pyramid
from core.errors import CheckpointError
from core.model import Warpaint
from core.patchmatch import PatchMatch


def tiny(**overrides) -> WarpaintConfig:
    return get_preset("tiny", **overrides)


def inputs(config: WarpaintConfig, h: int, w: int, batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cond = torch.rand(batch, config.label_channels, h, w, generator=g)
    ex = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    ex_cond = torch.rand(batch, config.label_channels, h, w, generator=g)
    return cond, ex, ex_cond


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
@pytest.mark.parametrize("matching", ["learned", "official"])
def test_shapes_at_every_level_count(levels, matching):
    config = tiny(levels=levels, matching=matching)
    model = Warpaint(config).eval()
    h, w = 64, 96  # not square
    with torch.no_grad():
        out = model(*inputs(config, h, w, batch=2))
    assert out.image.shape == (2, 3, h, w)
    assert out.image.abs().max() <= 1
    assert len(out.levels) == levels
    k = config.candidates
    for i, level in enumerate(out.levels):
        lh, lw = h // 2 ** (levels - 1 - i), w // 2 ** (levels - 1 - i)
        assert level.warp.shape == (2, 3, lh, lw)
        assert level.positions.shape == (2, k, 2, lh, lw)
        assert level.weights.shape == (2, k, lh, lw)
        assert torch.allclose(level.weights.sum(1), torch.ones(2, lh, lw), atol=1e-5)
        assert level.confidence.shape == (2, 1, lh, lw)
        assert 0 <= level.confidence.min() and level.confidence.max() <= 1
        assert level.positions[:, :, 0].max() <= lh - 1 and level.positions[:, :, 1].max() <= lw - 1


@pytest.mark.parametrize("size", [(32, 32), (64, 32), (128, 96)])
def test_any_size_that_is_a_multiple_of_the_stride(size):
    config = tiny()
    with torch.no_grad():
        out = Warpaint(config).eval()(*inputs(config, *size))
    assert out.image.shape[-2:] == size


def test_bad_size_is_refused():
    config = tiny()
    with pytest.raises(ValueError, match="multiples of 4"):
        Warpaint(config)(*inputs(config, 66, 64))


def test_gru_receives_gradients_from_a_warp_loss():
    torch.manual_seed(0)
    config = tiny()
    model = Warpaint(config)
    cond, ex, ex_cond = inputs(config, 64, 64)
    out = model(cond, ex, ex_cond, synthesize=False)
    target = torch.rand_like(out.levels[-1].warp)
    loss = sum((lv.warp - torch.nn.functional.interpolate(target, lv.warp.shape[-2:])).abs().mean()
               for lv in out.levels)
    loss.backward()
    pm = model.correspondence.patch_match
    for name, module in (("update block", pm.refine_net), ("initial layer", pm.initial_layer)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, f"{name} got no gradient"


def coordinate_features(rows: torch.Tensor, cols: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Unit features whose cosine similarity peaks only where the coordinates agree."""
    feats = []
    for f in (1, 2, 4, 8):
        for coord, size in ((rows, h), (cols, w)):
            angle = 2 * math.pi * f * coord / (2 * size)  # half-turn over the image: no aliasing at f=1
            feats += [torch.cos(angle), torch.sin(angle)]
    return normalize_features(torch.stack(feats).unsqueeze(0))


def pyramids(mapping, h: int, w: int, levels: int):
    """Left (input) and right (exemplar) coordinate features per level, coarsest first."""
    left, right = [], []
    for i in range(levels):
        s = 2 ** (levels - 1 - i)
        lh, lw = h // s, w // s
        rows, cols = pixel_grid(lh, lw, "cpu")
        tr, tc = mapping(rows, cols, lh, lw, s)
        left.append(coordinate_features(tr, tc, lh, lw))
        right.append(coordinate_features(rows, cols, lh, lw))
    return left, right


@pytest.mark.parametrize("name", ["shift", "flip"])
def test_patchmatch_recovers_a_known_mapping_exactly(name):
    h = w = 64
    levels = 4
    if name == "shift":  # shift by 8 px at full size (1 px at the coarsest level)
        def mapping(r, c, lh, lw, s):
            return r, (c + 8 // s).clamp(max=lw - 1)
        dilation = 2
    else:  # horizontal flip; reaching odd displacements needs the dilation-1 seed window
        def mapping(r, c, lh, lw, s):
            return r, lw - 1 - c
        dilation = 1
    left, right = pyramids(mapping, h, w, levels)
    exemplar = torch.zeros(1, 3, h, w)
    pm = PatchMatch(left[0].shape[1], candidates=16, use_gru=False)
    with torch.no_grad():
        out = match_pyramid(left, right, exemplar, pm, iterations=3, temperature=0.01, window=4, dilation=dilation)
    for i, level in enumerate(out):
        s = 2 ** (levels - 1 - i)
        lh, lw = h // s, w // s
        rows, cols = pixel_grid(lh, lw, "cpu")
        tr, tc = mapping(rows, cols, lh, lw, s)
        best = level.weights.argmax(1, keepdim=True)  # (1, 1, H, W)
        pos = torch.gather(level.positions, 1, best.unsqueeze(2).expand(-1, -1, 2, -1, -1))[0, 0]
        valid = (cols + 8 // s < lw) if name == "shift" else torch.ones_like(cols, dtype=torch.bool)
        assert torch.equal(pos[0][valid], tr[valid]), f"level {i} rows"
        assert torch.equal(pos[1][valid], tc[valid]), f"level {i} cols"


@pytest.mark.parametrize("matching", ["learned", "official"])
def test_constant_exemplar_warps_to_a_constant(matching):
    config = tiny(matching=matching)
    cond, ex, ex_cond = inputs(config, 64, 64)
    colour = torch.tensor([0.3, -0.5, 0.9]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = Warpaint(config).eval()(cond, colour.expand_as(ex).contiguous(), ex_cond)
    for level in out.levels:
        assert torch.allclose(level.warp, colour.expand_as(level.warp), atol=1e-5)


def test_seeded_runs_are_deterministic():
    config = tiny()
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        model = Warpaint(config).eval()
        with torch.no_grad():
            results.append(model(*inputs(config, 64, 64)))
    a, b = results
    assert torch.equal(a.image, b.image)
    for la, lb in zip(a.levels, b.levels, strict=True):
        assert torch.equal(la.warp, lb.warp) and torch.equal(la.positions, lb.positions)


@pytest.mark.parametrize("matching", ["learned", "official"])
def test_per_call_settings_are_arguments_and_leave_the_model_as_it_was(matching):
    """iterations / temperature given to one call act like a config with those values, and
    nothing of that call stays in the model: the next default call is bit-identical."""
    config = tiny(matching=matching)
    torch.manual_seed(2)
    model = Warpaint(config).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = inputs(config, 64, 64)
    seen = []
    with torch.no_grad():
        default = model(*x)
        changed = model(*x, iterations=1, temperature=0.05,
                        on_level=lambda i, match: seen.append((i, tuple(match.warp.shape[-2:]))))
        again = model(*x)
        same_as_config = Warpaint(config.replace(iterations=1, temperature=0.05)).eval()
        same_as_config.load_state_dict(state)
        reference = same_as_config(*x)
    assert seen == [(0, (16, 16)), (1, (32, 32)), (2, (64, 64))]
    assert torch.equal(default.image, again.image)
    assert not torch.equal(default.image, changed.image)
    assert torch.equal(changed.image, reference.image)
    assert model.config == config
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny()
    x = inputs(config, 32, 32)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(3)
        model = Warpaint(config).eval()
        if checkpointing:
            model.enable_gradient_checkpointing()
        out = model(*x, cycle=True, return_features=True)
        assert out.levels[0].cycle is not None and len(out.source_features) == config.levels
        (out.image.square().mean() + sum(lv.warp.abs().mean() for lv in out.levels)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    plain, ckpt = grads
    assert plain.keys() == ckpt.keys() and len(plain) > 10
    assert all(torch.allclose(plain[n], ckpt[n], atol=1e-6) for n in plain)


def test_save_and_load_round_trip_is_bit_exact(tmp_path):
    config = tiny()
    torch.manual_seed(1)
    model = Warpaint(config).eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = Warpaint.from_pretrained(tmp_path / "m")
    assert loaded.config == config
    sa, sb = model.state_dict(), loaded.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = inputs(config, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(*x).image, loaded(*x).image)


def test_loading_a_folder_of_another_config_fails_clearly(tmp_path):
    Warpaint(tiny()).save_pretrained(tmp_path / "m")
    tiny(nef=16).save(tmp_path / "m" / "config.json")
    with pytest.raises(CheckpointError, match="does not fit"):
        Warpaint.from_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="missing"):
        Warpaint.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        Warpaint.from_pretrained(tmp_path / "m")


def test_config_json_round_trip(tmp_path):
    config = get_preset("official")
    config.save(tmp_path / "c.json")
    assert WarpaintConfig.load(tmp_path / "c.json") == config
    with pytest.raises(ValueError, match="unknown config keys"):
        WarpaintConfig.from_dict({"nope": 1})
