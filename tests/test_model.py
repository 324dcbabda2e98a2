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


def test_training_the_gru_alone_lowers_the_correspondence_error():
    """Not only non-zero gradients: a few optimiser steps on the PatchMatch GRU (everything else
    frozen) bring the finer levels' candidates closer to a known mapping (a pseudo exemplar's)."""
    from core.augment import grid_to_pixels, pseudo_exemplar
    from core.train.losses import correspondence_loss

    torch.manual_seed(0)
    model = Warpaint(tiny(label_channels=4))
    rows, cols = pixel_grid(32, 32, "cpu")
    image = torch.stack([torch.sin(rows / 3), torch.cos(cols / 4), torch.sin((rows + cols) / 5)])[None]
    label = torch.stack([torch.sin(rows / 6), torch.cos(cols / 5), torch.sin((rows - cols) / 7),
                         torch.cos((rows + cols) / 9)])[None] * 0.5 + 0.5
    pair = pseudo_exemplar(image, label, generator=torch.Generator().manual_seed(3))
    truth, known = grid_to_pixels(pair.inverse), pair.visible.float()
    gru = model.correspondence.patch_match
    model.requires_grad_(False)
    gru.requires_grad_(True)
    optimizer = torch.optim.Adam(gru.parameters(), lr=1e-2)
    errors = []
    for _ in range(8):
        out = model(label, pair.image, pair.label, synthesize=False)
        total, terms = correspondence_loss(out.levels, truth, known)
        errors.append(float(terms[-1].detach()))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert errors[-1] < 0.75 * errors[0], errors


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


# -- issue 14: sizes beyond the tiny preset, official mode with gradients, sampled features ---------

def small_official(**overrides) -> WarpaintConfig:
    """The official architecture (4 levels, generator from 1/32) at small widths, for speed."""
    return get_preset("official", nef=8, ngf=8, spade_hidden=16, gru_hidden=16, **overrides)


@pytest.mark.parametrize("size", [(32, 64), (64, 24)])
def test_official_generator_sizes_too_small_are_refused_clearly(size):
    """Multiples of the stride (8) that the generator (starting at 1/32) cannot take: a clear
    message instead of a crash in reflection padding."""
    config = small_official()
    with torch.no_grad(), pytest.raises(ValueError, match="at least 40"):
        Warpaint(config).eval()(*inputs(config, *size))
    with torch.no_grad():  # the correspondence alone takes them
        out = Warpaint(config).eval()(*inputs(config, *size), synthesize=False)
    assert out.levels[-1].warp.shape[-2:] == size


@pytest.mark.parametrize("size", [(40, 40), (40, 72)])
def test_official_architecture_at_the_smallest_sizes(size):
    config = small_official()
    with torch.no_grad():
        out = Warpaint(config).eval()(*inputs(config, *size))
    assert out.image.shape[-2:] == size and torch.isfinite(out.image).all()


def test_official_matching_trains_on_cpu():
    """The sparse candidate scorer has no autograd: with gradients the scores take the gather path."""
    config = tiny(matching="official")
    model = Warpaint(config).eval()  # eval: spectral norms do not step between the two calls
    out = model(*inputs(config, 64, 64), synthesize=False)
    sum(lv.warp.square().mean() for lv in out.levels).backward()
    corr = model.correspondence
    for name, convs in (("theta", corr.theta), ("phi", corr.phi)):
        assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs[1:]), name
    from core.corr import score_indices  # the gather path (with gradients) scores as the sparse one

    g = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, 8, 50, generator=g, requires_grad=True), torch.randn(2, 8, 40, generator=g)
    index = torch.randint(0, 40, (2, 50, 6), generator=g)
    with torch.no_grad():
        sparse = score_indices(left, right, index, 0.01)
    assert torch.allclose(score_indices(left, right, index, 0.01), sparse, atol=1e-4)


@pytest.mark.parametrize("delta", [(0.25, 0.0), (0.5, 0.5), (0.0, 0.75)])
def test_fractional_candidates_score_as_high_as_integer_ones(delta):
    """A feature matched with itself at a fractional position scores what it scores at an integer one
    (bilinear samples are renormalised), so matches are not pulled to integer positions."""
    g = torch.Generator().manual_seed(0)
    h, w, k = 12, 14, 4
    right = normalize_features(torch.nn.functional.avg_pool2d(torch.randn(1, 16, h + 2, w + 2, generator=g), 3, 1))
    pm = PatchMatch(16, candidates=k, use_gru=False)
    exemplar = torch.zeros(1, 3, h, w)

    def score(dr: float, dc: float) -> torch.Tensor:
        from core.corr import sample_at

        offsets = torch.tensor([dr, dc]).view(1, 2, 1, 1, 1).expand(1, 2, k, h, w).contiguous()
        positions = (pixel_grid(h, w, "cpu") + offsets[:, :, 0]).unsqueeze(1)  # (1, 1, 2, H, W)
        left = normalize_features(sample_at(right, positions)[:, :, 0])  # the exemplar's feature there
        with torch.no_grad():
            return pm(left, right, exemplar, offsets, iterations=0, temperature=0.01).confidence[0, 0, :-1, :-1]

    integer, fractional = score(0.0, 0.0), score(*delta)
    assert float(integer.min()) > 0.999
    assert float((fractional - integer).abs().max()) < 1e-3


def test_dense_attention_chunks_count_the_batch(monkeypatch):
    """A chunk's similarity matrix stays within DENSE_CHUNK_ELEMENTS whatever the batch, and the
    chunked result equals the unchunked one."""
    import core.corr as corr

    g = torch.Generator().manual_seed(0)
    q = normalize_features(torch.randn(4, 8, 8, 8, generator=g))
    k = normalize_features(torch.randn(4, 8, 8, 8, generator=g))
    v = torch.randn(4, 3, 8, 8, generator=g)
    whole = corr.dense_attention(q, k, v, 0.01, topk=2)
    monkeypatch.setattr(corr, "DENSE_CHUNK_ELEMENTS", 64 * 16)  # 16 query rows of one item
    sizes = []
    matmul = torch.matmul

    def spy(a, b):
        out = matmul(a, b)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch, "matmul", spy)
    chunked = corr.dense_attention(q, k, v, 0.01, topk=2)
    monkeypatch.undo()
    assert len(sizes) > 2 and max(sizes) <= 64 * 16
    assert torch.allclose(whole.warp, chunked.warp, atol=1e-6) and torch.equal(whole.top_index, chunked.top_index)
