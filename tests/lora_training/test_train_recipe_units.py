"""Recipe options, unit level: each loss/noise variant, captions, concepts, masks, EMA,
param groups - each changes what it should and nothing else (fixed noise, fake UNet)."""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.lora_training.train import captions_runtime as cr
from modules.lora_training.train import concepts, masks, param_groups
from modules.lora_training.train.config import TrainParams
from modules.lora_training.train.dataset import Item, scan
from modules.lora_training.train.ema import AdapterEMA
from modules.lora_training.train.recipe_loss import Recipe, sample_timesteps
from modules.lora_training.train.step import diffusion_loss


class FakeUNet:
    """Returns a fixed prediction and records its input (so noise/timesteps are observable)."""

    def __init__(self, pred):
        self.pred, self.seen = pred, []

    def __call__(self, noisy, t, **kw):
        self.seen.append((noisy.clone(), t.clone()))
        return (self.pred,)


@pytest.fixture(scope="module")
def sched():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def _setup(bsz=2):
    g = torch.Generator().manual_seed(3)
    lat = torch.randn((bsz, 4, 8, 8), generator=g)
    pred = torch.randn((bsz, 4, 8, 8), generator=g)
    noise = torch.randn((bsz, 4, 8, 8), generator=g)
    cond = (torch.zeros(bsz, 77, 64), torch.zeros(bsz, 32), torch.zeros(bsz, 6))
    return lat, pred, noise, cond


def _loss(sched, recipe=None, mask=None, t=(100, 700), **kw):
    lat, pred, noise, cond = _setup()
    unet = FakeUNet(pred)
    loss = diffusion_loss(unet, sched, lat, *cond, torch.Generator().manual_seed(0), noise=noise,
                          timesteps=torch.tensor(t), recipe=recipe, mask=mask, **kw)
    return float(loss), pred, noise, unet


def test_plain_recipe_draws_exactly_like_the_plain_loop(sched):
    lat, pred, noise, cond = _setup()
    g = torch.Generator().manual_seed(5)
    diffusion_loss(FakeUNet(pred), sched, lat, *cond, g, recipe=Recipe())
    ref = torch.Generator().manual_seed(5)
    torch.randn(lat.shape, generator=ref)
    torch.randint(0, 1000, (2,), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())


def test_loss_types_follow_kohya_formulas(sched):
    plain, pred, noise, _ = _loss(sched)
    assert math.isclose(plain, float(((pred - noise) ** 2).mean()), rel_tol=1e-6)
    l1, *_ = _loss(sched, Recipe(loss_type="l1"))
    assert math.isclose(l1, float((pred - noise).abs().mean()), rel_tol=1e-6)
    for kind in ("huber", "smooth_l1"):
        got, *_ = _loss(sched, Recipe(loss_type=kind, huber_schedule="constant", huber_c=0.3))
        c = 0.3
        root = torch.sqrt((pred - noise) ** 2 + c * c) - c
        want = (2 * c * root if kind == "huber" else 2 * root).mean()
        assert math.isclose(got, float(want), rel_tol=1e-6), kind
    # exponential: c(t) = exp(-alpha t), alpha = -ln(huber_c) / 1000; snr: (1-c)/(1+sigma)^2 + c
    got, *_ = _loss(sched, Recipe(loss_type="huber", huber_schedule="exponential", huber_c=0.1))
    cs = torch.exp(-(-math.log(0.1) / 1000) * torch.tensor([100.0, 700.0])).view(-1, 1, 1, 1)
    assert math.isclose(got, float((2 * cs * (torch.sqrt((pred - noise) ** 2 + cs ** 2) - cs)).mean()), rel_tol=1e-5)
    ac = sched.alphas_cumprod[torch.tensor([100, 700])]
    cs = ((1 - 0.1) / (1 + ((1 - ac) / ac) ** 0.5) ** 2 + 0.1).view(-1, 1, 1, 1)
    got, *_ = _loss(sched, Recipe(loss_type="huber", huber_schedule="snr", huber_c=0.1))
    assert math.isclose(got, float((2 * cs * (torch.sqrt((pred - noise) ** 2 + cs ** 2) - cs)).mean()), rel_tol=1e-5)


def test_debiased_estimation_weights_by_inverse_sqrt_snr(sched):
    from diffusers.training_utils import compute_snr

    _, pred, noise, _ = _loss(sched)
    got, *_ = _loss(sched, Recipe(debiased=True))
    per = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    w = 1 / torch.sqrt(torch.clamp(compute_snr(sched, torch.tensor([100, 700])), max=1000))
    assert math.isclose(got, float((per * w).mean()), rel_tol=1e-6)


