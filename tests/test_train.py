"""Trainer parts, fast: presets, losses, VGG19 loading, the cached dataset, the resumable sampler,
checkpoint files and retrieval. (Whole training runs are in test_train_run.py.)"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.config import get_preset
from core.errors import CheckpointError, InputError
from core.model import Warpaint
from core.train import checkpoint as ckpt
from core.train import losses
from core.train.data import (
    ConditionCache,
    ResumableSampler,
    TrainingSet,
    collate,
    find_images,
    read_pair_list,
    split_holdout,
)
from core.train.presets import TRAIN_PRESETS, load_train_config
from core.train.retrieval import label_descriptor, rank, retrieve, write_list
from core.train.synthetic import make_mask_dataset
from core.train.vgg import LAYERS, VGG19, VGG19_FILE, find_vgg_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_mask_dataset(tmp_path_factory.mktemp("toy"), count=5, size=(80, 96), seed=3)


# -- presets ---------------------------------------------------------------------------------

def test_presets_cover_the_tasks_and_build_models():
    for name in ("pose-256", "pose-512", "face-512", "face-1024", "mask-256", "tiny"):
        cfg = TRAIN_PRESETS[name]
        model_cfg = cfg.model_config(label_channels=7, task="mask")
        assert model_cfg.resolution == cfg.size and model_cfg.resolution % model_cfg.stride == 0
    assert TRAIN_PRESETS["mask-256"].model_config().label_channels == 151
    assert TRAIN_PRESETS["face-512"].model_config().task == "face"
    # tiny takes the data's channel count and task
    assert TRAIN_PRESETS["tiny"].model_config(label_channels=151, task="mask").label_channels == 151
    official = TRAIN_PRESETS["pose-512"]
    assert (official.lr, official.beta1, official.beta2, official.ttur) == (1e-4, 0.0, 0.9, True)
    assert (official.weight_warp, official.weight_cycle, official.weight_featpair) == (250.0, 1.0, 10.0)
    assert all(p.weight_correspondence == 1.0 for p in TRAIN_PRESETS.values())  # documented in docs/training.md


def test_yaml_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("base: mask-256\nbatch_size: 3\nweight_contextual: 0.5\nmodel: {nef: 16}\n")
    cfg = load_train_config(str(path), steps=7, lr=None)
    assert (cfg.model, cfg.batch_size, cfg.weight_contextual, cfg.steps) == ("mask-256", 3, 0.5, 7)
    assert cfg.model_config().nef == 16 and cfg.lr == 1e-4
    path.write_text("base: mask-256\nbatch_sise: 3\n")
    with pytest.raises(InputError, match="batch_sise"):
        load_train_config(str(path))
    path.write_text("model: {nfe: 3}\n")
    with pytest.raises(InputError, match="nfe"):
        load_train_config(str(path))
    with pytest.raises(InputError, match="preset"):
        load_train_config("no-such-preset")


# -- losses ----------------------------------------------------------------------------------

def _level(warp):
    from core.patchmatch import LevelMatch

    b, _, h, w = warp.shape
    return LevelMatch(warp, torch.zeros(b, 1, 2, h, w), torch.ones(b, 1, h, w), torch.ones(b, 1, h, w))


def test_warp_loss_pools_the_target_and_weights_samples():
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    exact = [_level(F.avg_pool2d(target, 4)), _level(F.avg_pool2d(target, 2)), _level(target)]
    total, terms = losses.warp_loss(exact, target)
    assert float(total) < 1e-6 and len(terms) == 3
    wrong = [_level(lv.warp + 0.5) for lv in exact]
    assert float(losses.warp_loss(wrong, target)[0]) == pytest.approx(1.5, abs=1e-5)
    # a sample with weight 0 does not count: its (large) error is ignored
    mixed = [_level(torch.cat([lv.warp[:1], lv.warp[1:] + 3])) for lv in exact]
    assert float(losses.warp_loss(mixed, target, torch.tensor([1.0, 0.0]))[0]) < 1e-6
    assert float(losses.warp_loss(mixed, target, torch.tensor([0.0, 1.0]))[0]) == pytest.approx(9, abs=1e-4)


def test_warp_loss_ignores_what_the_exemplar_does_not_show():
    target = torch.rand(1, 3, 16, 16) * 2 - 1
    warp = target.clone()
    warp[..., :4] += 1.0  # wrong only in the left quarter...
    mask = torch.ones(1, 1, 16, 16)
    mask[..., :4] = 0  # ...which the crop removed from the exemplar
    assert float(losses.warp_loss([_level(warp)], target)[0]) == pytest.approx(0.25, abs=1e-5)
    assert float(losses.warp_loss([_level(warp)], target, mask=mask)[0]) < 1e-6
    pooled = losses.warp_loss([_level(F.avg_pool2d(warp, 4))], target, mask=mask)[0]
    assert float(pooled) < 1e-6  # pooled to the level, the mask keeps only whole shown blocks' weight


def _candidates(positions, weights):
    from core.patchmatch import LevelMatch

    b, k, _, h, w = positions.shape
    return LevelMatch(torch.zeros(b, 3, h, w), positions, weights, torch.ones(b, 1, h, w))


def test_correspondence_loss_measures_each_level_in_its_own_pixels():
    from core.corr import pixel_grid

    h = w = 16
    truth = (pixel_grid(h, w, "cpu") + torch.tensor([2.0, -4.0]).view(2, 1, 1))[None]  # shift (2, -4) px
    mask = torch.ones(1, 1, h, w)
    levels = []
    for s in (4, 2, 1):  # exact candidate in slot 0 (weight 0.75), one 3 px off below it (weight 0.25)
        exact = pixel_grid(h // s, w // s, "cpu") + torch.tensor([2.0 / s, -4.0 / s]).view(2, 1, 1)
        positions = torch.stack([exact, exact + torch.tensor([3.0, 0.0]).view(2, 1, 1)])[None]
        weights = torch.tensor([0.75, 0.25]).view(1, 2, 1, 1).expand(1, 2, h // s, w // s)
        levels.append(_candidates(positions, weights))
    total, terms = losses.correspondence_loss(levels, truth, mask)
    assert [float(t) for t in terms] == pytest.approx([0.75 * 0.01 + 0.25 * 3.0] * 3, abs=1e-3)
    assert float(losses.correspondence_loss(levels, truth, torch.zeros_like(mask))[0]) == 0  # nothing known
    # gradients reach both the positions and the weights
    positions = levels[-1].positions.clone().requires_grad_(True)
    weights = levels[-1].weights.clone().requires_grad_(True)
    losses.correspondence_loss([_candidates(positions, weights)], truth, mask)[0].backward()
    assert positions.grad.abs().sum() > 0 and weights.grad[:, 1].mean() > weights.grad[:, 0].mean()


def test_cycle_and_feature_pair_losses():
    exemplar = torch.rand(1, 3, 16, 16)
    lv = _level(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="cycle"):
        losses.cycle_loss(lv, exemplar)
    lv.cycle = F.avg_pool2d(exemplar, 4)
    assert float(losses.cycle_loss(lv, exemplar)) < 1e-6
    a = [torch.rand(1, 4, 8, 8), torch.rand(1, 4, 16, 16)]
    assert float(losses.feature_pair_loss(a, a)) == 0
    assert float(losses.feature_pair_loss(a, [x + 1 for x in a])) == pytest.approx(2.0)


def test_gan_losses():
    real = [[torch.zeros(2, 4, 5, 5), torch.full((2, 1, 4, 4), 2.0)]]
    fake = [[torch.ones(2, 4, 5, 5), torch.full((2, 1, 4, 4), -2.0)]]
    d_fake, d_real = losses.d_hinge_loss(fake, real)
    assert float(d_fake) == 0 and float(d_real) == 0  # both beyond the margin
    assert float(losses.g_hinge_loss(fake)) == pytest.approx(2.0)
    assert float(losses.gan_feature_loss(fake, real)) == pytest.approx(1.0)


def test_contextual_loss_prefers_the_same_features_in_any_order():
    torch.manual_seed(0)
    y = torch.randn(1, 16, 6, 6)
    shuffled = y.flatten(2)[:, :, torch.randperm(36)].view(1, 16, 6, 6)
    other = torch.randn(1, 16, 6, 6)
    same, perm, diff = (float(losses.contextual_loss(x, y)) for x in (y, shuffled, other))
    assert same == pytest.approx(perm, abs=1e-5)  # position-free
    assert same < 1e-3 < 0.2 < diff


def test_contextual_loss_centres_each_position_on_the_exemplar_channel_mean():
    """The official PONO variant: both feature sets lose y's per-pixel channel mean, so a per-pixel
    offset shared by x and y changes nothing (a spatial-mean centring would change the loss)."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 16, 6, 6), torch.randn(1, 16, 6, 6)
    shift = torch.randn(1, 1, 6, 6) * 3
    assert float(losses.contextual_loss(x + shift, y + shift)) == pytest.approx(
        float(losses.contextual_loss(x, y)), abs=1e-5)


