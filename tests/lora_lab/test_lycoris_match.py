"""The core reader against the library the trainer uses for LoCon/LoHa/LoKr and LyCORIS DoRA:
a layer patched with our delta gives the same output as the same layer run through the
lycoris-lora module whose state_dict was written to the file."""
from __future__ import annotations

import pytest
import torch

from core.lora_apply import LoraPatcher
from core.lora_file import read_lora
from tests.lora_lab import lora_files as lf

CASES = [
    ("locon", lf.LINEAR, {}), ("locon", lf.CONV, {}), ("loha", lf.LINEAR, {}), ("loha", lf.CONV, {}),
    ("lokr", lf.LINEAR, {"factor": 4}), ("lokr", lf.CONV, {"factor": 4}),
    ("locon", lf.LINEAR, {"weight_decompose": True, "wd_on_out": True}),
    ("locon", lf.LINEAR, {"weight_decompose": True, "wd_on_out": False}),
    ("loha", lf.TE2, {}),
]


@pytest.fixture(scope="module")
def pipe(tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl))


@pytest.mark.parametrize("kind,name,extra", CASES, ids=[f"{k}-{n.split('_')[1]}-{i}" for i, (k, n, _) in enumerate(CASES)])
def test_delta_matches_lycoris_forward(pipe, tmp_path, kind, name, extra):
    pytest.importorskip("lycoris")
    from lycoris.modules.locon import LoConModule
    from lycoris.modules.loha import LohaModule
    from lycoris.modules.lokr import LokrModule

    cls = {"locon": LoConModule, "loha": LohaModule, "lokr": LokrModule}[kind]
    patcher = LoraPatcher(pipe)
    layer = patcher.table[name]
    torch.manual_seed(0)
    net = cls(name, layer, multiplier=1.0, lora_dim=4, alpha=2.0, **extra)
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if pname == "dora_scale":
                p.mul_(1 + 0.2 * torch.rand_like(p))
            else:
                p.normal_(0, 0.1)
    x = torch.randn(2, 32, 8, 8) if isinstance(layer, torch.nn.Conv2d) else torch.randn(3, layer.in_features)
    with torch.no_grad():
        y_base = layer(x)
        net.apply_to()
        y_lyc = layer(x)
        net.restore()
        assert not torch.allclose(y_base, y_lyc)
    path = lf.save(tmp_path / f"{kind}.safetensors", {f"{name}.{k}": v for k, v in net.state_dict().items()})
    lora = read_lora(path)
    report = patcher.apply([(lora, 1.0)])
    assert report.applied == 1 and not report.unmatched
    with torch.no_grad():
        y_ours = layer(x)
    patcher.restore()
    torch.testing.assert_close(y_ours, y_lyc, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(layer(x), y_base)
