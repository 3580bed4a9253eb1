"""Fast style networks: pytorch/examples layout loading, stylising, training, jobs."""
from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from core.errors import StudioError
from core.jobs import ConsoleJob
from modules.style_transfer import resources as res
from modules.style_transfer.fast import ApplySettings, stylize_image
from modules.style_transfer.imageops import pil_to_tensor
from modules.style_transfer.params import FastApplyParams, FastTrainParams
from modules.style_transfer.runners import run_fast_apply, run_fast_train
from modules.style_transfer.train import FastTrainSettings, train_fast
from modules.style_transfer.transformer_net import TransformerNet, load_transformer_net, stylize
from modules.style_transfer.vgg import VGG19Features
from tests.style_transfer.helpers import StopAfter, pattern_image, vgg19_state_dict

# A sample of the key names in pytorch/examples' published .pth files (mosaic.pth etc.).
UPSTREAM_KEYS = ["conv1.conv2d.weight", "conv1.conv2d.bias", "in1.weight", "in1.bias", "conv3.conv2d.weight",
                 "res1.conv1.conv2d.weight", "res1.in1.weight", "res5.in2.bias", "deconv1.conv2d.weight",
                 "in4.weight", "deconv2.conv2d.bias", "in5.bias", "deconv3.conv2d.weight", "deconv3.conv2d.bias"]


def _random_net(seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet()
    with torch.no_grad():  # non-trivial affine IN parameters, as a trained file has
        for name, p in net.named_parameters():
            if re.search(r"in\d+\.(weight|bias)$", name):
                p.copy_(torch.rand_like(p) + (0.5 if name.endswith("weight") else -0.5))
    return net.eval()


def _old_style_file(net: TransformerNet, path) -> None:
    """Save as a file from old PyTorch: IN running stats included (upstream deletes them)."""
    sd = dict(net.state_dict())
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.InstanceNorm2d):
            sd[f"{name}.running_mean"] = torch.zeros(mod.num_features)
            sd[f"{name}.running_var"] = torch.ones(mod.num_features)
    assert "res3.in2.running_var" in sd
    torch.save(sd, path)


def test_transformer_net_loads_examples_layout_with_old_running_stats(tmp_path):
    net = _random_net()
    keys = set(net.state_dict())
    assert set(UPSTREAM_KEYS) <= keys and len(keys) == 62  # 16 convs + 15 affine IN, weight+bias each
    _old_style_file(net, tmp_path / "mosaic.pth")
    loaded = res.load_network(tmp_path / "mosaic.pth")
    x = torch.rand(1, 3, 36, 44) * 255
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-4)
    with pytest.raises(RuntimeError):  # strict: a foreign state dict is refused, not half-loaded
        load_transformer_net({"conv1.conv2d.weight": torch.zeros(32, 3, 9, 9)})
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "bad.pth")
    with pytest.raises(StudioError) as err:
        res.load_network(tmp_path / "bad.pth")
    assert err.value.key == "style.bad_network"


def test_stylize_any_size_keeps_alpha_and_colours():
    net = _random_net(1)
    with torch.no_grad():
        y = stylize(net, torch.rand(1, 3, 37, 51))
    assert y.shape == (1, 3, 37, 51) and float(y.min()) >= 0 and float(y.max()) <= 1
    img = pattern_image(50, 38, 3, mode="RGBA")
    out = stylize_image(net, img, ApplySettings(max_side=32))
    assert out.mode == "RGBA" and out.size == (50, 38)
    assert list(out.getchannel("A").getdata()) == list(img.getchannel("A").getdata())
    half = stylize_image(net, img.convert("RGB"), ApplySettings(strength=0.0))
    assert abs(pil_to_tensor(half) - pil_to_tensor(img.convert("RGB"))).max() < 2 / 255


def _vgg():
    v = VGG19Features(("relu4_4",))
    v.load_features(vgg19_state_dict())
    return v


def _content_dir(tmp_path, n=4):
    d = tmp_path / "content"
    d.mkdir()
    for i in range(n):
        pattern_image(72, 64, 10 + i).save(d / f"c{i}.png")
    return d


def test_training_steps_reduce_the_loss(tmp_path):
    d = _content_dir(tmp_path)
    s = FastTrainSettings(image_size=48, batch_size=2, steps=6, lr=3e-3, preview_every=0, checkpoint_every=0,
                          style_layers=("relu1_2", "relu2_2", "relu3_4"))
    previews, ckpts = [], []
    r = train_fast(_vgg(), sorted(d.glob("*.png")), pil_to_tensor(pattern_image(64, 64, 2)), s, Image.open,
                   on_checkpoint=lambda net, step, final: ckpts.append((step, final)))
    assert r.steps_done == 6 and not r.stopped
    assert sum(r.losses[-2:]) / 2 < 0.8 * sum(r.losses[:2]) / 2, r.losses
    assert ckpts == [(6, True)] and not previews