def test_vgg_input_scaling_defaults_to_what_the_loss_weights_were_tuned_for():
    from core.train.presets import TrainConfig

    assert TrainConfig().vgg_input == "caffe" and all(p.vgg_input == "caffe" for p in TRAIN_PRESETS.values())
    grey = torch.full((1, 3, 2, 2), 0.2)  # 0.6 in [0, 1]
    caffe = VGG19().preprocess(grey)[0, :, 0, 0]
    assert torch.allclose(caffe, (0.6 - torch.tensor([0.485, 0.456, 0.406])) * 255, atol=1e-4)
    tv = VGG19("torchvision").preprocess(grey)[0, :, 0, 0]
    assert torch.allclose(tv, (0.6 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))
    with pytest.raises(InputError, match="vgg_input"):
        TrainConfig(vgg_input="rgb")


def test_discriminator_pads_as_the_official():
    from core.discriminator import MultiScaleDiscriminator

    d = MultiScaleDiscriminator(4, ndf=8, layers=4, scales=2)
    logits = [s[-1].shape[-2:] for s in d(torch.rand(1, 4, 256, 256))]
    assert logits == [(30, 30), (14, 14)]  # 4x4 kernels, padding 1: 256 -> 128 -> 64 -> 32 -> 31 -> 30


def test_vgg_layout_losses_and_loading(tmp_path):
    vgg = VGG19()
    keys = list(vgg.state_dict())
    assert keys[0] == "features.0.weight" and keys[-1] == f"features.{LAYERS['relu5_2'] - 1}.bias"
    feats = vgg(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512] and feats[-1].shape[-1] == 2
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    fm = losses.vgg_feature_matching_loss(vgg(x), [f.detach() + 0.1 for f in vgg(x)])
    fm.backward()  # gradients reach the image through the frozen network
    assert x.grad is not None and float(fm.detach()) == pytest.approx(0.1 * sum(losses.VGG_FM_WEIGHTS), rel=1e-4)

    # torchvision's file: "features.*" plus a classifier (ignored); found in $TORCH_HOME/hub/checkpoints
    state = {k: torch.randn_like(v) for k, v in vgg.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(state, hub / VGG19_FILE)
    loaded = VGG19.from_file(hub / VGG19_FILE)
    assert torch.equal(loaded.features[0].weight, state["features.0.weight"])
    assert find_vgg_weights(tmp_path / "hub" / "checkpoints") == hub / VGG19_FILE
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path))
        assert find_vgg_weights() == hub / VGG19_FILE
        mp.setenv("TORCH_HOME", str(tmp_path / "empty"))
        assert find_vgg_weights() is None
    with pytest.raises(CheckpointError, match="not found"):
        find_vgg_weights(tmp_path / "nope.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not torchvision's VGG19"):
        VGG19.from_file(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        VGG19.from_file(tmp_path / "junk.pth")


# -- data ------------------------------------------------------------------------------------

def test_condition_cache_reads_index_masks_once(tmp_path):
    toy = make_mask_dataset(tmp_path, count=3, size=(80, 96), seed=3)
    items = find_images(toy)
    assert items == [f"images/{i:04d}.png" for i in range(3)]
    cache = ConditionCache(toy, "mask", (64, 64))
    assert cache.status(items[0]) == "missing"
    assert cache.build(items[0]) == "ok" and cache.status(items[0]) == "ok"
    cond = cache.load(items[0])
    assert cond.label.shape == (151, 64, 64) and cond.preview.shape == (64, 64, 3)
    assert torch.equal(cond.label.sum(0), torch.ones(64, 64))  # one-hot survives the compact storage
    from core.conditions.masks import from_index
    from core.imageio import load_image

    expected = from_index(load_image(toy / "masks" / "0000.png")[..., 0], (64, 64)).label
    assert torch.equal(cond.label, expected)
    # a changed condition file is read again; one that cannot be used is skipped, with the reason kept
    os.utime(toy / "masks" / "0000.png", ns=(1, 1))
    assert cache.status(items[0]) == "missing"
    (toy / "masks" / "0001.png").write_bytes(b"broken")
    assert cache.build(items[1]) == "skip" and cache.status(items[1]) == "skip"
    assert "0001.png" in next(cache.folder.rglob("*.skip")).read_text()


def test_condition_cache_reads_openpose_json(tmp_path):
    from core.imageio import save_image

    (tmp_path / "images").mkdir()
    (tmp_path / "poses").mkdir()
    save_image(tmp_path / "images" / "a.png", np.full((120, 80, 3), 200, np.uint8))
    # COCO-18 in the photo's pixels (x, y, confidence): a standing figure, ears and eyes missing
    joints = [(40, 20), (40, 35), (28, 35), (24, 55), (22, 75), (52, 35), (56, 55), (58, 75), (33, 70),
              (32, 90), (32, 110), (47, 70), (48, 90), (48, 110)] + [(0, 0)] * 4
    flat = [v for x, y in joints for v in (x, y, 1.0 if x else 0.0)]
    (tmp_path / "poses" / "a.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    cache = ConditionCache(tmp_path, "pose", (64, 64))
    assert find_images(tmp_path) == ["images/a.png"]
    assert cache.build("images/a.png") == "ok"
    cond = cache.load("images/a.png")
    assert cond.label.shape == (20, 64, 64) and cond.preview.any()
    from core.conditions import from_keypoints
    from core.imageio import fit_points

    points = np.array(joints, dtype=np.float64)
    expected = np.concatenate([fit_points(points, (120, 80), (64, 64)), np.array(flat).reshape(18, 3)[:, 2:]], 1)
    reference = from_keypoints("pose", expected, (64, 64)).label
    assert torch.equal(cond.label, reference)  # k/255 values survive the uint8 storage exactly


def test_training_set_samples_are_reproducible(toy):
    items = find_images(toy)
    cache = ConditionCache(toy, "mask", (64, 64))
    for rel in items:
        cache.build(rel)
    pairs = {items[0]: [items[1], items[2]]}
    ds = TrainingSet(toy, items, cache, seed=5, pairs=pairs, pair_probability=0.5, pair_weight=0.0)
    a, b = ds[(0, 17)], ds[(0, 17)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (3, 64, 64) and a["exemplar_condition"].shape == (151, 64, 64)
    draws = [ds[(0, d)] for d in range(12)]
    kinds = {float(s["sample_weight"]) for s in draws}
    assert kinds == {0.0, 1.0}  # both real pairs (weight 0 here) and pseudo exemplars appear
    pseudo = next(s for s in draws if float(s["sample_weight"]) == 1.0)
    assert not torch.equal(pseudo["exemplar"], pseudo["image"])  # T(x) differs from x
    # a pseudo exemplar's label stays one-hot (nearest resampling)
    assert torch.equal(pseudo["exemplar_condition"].sum(0), torch.ones(64, 64))
    batch = collate(draws[:3])
    assert batch["condition"].shape == (3, 151, 64, 64) and batch["preview"].dtype == torch.uint8


def test_pseudo_pairs_carry_their_ground_truth_correspondence(toy):
    """Every pseudo sample says where each pixel of x lies in T(x): T(x)'s label read there is x's
    label (one-hot masks, nearest), wherever T(x) shows the pixel; real pairs carry no such truth."""
    from core.corr import sample_at

    items = find_images(toy)
    cache = ConditionCache(toy, "mask", (64, 64))
    for rel in items:
        cache.build(rel)
    ds = TrainingSet(toy, items, cache, seed=2, pairs={items[0]: [items[1]]}, pair_probability=1.0)
    for index in (1, 2, 3):
        s = ds[(index, 4)]
        known = s["correspondence_mask"][0] > 0
        assert 0.5 < float(known.float().mean()) < 1 and torch.equal(s["warp_mask"], s["correspondence_mask"])
        positions = s["correspondence"].round().unsqueeze(0).unsqueeze(0)  # (1, 1, 2, H, W)
        seen = sample_at(s["exemplar_condition"][None], positions)[0, :, 0].argmax(0)
        agree = (seen == s["condition"].argmax(0))[known].float().mean()
        assert float(agree) > 0.97, index  # (class borders may round to the neighbour)
    pair = ds[(0, 4)]  # a listed real exemplar
    assert float(pair["correspondence_mask"].sum()) == 0 and bool(pair["warp_mask"].all())


POSE_JOINTS = [(40, 20), (40, 35), (28, 35), (24, 55), (22, 75), (52, 35), (56, 55), (58, 75), (33, 70),
               (32, 90), (32, 110), (47, 70), (48, 90), (48, 110), (37, 17), (43, 17), (0, 0), (0, 0)]


def test_keypoints_move_with_the_grid_and_keep_their_names():
    """A moved keypoint lands on the T(x) pixel that the grid says comes from it; points T(x) does
    not show are dropped; names stay (also when T mirrors), so labels agree with the ground truth."""
    from core.augment import grid_to_pixels, pseudo_exemplar
    from core.train.labels import transform_keypoints

    kp = np.array([(x, y, 1.0 if x else 0.0) for x, y in POSE_JOINTS]) * np.array([1.0, 0.5, 1.0])  # 64x64
    image = torch.zeros(1, 3, 64, 64)
    for seed in range(6):
        pair = pseudo_exemplar(image, generator=torch.Generator().manual_seed(seed))
        moved = transform_keypoints(kp, pair)
        source = grid_to_pixels(pair.grid)[0]  # (2, H, W): where each T(x) pixel comes from in x
        for i in np.flatnonzero(moved[:, 2] > 0):
            x, y = moved[i, :2]
            r, c = int(round(y)), int(round(x))
            assert abs(float(source[0, r, c]) - kp[i, 1]) < 1.0 and abs(float(source[1, r, c]) - kp[i, 0]) < 1.0
        assert 10 <= (moved[:, 2] > 0).sum() <= (kp[:, 2] > 0).sum()
    edge = kp.copy()
    edge[0, :2] = (1, 1)  # a corner of x: a crop removes it
    gone = [transform_keypoints(edge, pseudo_exemplar(image, generator=torch.Generator().manual_seed(s)))[0, 2]
            for s in range(6)]
    assert 0 in gone


def test_pose_pseudo_exemplar_labels_are_redrawn_not_warped(tmp_path):
    """Limb widths and distance values of T(x)'s label are those the extractor draws (redrawn from the
    moved keypoints), not x's label stretched by the zoom and the elastic warp."""
    from core.augment import pseudo_exemplar
    from core.conditions.skeleton import render_pose
    from core.imageio import save_image
    from core.train.labels import transform_keypoints

    (tmp_path / "images").mkdir()
    (tmp_path / "poses").mkdir()
    save_image(tmp_path / "images" / "a.png", np.full((128, 128, 3), 200, np.uint8))
    flat = [v for x, y in POSE_JOINTS for v in (x, y, 1.0 if x else 0.0)]
    (tmp_path / "poses" / "a.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    cache = ConditionCache(tmp_path, "pose", (64, 64))
    assert cache.build("images/a.png") == "ok"
    cond = cache.load("images/a.png")
    assert cond.keypoints is not None and cond.keypoints.shape == (18, 3)
    ds = TrainingSet(tmp_path, ["images/a.png"], cache, seed=0)
    for draw in range(3):
        sample = ds[(0, draw)]
        rng = torch.Generator().manual_seed(draw)  # the sample's own draws, replayed
        pair = pseudo_exemplar(sample["image"][None], cond.label[None], generator=rng)
        assert torch.equal(pair.image[0], sample["exemplar"])
        expected = render_pose(transform_keypoints(cond.keypoints, pair), (64, 64))[0]
        assert torch.equal(sample["exemplar_condition"], expected)
        assert not torch.allclose(sample["exemplar_condition"], pair.label[0], atol=0.05)  # not the warped label


def test_face_pseudo_exemplar_labels_are_redrawn():
    from core.augment import pseudo_exemplar
    from core.conditions.face import render_face
    from core.train.labels import redraw_label, transform_keypoints

    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    kp = np.stack([32 + 14 * np.cos(angle), 30 + 18 * np.sin(angle), np.ones(68)], 1)  # 68 points in 64x64
    region = np.zeros((64, 64), bool)
    region[12:50, 18:47] = True
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x_label = render_face(kp, (64, 64))[0][None]
    for seed in range(3):
        pair = pseudo_exemplar(photo, x_label, generator=torch.Generator().manual_seed(seed))
        label = redraw_label("face", kp, pair, region=region)
        assert label.shape == (10, 64, 64)
        moved_lines = render_face(transform_keypoints(kp, pair), (64, 64))[0][9]
        assert torch.equal(label[9], moved_lines)  # landmark lines drawn from the moved points
        assert not torch.allclose(label[1:9], pair.label[0, 1:9], atol=0.05)  # not the warped distances


def test_pair_list_and_holdout(tmp_path):
    items = ["a.png", "b.png", "c.png"]
    (tmp_path / "p.txt").write_text("# kind: retrieved\na.png,b.png,zzz.png,a.png\nc.png\tb.png\nzzz.png,a.png\n")
    pairs, kind = read_pair_list(tmp_path / "p.txt", items)
    assert pairs == {"a.png": ["b.png"], "c.png": ["b.png"]} and kind == "retrieved"
    (tmp_path / "bad.txt").write_text("a.png\n")
    with pytest.raises(InputError, match="bad.txt:1"):
        read_pair_list(tmp_path / "bad.txt", items)
    many = [f"{i}.png" for i in range(10)]
    train, held = split_holdout(many, 3)
    assert len(held) == 3 and not set(held) & set(train) and split_holdout(many, 3) == (train, held)
    assert split_holdout(many[:2], 3) == (many[:2], [])


def test_sampler_resumes_mid_stream_and_shards_across_ranks():
    full = list(itertools.islice(ResumableSampler(7, seed=3), 20))
    assert sorted(i for i, _ in full[:7]) == list(range(7))  # each epoch visits every sample once
    assert [i for i, _ in full[:7]] != [i for i, _ in full[7:14]]  # reshuffled per epoch
    assert len({d for _, d in full}) == 20  # every draw has its own augmentation seed
    resumed = list(itertools.islice(ResumableSampler(7, seed=3, start=9), 11))
    assert resumed == full[9:]
    ranks = [list(itertools.islice(ResumableSampler(8, rank=r, world=2, seed=3), 4)) for r in (0, 1)]
    assert sorted(i for s in ranks for i, _ in s) == list(range(8))
    assert not {d for _, d in ranks[0]} & {d for _, d in ranks[1]}


# -- checkpoints -----------------------------------------------------------------------------

def test_checkpoints_are_complete_or_absent(tmp_path):
    torch.manual_seed(0)
    model = Warpaint(get_preset("tiny"))
    disc = torch.nn.Conv2d(3, 1, 3)
    state = {"step": 3, "rng": [ckpt.rng_state()], "note": "x"}
    folder = ckpt.save_checkpoint(tmp_path, 3, model, disc, state, keep=2)
    assert ckpt.latest_checkpoint(tmp_path) == folder
    loaded = Warpaint.from_pretrained(tmp_path)  # the output folder itself is a model folder
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    back = ckpt.load_checkpoint(folder)
    assert back["state"]["step"] == 3 and back["ema"] is None
    for step in (6, 9):
        ckpt.save_checkpoint(tmp_path, step, model, disc, {"step": step}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-00000006", "step-00000009"]
    # a half-written checkpoint (killed run) is ignored and cleaned up; a broken "latest" falls back
    partial = tmp_path / "checkpoints" / ".step-00000012-abc"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    (tmp_path / "checkpoints" / "latest").write_text("step-00000012\n")
    (tmp_path / ".model.safetensors.x.tmp").write_bytes(b"half")
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000009"
    ckpt.clean_partial(tmp_path)
    assert not partial.exists() and not (tmp_path / ".model.safetensors.x.tmp").exists()


def test_rng_state_round_trip():
    import random

    state = ckpt.rng_state()
    expected = (torch.rand(2), np.random.rand(2), random.random())
    ckpt.set_rng_state(state)
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]


# -- retrieval -------------------------------------------------------------------------------

def test_retrieval_by_label_histograms(toy, tmp_path):
    a = torch.zeros(3, 8, 8)
    a[1, :4] = 1
    a[2, 4:] = 1
    flipped = a.flip(1)
    other = torch.zeros(3, 8, 8)
    other[0] = 1
    desc = torch.stack([label_descriptor(x) for x in (a, flipped, other, a + 0.01)])
    ranks = rank(desc, 2)
    assert ranks[0].tolist() == [3, 1] and 2 not in ranks[0].tolist()
    items = find_images(toy)
    cache = ConditionCache(toy, "mask", (64, 64))
    for rel in items:
        cache.build(rel)
    ranks, method = retrieve(items, 3, cache=cache)
    assert ranks.shape == (5, 3) and method == "label histogram"
    assert all(i not in row.tolist() for i, row in enumerate(ranks))
    path = write_list(tmp_path / "pairs.txt", items, ranks, method)
    pairs, kind = read_pair_list(path, items)
    assert kind == "retrieved" and len(pairs) == 5 and all(len(v) == 3 for v in pairs.values())


def test_retrieval_by_vgg_features(toy):
    from core.imageio import fit_image, load_image, to_tensor

    items = find_images(toy)
    photos = {rel: to_tensor(fit_image(load_image(toy / rel), (64, 64)))[0] for rel in items}
    photos["copy.png"] = photos[items[2]].flip(-1)  # a mirrored photo has the same global statistics
    names = list(photos)
    torch.manual_seed(0)
    ranks, method = retrieve(names, 2, photo=photos.__getitem__, vgg=VGG19())
    assert method == "VGG19 feature" and ranks.shape == (6, 2)
    assert ranks[names.index("copy.png"), 0] == 2 and ranks[2, 0] == names.index("copy.png")


def test_retrieve_cli_writes_the_list_the_trainer_reads(toy, capsys):
    from core.__main__ import main

    assert main(["retrieve", "--data", str(toy), "--top-k", "2", "--task", "mask", "--size", "64"]) == 0
    assert "label histogram" in capsys.readouterr().out
    pairs, kind = read_pair_list(toy / "pairs.txt", find_images(toy))
    assert kind == "retrieved" and len(pairs) == 5
    (toy / "pairs.txt").unlink()
    assert main(["retrieve", "--data", str(toy), "--method", "vgg", "--vgg-weights", str(toy / "none.pth")]) == 1


# -- one iteration ---------------------------------------------------------------------------

def _flipped_mask_batch() -> dict[str, torch.Tensor]:
    """One random 32x32 mask sample (5 classes) whose exemplar is its own mirror image."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    label = (torch.rand(1, 5, 32, 32, generator=g) > 0.5).float()
    return {"condition": label, "image": image, "exemplar": image.flip(-1), "exemplar_condition": label.flip(-1),
            "sample_weight": torch.ones(1)}


def test_activation_checkpointing_gives_the_same_step():
    """Checkpointed blocks run again in the backward pass; their spectral norms must not move
    (the exemplar encoder runs twice per step), so one step lands on the same weights."""
    from core.train.step import TrainingStep

    cfg = TRAIN_PRESETS["tiny"].replace(batch_size=1)
    model_cfg = cfg.model_config(label_channels=5, task="mask")
    batch = _flipped_mask_batch()
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        learner = TrainingStep(cfg.replace(checkpointing=checkpointing), model_cfg, torch.device("cpu"))
        values, _ = learner(batch)
        results.append((values, learner.model.state_dict(), learner.discriminator.state_dict()))
    (plain, plain_g, plain_d), (ckpt_v, ckpt_g, ckpt_d) = results
    assert ckpt_v["grad_norm_g"] == pytest.approx(plain["grad_norm_g"], rel=1e-5)
    for a, b in ((plain_g, ckpt_g), (plain_d, ckpt_d)):
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_cycle_matrix_is_built_only_when_its_loss_is_on():
    """The cycle warp needs the coarsest level's whole similarity matrix: not built at weight 0."""
    from core.train.step import TrainingStep

    cfg = TRAIN_PRESETS["tiny"].replace(batch_size=1, weight_gan=0, weight_gan_feat=0)
    model_cfg = cfg.model_config(label_channels=5, task="mask")
    batch = _flipped_mask_batch()
    for weight in (0.0, 1.0):
        values, out = TrainingStep(cfg.replace(weight_cycle=weight), model_cfg, torch.device("cpu"))(batch)
        assert (out.levels[0].cycle is not None) == (weight > 0) == ("cycle" in values)