def test_mask_ones_is_no_mask_and_zeros_ignore_the_area(sched):
    plain, pred, noise, _ = _loss(sched)
    ones, *_ = _loss(sched, mask=torch.ones(2, 1, 8, 8))
    assert ones == plain
    half = torch.ones(2, 1, 8, 8)
    half[..., 4:] = 0
    got, *_ = _loss(sched, mask=half)
    assert math.isclose(got, float((((pred - noise) ** 2) * half).mean()), rel_tol=1e-6)  # kohya: mean over all


def test_timestep_range(sched):
    g = torch.Generator().manual_seed(0)
    assert sample_timesteps(Recipe(min_timestep=321, max_timestep=321), 4, 1000, g).tolist() == [321] * 4
    t = sample_timesteps(Recipe(min_timestep=200, max_timestep=210), 500, 1000, g)
    assert int(t.min()) >= 200 and int(t.max()) <= 209 and len(set(t.tolist())) > 5
    assert sample_timesteps(Recipe(min_timestep=1000, max_timestep=1000), 1, 1000, g).tolist() == [999]
    lat, pred, _, cond = _setup()
    unet = FakeUNet(pred)
    diffusion_loss(unet, sched, lat, *cond, torch.Generator().manual_seed(1),
                   recipe=Recipe(min_timestep=500, max_timestep=500))
    assert unet.seen[0][1].tolist() == [500, 500]
    with pytest.raises(ValueError):
        TrainParams(min_timestep=600, max_timestep=500)


def test_multires_and_input_perturbation_change_only_their_part(sched):
    lat, pred, noise, cond = _setup()
    t = torch.tensor([400, 400])
    runs = {}
    for name, r in (("plain", Recipe()), ("multires", Recipe(multires_iterations=4, multires_discount=0.3)),
                    ("ip", Recipe(ip_noise_gamma=0.1))):
        unet = FakeUNet(pred)
        loss = diffusion_loss(unet, sched, lat, *cond, torch.Generator().manual_seed(9), timesteps=t, recipe=r)
        runs[name] = (unet.seen[0][0], float(loss))
    assert not torch.equal(runs["plain"][0], runs["multires"][0])
    # input perturbation: the UNet input moves, the target (plain noise) does not -> same noise draw first
    assert not torch.equal(runs["plain"][0], runs["ip"][0])
    g = torch.Generator().manual_seed(9)
    n0 = torch.randn(lat.shape, generator=g)
    assert math.isclose(runs["ip"][1], float(((pred - n0) ** 2).mean()), rel_tol=1e-6)
    from modules.lora_training.train.recipe_loss import pyramid_noise

    big = pyramid_noise(torch.randn(4, 4, 32, 32), torch.Generator().manual_seed(0), 6, 0.3)
    assert abs(float(big.std()) - 1.0) < 1e-5


def test_caption_dropout_shuffle_keep_tokens_and_trigger():
    it = Item("x.png", "a red cat, sks, blue chair, studio light, smiling", (64, 64), (0, 0), (64, 64))
    p = TrainParams(caption_dropout=1.0)
    assert cr.step_captions([it, it], p, 0) == ["", ""]
    assert cr.step_captions([it], TrainParams(), 0) is None  # off: the cached captions
    p = TrainParams(shuffle_tags=True, keep_tokens=1, trigger_word="sks", seed=1)
    seen = set()
    for micro in range(30):
        cap = cr.step_captions([it], p, micro)[0]
        tags = cap.split(", ")
        assert tags[0] == "sks" and tags[1] == "a red cat"  # trigger first, then the kept first tag
        assert sorted(tags) == sorted(t.strip() for t in it.caption.split(","))
        seen.add(cap)
        assert cr.step_captions([it], p, micro) == [cap]  # stateless: same micro-batch, same caption
    assert len(seen) > 3
    some = [cr.step_captions([it], TrainParams(caption_dropout=0.5), m)[0] for m in range(200)]
    assert 60 < some.count("") < 140


def test_kohya_folders_repeats_masks_not_items(tmp_path):
    from tests.lora_training.tiny_sdxl import make_images

    assert concepts.parse_concept_dir("10_my char") == (10, "my char")
    assert concepts.parse_concept_dir("mychar") == (1, "mychar")
    imgs = make_images(tmp_path / "10_mychar", n=2, captions=False)
    make_images(tmp_path / "plain", n=1)
    Image.new("L", (64, 64), 255).save(imgs[0].with_name("img_00.mask.png"))
    (tmp_path / "10_mychar" / "masks").mkdir()
    Image.new("L", (64, 64), 0).save(tmp_path / "10_mychar" / "masks" / "img_01.png")
    items = scan(tmp_path, 64)
    assert len(items) == 3
    by = {it.path: it for it in items}
    a = by[str(imgs[0])]
    assert (a.concept, a.repeats, a.caption) == ("mychar", 10, "mychar")  # kohya: folder text as caption
    assert concepts.find_mask(imgs[0]).name == "img_00.mask.png"
    assert concepts.find_mask(imgs[1]).parent.name == "masks"
    expanded = concepts.expand_repeats(items)
    assert len(expanded) == 21 and [e.path for e in expanded[:10]] == [items[0].path] * 10


