"""Mixed precision (bf16 autocast; fp16 with GradScaler) keeps the LoRA weights in fp32 and
finite, text encoders and gradient checkpointing included; the accelerate path (used by
`accelerate launch`) gives the same weights as the plain single process."""
from __future__ import annotations

import torch

from tests.lora_training.helpers import adapter, data, params, quiet_job


def test_bf16_fp16_and_accelerate_paths(ctx, tiny_sdxl, tmp_path):
    from accelerate import Accelerator

    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    for prec, te in (("bf16", True), ("fp16", False)):
        res = train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=2, precision=prec, train_text_encoder=te,
                                                gradient_checkpointing=True, output_name=f"x_{prec}"), ctx)
        a = adapter(res["state"])
        assert res["steps"] == 2 and torch.isfinite(torch.tensor(res["loss"]))
        assert {v.dtype for v in a.values()} == {torch.float32}
        assert all(torch.isfinite(v).all() for v in a.values())
        assert any(k.startswith("te1.") for k in a) == te
        st = torch.load(res["state"] + "/state.pt", weights_only=True)
        assert bool(st["scaler"]) == (prec == "fp16")  # GradScaler state only when it is on

    plain = train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=2, output_name="plain"), ctx)
    dist = train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=2, output_name="dist"), ctx,
                 dist=Accelerator(cpu=True))
    a, b = adapter(plain["state"]), adapter(dist["state"])
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