def test_train_job_stop_saves_a_loadable_network(style_ctx, tmp_path):
    d = _content_dir(tmp_path, 3)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    pattern_image(64, 64, 2).save(tmp_path / "style.png")
    p = FastTrainParams(style=str(tmp_path / "style.png"), content_dir=str(d), name="my style", image_size=48,
                        batch_size=2, steps=100, preview_every=2, checkpoint_every=0,
                        style_layers=["relu1_2", "relu2_2"])
    job = ConsoleJob("style.fast_train", p, workdir=tmp_path / "job", verbose=False)
    stop = StopAfter(3)
    job.should_stop = stop
    out = run_fast_train(job, p, style_ctx)
    assert out["stopped"] and out["steps"] == 3
    path = style_ctx.path("STYLE_DIR") / "my style.pth"
    assert out["network"] == str(path) and path.is_file()
    net = res.load_network(path)  # a stopped run is a usable network
    with torch.no_grad():
        assert torch.isfinite(stylize(net, torch.rand(1, 3, 32, 32))).all()
    kinds = [(e[0], e[-1]) for e in job.events if e[0] == "artifact"]
    assert ("artifact", "model") in kinds and ("artifact", "preview") in kinds
    losses = [e for e in job.events if e[0] == "metric" and e[4] == "loss"]
    assert [e[3] for e in losses] == [1, 2, 3]
    assert any(e[0] == "log" and "broken.png" in e[4] for e in job.events)
    again = run_fast_train(ConsoleJob("style.fast_train", p, workdir=tmp_path / "j2", verbose=False),
                           p.model_copy(update={"steps": 1, "init_from": "my style"}), style_ctx)
    assert again["network"].endswith("my style_2.pth")  # never overwrites an existing network


def test_apply_job_on_folder_keeps_going_past_a_broken_file(style_ctx, tmp_path):
    _old_style_file(_random_net(2), style_ctx.path("STYLE_DIR") / "candy.pth")
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    pattern_image(40, 30, 1).save(src / "a.jpg")
    pattern_image(30, 40, 2, mode="RGBA").save(src / "sub" / "b.png")
    (src / "c.png").write_bytes(b"")
    before = (src / "a.jpg").read_bytes()
    pattern_image(20, 20, 4).save(tmp_path / "a.png")  # same stem as in/a.jpg, both given as files
    p = FastApplyParams(model="candy", inputs=[str(src), str(tmp_path / "a.png"), str(src / "a.jpg")],
                        output_dir="out", original_colors=True)
    job = ConsoleJob("style.fast_apply", p, workdir=tmp_path / "job", verbose=False)
    out = run_fast_apply(job, p, style_ctx)
    assert out == {"output_dir": str(style_ctx.path("OUTPUTS_DIR") / "out"), "written": 4, "failed": 1, "stopped": False}
    assert Image.open(style_ctx.path("OUTPUTS_DIR") / "out" / "a.png").size == (20, 20)
    assert Image.open(style_ctx.path("OUTPUTS_DIR") / "out" / "a_2.png").size == (40, 30)  # no output overwritten
    a = Image.open(style_ctx.path("OUTPUTS_DIR") / "out" / "in" / "a.png")
    b = Image.open(style_ctx.path("OUTPUTS_DIR") / "out" / "in" / "sub" / "b.png")
    assert a.size == (40, 30) and a.mode == "RGB" and b.size == (30, 40) and b.mode == "RGBA"
    assert (src / "a.jpg").read_bytes() == before
    assert any(e[0] == "log" and e[3] == "warning" and "c.png" in e[4] for e in job.events)
    with pytest.raises(StudioError) as err:
        run_fast_apply(job, p.model_copy(update={"model": "nope"}), style_ctx)
    assert err.value.key == "style.network_missing"


def test_apply_job_on_video_keeps_audio_and_stop_keeps_a_playable_file(style_ctx, tmp_path):
    from core.media import VideoReader
    from tests.core.media_fixtures import make_test_video

    torch.manual_seed(3)
    torch.save(TransformerNet().state_dict(), style_ctx.path("STYLE_DIR") / "udnie.pth")
    src = make_test_video(tmp_path / "clip.mp4", n_frames=6, size=(48, 32))
    p = FastApplyParams(model="udnie.pth", inputs=[str(src)], output_dir="out", crf=30)
    job = ConsoleJob("style.fast_apply", p, workdir=tmp_path / "job", verbose=False)
    assert run_fast_apply(job, p, style_ctx)["written"] == 1
    with VideoReader(style_ctx.path("OUTPUTS_DIR") / "out" / "clip.mp4") as r:
        assert r.frame_count == 6 and (r.width, r.height) == (48, 32) and r.has_audio
    job2 = ConsoleJob("style.fast_apply", p, workdir=tmp_path / "job2", verbose=False)
    job2.should_stop = StopAfter(4)  # 1 check before the file, then 3 frames
    out = run_fast_apply(job2, p.model_copy(update={"output_dir": "stopped"}), style_ctx)
    assert out["stopped"]
    with VideoReader(style_ctx.path("OUTPUTS_DIR") / "stopped" / "clip.mp4") as r:
        assert r.frame_count == 3
        assert len(list(r)) == 3