def test_mask_follows_the_image_crop(tmp_path):
    img = tmp_path / "wide.png"
    Image.new("RGB", (128, 64)).save(img)
    m = np.zeros((64, 128), np.uint8)
    m[:, :64] = 255  # left half of the file
    Image.fromarray(m).save(tmp_path / "wide.mask.png")
    it = concepts.with_masks([Item(str(img), "", (64, 128), (0, 32), (64, 64))])[0]
    lat = masks.load_mask(it)
    # the centre crop keeps x 32..96: its left half is white, its right half black
    assert lat.shape == (1, 8, 8)
    assert torch.all(lat[..., :4] == 1) and torch.all(lat[..., 4:] == 0)


def test_ema_decay_start_and_swap():
    w = torch.nn.Parameter(torch.zeros(3))
    e = AdapterEMA([w], decay=0.5, start_step=2)
    with torch.no_grad():
        w.fill_(2.0)
    e.update(1)  # before the start step: a copy
    assert torch.equal(e.shadow[0], torch.full((3,), 2.0))
    with torch.no_grad():
        w.fill_(4.0)
    e.update(2)
    assert torch.equal(e.shadow[0], torch.full((3,), 3.0))
    with e.applied():
        assert torch.equal(w.detach(), torch.full((3,), 3.0))
    assert torch.equal(w.detach(), torch.full((3,), 4.0))
    z = AdapterEMA([w], decay=0.0, start_step=0)
    with torch.no_grad():
        w.copy_(torch.tensor([0.1, -7.3, 1e-8]))
    z.update(1)
    assert torch.equal(z.shadow[0], w.detach())


def test_param_groups_loraplus_and_block_lr(tiny_sdxl):
    from diffusers import UNet2DConditionModel

    from modules.lora_training.train import lora_setup

    unet = UNet2DConditionModel.from_pretrained(str(tiny_sdxl), subfolder="unet")
    p = TrainParams(rank=2, alpha=2, lr_unet=1e-3, loraplus_ratio=4.0, unet_block_lr=[1e-4, 2e-4, 3e-4, 4e-4, 5e-4])
    groups = lora_setup.setup(unet, None, None, p)
    out = param_groups.refine(groups, {"unet": unet}, p)
    names = {id(q): n for n, q in unet.named_parameters()}
    assert sum(len(g["params"]) for g in out) == len(groups[0]["params"])
    blocks = param_groups.block_names(unet)
    assert blocks == ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
    for g in out:
        for q in g["params"]:
            n = names[id(q)]
            b = next(i for i, bn in enumerate(blocks) if n.startswith(bn + "."))
            assert g["lr"] == pytest.approx(p.unet_block_lr[b] * (4.0 if ".lora_B." in n else 1.0)), n
    from core.errors import StudioError

    with pytest.raises(StudioError) as exc:
        param_groups.refine(groups, {"unet": unet}, TrainParams(unet_block_lr=[1e-4] * 3))
    assert exc.value.key == "lora.block_lr_count"
    assert param_groups.refine(groups, {"unet": unet}, TrainParams()) is groups


def test_reg_indices_are_a_stateless_cycle():
    seq = [i for m in range(6) for i in concepts.reg_indices(4, m, 2, seed=3)]
    assert sorted(seq[:4]) == [0, 1, 2, 3] and sorted(seq[4:8]) == [0, 1, 2, 3]
    assert concepts.reg_indices(4, 5, 2, 3) == concepts.reg_indices(4, 5, 2, 3)
    random.seed(0)  # the global RNGs play no part
    assert concepts.reg_indices(4, 1, 2, 3) == seq[2:4]


def test_ui_collect_sends_recipe_fields():
    from modules.lora_training import ui

    values = [getattr(TrainParams(), n) for n in ui.FIELDS]
    values[ui.FIELDS.index("sample_prompts")] = ""
    values[ui.FIELDS.index("unet_block_lr")] = "1e-4, 2e-4;3e-4"
    values[ui.FIELDS.index("ema")] = True
    values[ui.FIELDS.index("keep_tokens")] = 2.0
    got = TrainParams.model_validate(ui.collect("p", "", 64, values))
    assert got.unet_block_lr == [1e-4, 2e-4, 3e-4] and got.ema and got.keep_tokens == 2
    assert got.loss_type == "l2" and "loss_type" not in ui.collect("p", "", 64, values)  # defaults not sent


