"""Our IFNet against the published forward (transcribed in reference_rife.py), and loading."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.errors import StudioError
from modules.frame_interpolation.engine import Interpolator
from modules.frame_interpolation.ifnet import IFNet, IFNetConfig
from modules.frame_interpolation.weights import detect_config, load_ifnet
from tests.frame_interpolation import reference_rife as ref

TINY46 = (12, 10, 8, 8)
TINY425 = (12, 10, 8, 8, 8)


def _randomize(net: torch.nn.Module, seed: int) -> None:
    """Weights large enough that flows are many pixels: a wrong warp or order shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            std = 0.5 if name.endswith("beta") else 0.08
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if name.endswith("beta") else 0.0))


def _images(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h, w + 16, generator=g), 5, 1, 2)
    return base[..., :w].contiguous(), base[..., 9:w + 9].contiguous()  # a 9 px horizontal move


def _save(net: torch.nn.Module, path, prefix: str = "module.") -> None:
    torch.save({prefix + k: v for k, v in net.state_dict().items()}, path)


@pytest.mark.parametrize("variant", ["4.6", "4.25"])
def test_forward_matches_published_code(tmp_path, variant):
    torch.manual_seed(0)
    reference = ref.RefIFNet46(TINY46) if variant == "4.6" else ref.RefIFNet425(TINY425, hidden=6, enc=4)
    _randomize(reference, 1)
    reference.eval()
    path = tmp_path / "flownet.pkl"
    _save(reference, path)  # Practical-RIFE files carry DataParallel's "module." prefix
    ours = load_ifnet(path)
    assert ours.config.variant == variant
    base = [8.0, 4.0, 2.0, 1.0] if variant == "4.6" else [16.0, 8.0, 4.0, 2.0, 1.0]
    img0, img1 = _images(128, 256)
    with torch.no_grad():
        for scale in (1.0, 0.5):
            for t in (0.5, 0.2):
                want = reference(torch.cat((img0, img1), 1), t, [s / scale for s in base])
                got = ours(img0, img1, t, scale=scale)
                assert got.shape == want.shape == (1, 3, 128, 256)
                assert torch.allclose(got, want, atol=2e-5), (scale, t, (got - want).abs().max())
            # the network really moves pixels: the result is far from a plain cross-fade
            assert (want - (img0 * (1 - t) + img1 * t)).abs().mean() > 0.01
        # batched timesteps (tensor form) equal the one-by-one results
        ts = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
        want = torch.cat([reference(torch.cat((img0, img1), 1), ts[i:i + 1], base) for i in range(2)])
        assert torch.allclose(ours(img0, img1, ts), want, atol=2e-5)


@pytest.mark.parametrize("variant", ["4.6", "4.25"])
def test_full_size_layout_matches_published(tmp_path, variant):
    reference = ref.RefIFNet46() if variant == "4.6" else ref.RefIFNet425()
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    ours = IFNet(IFNetConfig.full(variant))
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want
    assert len(want) == (120 if variant == "4.6" else 158)
    # a real-size file with a training-only key goes through the real loader
    state = {"module." + k: v for k, v in reference.state_dict().items()}
    state["module.teacher.conv0.0.0.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "flownet.pkl")
    net = load_ifnet(tmp_path / "flownet.pkl")
    assert net.config == IFNetConfig.full(variant)
    assert torch.equal(net.block0.conv0[0][0].weight, reference.block0.conv0[0][0].weight)


def test_interpolator_pads_crops_and_reuses_features():
    torch.manual_seed(0)
    net = IFNet(IFNetConfig("4.25", TINY425, 6, 4))
    _randomize(net, 2)
    interp = Interpolator(net, batch=2)
    assert interp.multiple == 64 and interp.pad_size(50, 70) == (64, 128)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    outs = interp.interpolate_arrays(a, b, [0.25, 0.5, 0.75])
    assert len(outs) == 3 and all(o.shape == (50, 70, 3) and o.dtype == np.uint8 for o in outs)
    pa, pb = interp.prepare(a), interp.prepare(b)
    with torch.no_grad():
        direct = net(pa.tensor, pb.tensor, 0.5)[:, :, :50, :70].clamp(0, 1) * 255
    assert np.abs(direct.round()[0].permute(1, 2, 0).numpy() - outs[1]).max() <= 1
    assert not np.array_equal(outs[0], outs[2])
    with pytest.raises(StudioError) as e:
        Interpolator(net, scale=0.3)
    assert e.value.key == "rife.bad_scale"


def test_unknown_and_bad_files_are_rejected_clearly(tmp_path):
    other = {"conv1.weight": torch.zeros(8, 3, 3, 3)}
    torch.save(other, tmp_path / "resnet.pth")
    with pytest.raises(StudioError) as e:
        load_ifnet(tmp_path / "resnet.pth")
    assert e.value.key == "rife.unknown_weights" and "block0" in e.value.params["detail"]

    reference = ref.RefIFNet425(TINY425, hidden=6, enc=4)
    state = dict(reference.state_dict())
    state["block2.convblock.3.conv.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save(state, tmp_path / "broken.pkl")
    with pytest.raises(StudioError) as e:
        load_ifnet(tmp_path / "broken.pkl")
    assert e.value.key == "rife.unknown_weights" and "block2.convblock.3.conv.weight" in e.value.params["detail"]

    three_blocks = {k: v for k, v in ref.RefIFNet46(TINY46).state_dict().items() if not k.startswith("block3")}
    with pytest.raises(StudioError, match="3 blocks"):
        detect_config(three_blocks, "x.pkl")

    (tmp_path / "text.pkl").write_text("not weights")
    with pytest.raises(StudioError) as e:
        load_ifnet(tmp_path / "text.pkl")
    assert e.value.key == "models.bad_weights"

    class Evil:  # a pickle that would run code: weights_only refuses it
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"block0.x": Evil()}, protocol=2))
    with pytest.raises(StudioError) as e:
        load_ifnet(tmp_path / "evil.pkl")
    assert e.value.key == "models.bad_weights"
