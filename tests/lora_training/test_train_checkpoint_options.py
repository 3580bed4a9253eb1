"""v-prediction + zero terminal SNR (detected or set), a separate VAE, continuing a LoRA file."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from core.errors import StudioError
from core.sdxl import schedule
from modules.lora_training.train.step import diffusion_loss
from tests.lora_training.helpers import data, params, quiet_job
from tests.lora_training.sgm_file import folder_to_sgm


class Oracle(torch.nn.Module):
    """A 'UNet' that returns a fixed tensor: the loss is 0 exactly when it is the target."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, *a, **k):
        return (self.out,)


def test_v_target_and_zero_terminal_snr_schedule():
    base = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
            "prediction_type": "epsilon"}
    train, sample = schedule.configs(base, {"v_pred": True, "ztsnr": True})
    assert train["prediction_type"] == "v_prediction" and train["rescale_betas_zero_snr"]
    assert sample["timestep_spacing"] == "trailing"
    sched = schedule.noise_scheduler(train)
    assert float(sched.alphas_cumprod[-1]) == 0.0 and float(sched.alphas_cumprod[0]) > 0.99
    plain = schedule.noise_scheduler(schedule.configs(base, {})[0])
    assert float(plain.alphas_cumprod[-1]) > 0.004  # SDXL's own schedule never reaches zero SNR
    # the user overrides the file either way
    assert schedule.resolve(base, {"v_pred": True}, "epsilon", "off") == ("epsilon", False)
    assert schedule.resolve(base, {}, "v_prediction", "on") == ("v_prediction", True)
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([10, 999])  # 999: the zero-SNR step, where the v target is -x0
    v = sched.get_velocity(x0, noise, t)
    assert torch.allclose(v[1], -x0[1], atol=1e-6)
    kw = dict(timesteps=t, noise=noise)
    args = (x0, torch.zeros(2, 77, 64), torch.zeros(2, 32), torch.zeros(2, 6), None)
    assert float(diffusion_loss(Oracle(v), sched, *args, **kw)) == 0.0  # the target is v
    assert float(diffusion_loss(Oracle(noise), sched, *args, **kw)) > 0.5  # not the noise
    assert float(diffusion_loss(Oracle(v), sched, *args, **kw, min_snr_gamma=5.0)) == 0.0
    eps_sched = schedule.noise_scheduler(schedule.configs(base, {}, "epsilon", "on")[0])
    assert float(diffusion_loss(Oracle(noise), eps_sched, *args, **kw)) == 0.0  # epsilon: the target is the noise
    loss = diffusion_loss(Oracle(x0), eps_sched, *args, **kw, min_snr_gamma=5.0)  # min-SNR at SNR 0: no 0/0
    assert float(loss) > 0 and not torch.isnan(loss)
    loss = diffusion_loss(Oracle(noise), eps_sched, *args, **kw, min_snr_gamma=5.0)
    assert float(loss) == 0.0 and not torch.isnan(loss)


@pytest.mark.slow
def test_vpred_single_file_is_detected_and_trained(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import Trainer

    data(ctx, n=2)
    f = folder_to_sgm(tiny_sdxl, ctx.path("CHECKPOINTS_DIR") / "noob_vpred.safetensors", v_pred=True, ztsnr=True)
    from modules.lora_training import ui

    row = [r for r in ui.list_checkpoints(ctx) if r[0] == f.name][0]
    assert row[2:5] == ["✓", "✓", "✓"]  # trainable, v-pred, zero SNR shown in the list
    job = quiet_job(tmp_path)
    tr = Trainer(job, params(tiny_sdxl, base_model=f.name, max_steps=2, sample_prompts=["sks"],
                             sample_every_steps=2, sample_inference_steps=2), ctx)
    res = tr.run()
    s = tr.s
    assert s.noise_scheduler.config.prediction_type == "v_prediction"
    assert float(s.noise_scheduler.alphas_cumprod[-1]) == 0.0
    assert s.scheduler_config["prediction_type"] == "v_prediction" and s.scheduler_config["timestep_spacing"] == "trailing"
    assert res["steps"] == 2 and tr.report.last == tr.report.last  # finite loss, samples rendered
    assert list(s.paths.samples.glob("*.png"))
    logs = " ".join(str(e) for e in job.events)
    assert "v_prediction" in logs
    ctx.models.release(job.id)


@pytest.mark.slow
def test_separate_vae_and_continue_from_lora(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train import export_kohya as ex
    from modules.lora_training.train.trainer import Trainer, train

    data(ctx, n=2)
    novae = folder_to_sgm(tiny_sdxl, tmp_path / "novae.safetensors", dtype="fp32", with_vae=False)
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, base_model=str(novae)), ctx)
    assert e.value.key == "lora.vae_needed"
    job = quiet_job(tmp_path)
    train(job, params(tiny_sdxl, base_model=str(novae), vae=str(tiny_sdxl / "vae"), max_steps=2,
                      output_name="first"), ctx)
    lora = ctx.path("LORAS_DIR") / "first.safetensors"
    assert lora.is_file()
    # another VAE = other latents: the cache key changes (misses), the same VAE again hits
    from safetensors.torch import save_file

    other = tmp_path / "other_vae.safetensors"  # diffusers-key VAE file, perturbed
    sd = load_file(str(tiny_sdxl / "vae" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v + 0.01 for k, v in sd.items()}, str(other))
    for vae, hits in ((str(tiny_sdxl / "vae"), 4), (str(other), 0)):  # 2 latents + 2 captions
        j = quiet_job(tmp_path)
        t = Trainer(j, params(tiny_sdxl, base_model=str(novae), vae=vae, max_steps=1), ctx)
        t.setup()
        assert t.s.cache.hits == hits
        ctx.models.release(j.id)
    # continue from the LoRA: the adapters start as the file (alpha folded into up)
    j = quiet_job(tmp_path)
    t = Trainer(j, params(tiny_sdxl, init_lora="first.safetensors", alpha=8.0, max_steps=1), ctx)
    t.setup()
    file_sd = load_file(str(lora))
    got = ex.to_kohya(t._parts(), 8.0, dtype=torch.float32)
    assert got.keys() == file_sd.keys()
    for k, v in file_sd.items():
        if k.endswith(".lora_up.weight"):
            assert torch.allclose(got[k] * 8.0, v.float() * 4.0, atol=1e-6), k  # same delta up*alpha/rank
        elif k.endswith(".lora_down.weight"):
            assert torch.equal(got[k], v.float()), k
    ctx.models.release(j.id)
    for kw, needle in ((dict(rank=8), "rank 4 in the file, 8 here"), (dict(target="attn_mlp"), "only in this run")):
        j = quiet_job(tmp_path)
        with pytest.raises(StudioError) as e:
            Trainer(j, params(tiny_sdxl, init_lora=str(lora), max_steps=1, **kw), ctx).setup()
        ctx.models.release(j.id)
        assert e.value.key == "lora.init_mismatch" and needle in e.value.params["detail"]
    for ref, key in ((str(novae), "lora.init_not_lora"), ("missing.safetensors", "lora.init_missing")):
        with pytest.raises(StudioError) as e:
            train(quiet_job(tmp_path), params(tiny_sdxl, init_lora=ref, max_steps=1), ctx)
        assert e.value.key == key
