"""Training works: loss falls on a one-image overfit; the kohya file has the right keys and
metadata, loads into a StableDiffusionXLPipeline and changes its output."""
from __future__ import annotations

import torch

from tests.lora_training.helpers import adapter, data, params, quiet_job


def _fixed_loss(tiny, image_dir, lora_state=None, target="attn") -> float:
    """Loss of the (LoRA'd) UNet on the training image at fixed timesteps and noise."""
    from diffusers import StableDiffusionXLPipeline
    from peft.utils import set_peft_model_state_dict

    from modules.lora_training.train import dataset as ds
    from modules.lora_training.train import lora_setup
    from core.sdxl import encode_prompt, time_ids, tokenize
    from modules.lora_training.train.sampler import validation_loss
    from modules.lora_training.train.step import diffusion_loss
    from diffusers import DDPMScheduler

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny))
    unet = pipe.unet
    if lora_state is not None:
        lora_setup.add_lora(unet, lora_setup.unet_target_modules(unet, target), 4, 4.0, 0.0)
        set_peft_model_state_dict(unet, {k[len("unet."):]: v for k, v in lora_state.items() if k.startswith("unet.")})
    item = ds.scan(image_dir, 64)[0]
    with torch.no_grad():
        lat = pipe.vae.encode(ds.load_pixels(item)[None]).latent_dist.mean * pipe.vae.config.scaling_factor
        emb, pooled = encode_prompt((pipe.text_encoder, pipe.text_encoder_2),
                                    tokenize((pipe.tokenizer, pipe.tokenizer_2), [item.caption]))
    tids = time_ids([item.original_hw], [item.crop_yx], [item.target_hw])
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    fn = lambda *a, **kw: diffusion_loss(unet, sched, *a, **kw)  # noqa: E731
    return validation_loss(unet, sched, [(lat, emb, pooled, tids)], fn, "cpu", seed=3)


def test_overfit_one_image_loss_goes_down(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train

    folder = data(ctx, n=1)
    before = _fixed_loss(tiny_sdxl, folder)
    res = train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=30, lr_unet=1e-2, target="full"), ctx)
    assert res["steps"] == 30 and not res["stopped"]
    after = _fixed_loss(tiny_sdxl, folder, adapter(res["state"]), target="full")
    assert after < before * 0.8, (before, after)


def test_kohya_file_keys_metadata_and_reload(ctx, tiny_sdxl, tmp_path):
    from diffusers import StableDiffusionXLPipeline
    from safetensors import safe_open

    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    res = train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=3, train_text_encoder=True, trigger_word="sks",
                                            export_diffusers=True), ctx)
    lora = ctx.path("LORAS_DIR") / "p.safetensors"
    assert res["lora"] == str(lora) and lora.is_file()
    import stat

    mode = stat.S_IMODE(lora.stat().st_mode)
    assert mode == 0o666 & ~_umask(), oct(mode)  # readable by ComfyUI & co (safetensors writes 0600)
    with safe_open(str(lora), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        up = f.get_tensor("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight")
        alpha = f.get_tensor("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.alpha")
    prefixes = {k.split("_")[1] for k in keys}
    assert prefixes == {"unet", "te1", "te2"}
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in keys)
    assert float(alpha) == 4.0
    n_mod = len([k for k in keys if k.endswith(".alpha")])
    assert len(keys) == 3 * n_mod
    assert meta["ss_network_dim"] == "4" and meta["ss_steps"] == "3" and meta["ss_training_comment"] == "sks"
    assert meta["ss_training_finished"] == "true" and len(meta["ss_dataset_hash"]) == 16
    assert (ctx.path("LORAS_DIR") / "p_diffusers" / "pytorch_lora_weights.safetensors").is_file()

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl))
    pipe.set_progress_bar_config(disable=True)

    def render():
        return pipe("sks cat", num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    base = render()
    pipe.load_lora_weights(str(lora))
    changed = render()
    assert abs(base - changed).max() > 1e-3
    # the te1 weights landed on the right module despite transformers 5's naming
    q = pipe.text_encoder.encoder.layers[0].self_attn.q_proj
    loaded = next(iter(q.lora_B.values())).weight
    assert torch.allclose(loaded.float(), up.float(), atol=1e-3)


def _umask() -> int:
    import os

    m = os.umask(0o022)
    os.umask(m)
    return m
