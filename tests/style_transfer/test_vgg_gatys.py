"""VGG19 extractor against a hand-written reference forward; Gatys optimisation and Stop."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modules.style_transfer.gatys import GatysSettings, run_gatys, scale_sizes
from modules.style_transfer.imageops import keep_colors, pil_to_tensor, to_space
from modules.style_transfer.layers import LAYER_NAMES, VGG19_CFG
from modules.style_transfer.vgg import VGG19Features
from tests.style_transfer.helpers import StopAfter, pattern_image, vgg19_state_dict

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def reference_vgg19(x: torch.Tensor, sd: dict) -> dict[str, torch.Tensor]:
    """VGG19 `features` written out with functional ops on the raw state dict."""
    h = (x - MEAN) / STD
    out, idx, block, conv = {}, 0, 1, 1
    for v in VGG19_CFG:
        if v == "M":
            h = F.max_pool2d(h, 2, 2)
            out[f"pool{block}"] = h
            block, conv, idx = block + 1, 1, idx + 1
        else:
            h = F.relu(F.conv2d(h, sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"], padding=1))
            out[f"relu{block}_{conv}"] = h
            conv, idx = conv + 1, idx + 2
    return out


def test_layer_names_follow_torchvision_indices():
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[0] == "conv1_1" and LAYER_NAMES[1] == "relu1_1" and LAYER_NAMES[4] == "pool1"
    assert LAYER_NAMES[22] == "relu4_2" and LAYER_NAMES[29] == "relu5_1" and LAYER_NAMES[36] == "pool5"


@pytest.mark.parametrize("prefix", ["features.", "module.features."])
def test_vgg19_matches_reference_forward(prefix):
    sd = vgg19_state_dict(seed=3)  # torchvision keys + classifier keys (a full vgg19 state dict)
    wanted = ["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1", "pool4"]
    vgg = VGG19Features(wanted)
    vgg.load_features({k.replace("features.", prefix): v for k, v in sd.items()})
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = vgg(x, wanted)
    ref = reference_vgg19(x, sd)
    for name in wanted:
        assert got[name].shape == ref[name].shape
        assert torch.allclose(got[name], ref[name], atol=1e-5, rtol=1e-4), name
    assert got["relu5_1"].abs().sum() > 0  # the comparison is not between two zero tensors
    assert len(vgg.features) == 30  # built only up to relu5_1 (index 29)


def test_vgg19_rejects_incomplete_or_wrong_weights():
    sd = vgg19_state_dict()
    vgg = VGG19Features(["relu3_1"])
    with pytest.raises(KeyError):
        vgg.load_features({k: v for k, v in sd.items() if not k.startswith("features.5.")})
    sd["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(ValueError):
        vgg.load_features(sd)


def _vgg(layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2")) -> VGG19Features:
    v = VGG19Features(layers)
    v.load_features(vgg19_state_dict())
    return v


def _small(**kw) -> GatysSettings:
    base = dict(size=48, steps=6, style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"), preview_every=0)
    base.update(kw)
    return GatysSettings(**base)


def test_gatys_loss_decreases_lbfgs_and_adam():
    vgg = _vgg()
    content = pil_to_tensor(pattern_image(64, 48, 1))
    styles = [(pil_to_tensor(pattern_image(48, 48, 2)), 1.0), (pil_to_tensor(pattern_image(40, 56, 5)), 0.5)]
    for opt in ("lbfgs", "adam"):
        r = run_gatys(vgg, content, styles, _small(optimizer=opt, steps=8))
        assert r.steps_done == 8 and not r.stopped
        assert r.losses[-1] < 0.7 * max(r.losses[:2]), (opt, r.losses)
        assert r.image.shape == (1, 3, 36, 48)
        assert not torch.allclose(r.image, F.interpolate(content, size=(36, 48), mode="bilinear", antialias=True),
                                  atol=1e-3)


def test_gatys_stop_returns_latest_image_within_one_step():
    vgg = _vgg()
    content = pil_to_tensor(pattern_image(64, 64, 1))
    stop = StopAfter(3)
    previews = []
    r = run_gatys(vgg, content, [(pil_to_tensor(pattern_image(48, 48, 2)), 1.0)],
                  _small(steps=50, scales=2, min_scale_size=16, preview_every=2), should_stop=stop,
                  on_preview=lambda img, step: previews.append(step))
    assert r.stopped and r.steps_done == 3 and stop.calls == 4 and r.total_steps == 100
    assert r.image.shape == (1, 3, 48, 48)  # stopped at the coarse scale: brought to the asked size
    assert previews == [2]
    assert 0.0 <= float(r.image.min()) and float(r.image.max()) <= 1.0


def test_scale_sizes_coarse_to_fine():
    s = GatysSettings(size=512, scales=3)
    assert scale_sizes(1024, 768, s) == [(128, 96), (256, 192), (512, 384)]
    assert scale_sizes(100, 100, GatysSettings(size=100, scales=4, min_scale_size=40)) == [(50, 50), (100, 100)]


@pytest.mark.parametrize("space", ["ycbcr", "yiq"])
def test_original_colors_keep_content_chroma(space):
    content = pil_to_tensor(pattern_image(32, 32, 1)) * 0.6 + 0.2  # inside the gamut: no clamping
    styled = pil_to_tensor(pattern_image(32, 32, 4)) * 0.5 + 0.25
    out = keep_colors(styled, content, space)
    a, b, c = to_space(out, space), to_space(content, space), to_space(styled, space)
    assert torch.allclose(a[:, 1:], b[:, 1:], atol=2e-3)
    assert torch.allclose(a[:, :1], c[:, :1], atol=2e-3)