def test_importer_aligns_masks_and_reads_kohya_folders(tmp_path):
    from modules.lora_training.data.kohya_folders import import_kohya_folders
    from modules.lora_training.data.importer import ImportOptions
    from modules.lora_training.data.project import Project

    src = tmp_path / "src"
    (src / "10_mychar").mkdir(parents=True)
    (src / "style").mkdir()
    arr = np.zeros((300, 600, 3), np.uint8)
    arr[:, :300] = 255  # left half white
    Image.fromarray(arr).save(src / "10_mychar" / "wide.png")
    Image.fromarray(arr[..., 0]).save(src / "10_mychar" / "wide.mask.png")  # the same picture as a mask
    Image.fromarray(arr[:256, :256]).save(src / "style" / "sq.png")
    project = Project(tmp_path / "projects", "proj")
    reports = import_kohya_folders(project, src, ImportOptions(resolution=256, mode="crop", min_size=128))
    assert [r.concept for r in reports] == ["mychar", "style"]
    assert project.repeats("mychar") == 10 and project.repeats("style") == 1
    assert reports[0].imported == ["wide.png"]  # the mask is not a training image
    out = project.data_dir / "mychar"
    img = np.asarray(Image.open(out / "wide.png").convert("L")).astype(int)
    mask = np.asarray(Image.open(out / "wide.mask.png")).astype(int)
    assert img.shape == mask.shape == (256, 256)
    assert np.abs(img - mask).max() <= 32  # same resize + crop: aligned (filters differ only at the edge)
    assert 0 < (mask > 128).mean() < 1
    from modules.lora_training.data.project import prepared_images

    assert [p.name for p in prepared_images(project, "mychar")] == ["wide.png"]  # masks are not captioned
    items = scan(project.data_dir, 256)  # the trainer reads concept + repeats from the manifest
    assert {(Path(it.path).name, it.concept, it.repeats) for it in items} == {("wide.png", "mychar", 10),
                                                                              ("sq.png", "style", 1)}


def test_prepare_job_kohya_folders_and_repeats(ctx, tmp_path):
    from modules.lora_training.data.jobs import PrepareParams, run_prepare
    from modules.lora_training.data.project import Project
    from tests.lora_training.helpers import quiet_job
    from tests.lora_training.tiny_sdxl import make_images

    make_images(tmp_path / "src" / "4_hero", n=2, size=256)
    make_images(tmp_path / "one", n=1, size=256)
    res = run_prepare(quiet_job(tmp_path / "j"), PrepareParams(project="k", source_dir=str(tmp_path / "src"),
                                                               resolution=256, kohya_folders=True), ctx)
    assert res["concepts"]["hero"]["repeats"] == 4 and res["imported"] == 2
    run_prepare(quiet_job(tmp_path / "j2"), PrepareParams(project="k", concept="side", repeats=3,
                                                          source_dir=str(tmp_path / "one"), resolution=256), ctx)
    project = Project.from_ctx(ctx, "k")
    assert project.repeats("side") == 3 and project.repeats("hero") == 4


def test_text_cache_used_unless_the_step_caption_is_new(monkeypatch):
    from modules.lora_training.train import session as sm

    s = sm.Session(TrainParams(), None, None, [], [], "cpu", torch.float32)
    s.text = {"a": {"embeds": torch.zeros(77, 64), "pooled": torch.zeros(32)},
              "": {"embeds": torch.full((77, 64), 2.0), "pooled": torch.zeros(32)}}
    calls = []
    monkeypatch.setattr(sm, "tokenize", lambda toks, caps: caps)
    monkeypatch.setattr(sm, "time_ids", lambda *a, **k: torch.zeros(1, 6))
    monkeypatch.setattr(sm, "encode_prompt", lambda tes, caps: calls.append(caps) or (torch.ones(1, 77, 64),
                                                                                       torch.ones(1, 32)))
    it = Item("x.png", "a", (64, 64), (0, 0), (64, 64))
    assert float(s.conditioning([it])[0].sum()) == 0 and not calls  # options off: the cache
    assert float(s.conditioning([it], [""])[0].mean()) == 2.0 and not calls  # dropout: the cached empty caption
    assert float(s.conditioning([it], ["a, b"])[0].mean()) == 1.0 and calls == [["a, b"]]  # shuffled: encoded


def test_data_ui_sends_repeats_and_kohya_folders(bare_ctx, tmp_path):
    from modules.lora_training.data import ui_data

    sent = []
    bare_ctx.jobs.submit = lambda kind, params: sent.append((kind, params)) or "job1"
    ui_data.start_prepare(bare_ctx, "p", "c", str(tmp_path), None, 256, "buckets", 128, False, True, True, 5, True)
    kind, params = sent[0]
    assert kind == "lora.prepare" and params.repeats == 5 and params.kohya_folders
    ui_data.start_prepare(bare_ctx, "p", "c", str(tmp_path), None, 256, "buckets", 128, False, True, True)
    assert "repeats" not in sent[1][1].model_fields_set  # 1 = leave the concept's repeats alone
