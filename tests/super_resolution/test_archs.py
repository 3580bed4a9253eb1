"""Our networks against straightforward reference forwards written from the published papers/code.

The references read the state dict directly in the *published* key names (old ESRGAN
sequential names, BasicSR names, SRVGG body indices), so a wrong key mapping, a missing
0.2 residual scale, a wrong LeakyReLU slope or unshuffle order makes them differ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from modules.super_resolution.detect import load_model
from tests.super_resolution.conftest import compact_sd, new_rrdb_sd, to_old_keys


def _conv(sd, name, x):
    return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], padding=1)


def _rdb(x, conv):  # conv(j, inp) -> output of the j-th conv of this dense block
    feats = [x]
    for j in range(1, 6):
        y = conv(j, torch.cat(feats, 1))
        if j < 5:
            feats.append(F.leaky_relu(y, 0.2))
    return y * 0.2 + x


def ref_old_esrgan(sd, x, nb, n_up):
    """Original ESRGAN (model.0 conv, ShortcutBlock of RRDBs + conv, upconvs, HR convs)."""
    fea = _conv(sd, "model.0", x)
    t = fea
    for b in range(nb):
        inp = t
        for r in (1, 2, 3):
            t = _rdb(t, lambda j, z, b=b, r=r: _conv(sd, f"model.1.sub.{b}.RDB{r}.conv{j}.0", z))
        t = t * 0.2 + inp
    t = fea + _conv(sd, f"model.1.sub.{nb}", t)
    for u in range(1, n_up + 1):
        t = F.leaky_relu(_conv(sd, f"model.{3 * u}", F.interpolate(t, scale_factor=2, mode="nearest")), 0.2)
    t = F.leaky_relu(_conv(sd, f"model.{3 * n_up + 2}", t), 0.2)
    return _conv(sd, f"model.{3 * n_up + 4}", t)


def ref_basicsr(sd, x, nb, n_up, unshuffle):
    """BasicSR RRDBNet with Real-ESRGAN's pixel_unshuffle (view/permute, as in arch_util)."""
    if unshuffle > 1:
        b, c, hh, hw = x.shape
        s = unshuffle
        x = x.view(b, c, hh // s, s, hw // s, s).permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, hh // s, hw // s)
    feat = _conv(sd, "conv_first", x)
    t = feat
    for b in range(nb):
        inp = t
        for r in (1, 2, 3):
            t = _rdb(t, lambda j, z, b=b, r=r: _conv(sd, f"body.{b}.rdb{r}.conv{j}", z))
        t = t * 0.2 + inp
    feat = feat + _conv(sd, "conv_body", t)
    for u in range(1, n_up + 1):
        feat = F.leaky_relu(_conv(sd, f"conv_up{u}", F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
    return _conv(sd, "conv_last", F.leaky_relu(_conv(sd, "conv_hr", feat), 0.2))


def ref_srvgg(sd, x, scale):
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    out = x
    for i in range(0, last, 2):
        out = F.prelu(_conv(sd, f"body.{i}", out), sd[f"body.{i + 1}.weight"])
    out = F.pixel_shuffle(_conv(sd, f"body.{last}", out), scale)
    return out + F.interpolate(x, scale_factor=scale, mode="nearest")


def _close(a, b):
    assert a.shape == b.shape
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), float((a - b).abs().max())


def test_old_esrgan_x4_and_x8_match_reference(tmp_path):
    x = torch.rand(1, 3, 12, 10)
    for n_up in (2, 3):
        sd = to_old_keys(new_rrdb_sd(nb=2, n_up=n_up, seed=n_up), n_up)
        p = tmp_path / f"old_x{2 ** n_up}.pth"
        torch.save(sd, p)
        model, spec = load_model(p)
        assert (spec.arch, spec.scale, spec.dialect, spec.depth) == ("rrdb", 2 ** n_up, "old", 2)
        with torch.no_grad():
            _close(model(x), ref_old_esrgan(sd, x, 2, n_up))


def test_realesrgan_x2_unshuffle_params_ema_matches_reference(tmp_path):
    ema, plain = new_rrdb_sd(unshuffle=2, seed=3), new_rrdb_sd(unshuffle=2, seed=4)
    p = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": ema, "params": plain}, p)
    model, spec = load_model(p)
    assert (spec.scale, spec.unshuffle, spec.in_ch, spec.dialect) == (2, 2, 3, "new")
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        _close(model(x), ref_basicsr(ema, x, 1, 2, 2))  # params_ema preferred, like Real-ESRGAN
        # odd sizes: padded then cropped to exactly 2x
        assert model(torch.rand(1, 3, 9, 7)).shape[-2:] == (18, 14)


def test_x1_unshuffle4_and_params_only(tmp_path):
    sd = new_rrdb_sd(unshuffle=4, seed=5)
    p = tmp_path / "x1.pth"
    torch.save({"params": sd}, p)
    model, spec = load_model(p)
    assert (spec.scale, spec.unshuffle) == (1, 4)
    x = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        _close(model(x), ref_basicsr(sd, x, 1, 2, 4))


def test_srvgg_compact_matches_reference(tmp_path):
    from safetensors.torch import save_file

    for scale in (2, 4):
        sd = compact_sd(nf=8, nc=3, scale=scale, seed=scale)
        p = tmp_path / f"realesr-compact-x{scale}.safetensors"
        save_file(sd, str(p))
        model, spec = load_model(p)
        assert (spec.arch, spec.scale, spec.depth, spec.num_feat) == ("compact", scale, 3, 8)
        x = torch.rand(1, 3, 9, 11)
        with torch.no_grad():
            _close(model(x), ref_srvgg(sd, x, scale))
