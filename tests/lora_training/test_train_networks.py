"""Network types (LoCon, LoHa, LoKr via lycoris-lora, DoRA via PEFT): each stops and resumes
bit-exactly, writes the kohya/LyCORIS key layout, and the weight deltas read back from its
file - by lycoris' own loader, and by diffusers where it supports the type - reproduce the
trained model's output on a fresh tiny SDXL."""
from __future__ import annotations

import pytest
import torch

from tests.lora_training.helpers import StopAt, adapter, data, params, quiet_job

# the key suffixes each type writes (ComfyUI / A1111 pick the algorithm from them)
SUFFIXES = {
    "locon": {"lora_down.weight", "lora_up.weight", "alpha"},
    "loha": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"},
    "lokr": {"lokr_w1", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_w1_a", "lokr_w1_b", "alpha"},
    "dora": {"lora_down.weight", "lora_up.weight", "alpha", "dora_scale"},
}
CONV = "lora_unet_down_blocks_0_resnets_0_conv1"  # a 3x3 conv (32 -> 32 channels in the tiny UNet)
Q = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"


def _inputs(pipe):
    g = torch.Generator().manual_seed(5)
    cfg = pipe.unet.config
    x = torch.randn(1, cfg.in_channels, 8, 8, generator=g)
    emb = torch.randn(1, 77, cfg.cross_attention_dim, generator=g)
    pooled = torch.randn(1, pipe.text_encoder_2.config.projection_dim, generator=g)
    tids = torch.tensor([[64.0, 64, 0, 0, 64, 64]])
    return x, emb, {"text_embeds": pooled, "time_ids": tids}


def _unet_out(pipe):
    x, emb, added = _inputs(pipe)
    with torch.no_grad():
        return pipe.unet(x, torch.tensor([500]), encoder_hidden_states=emb, added_cond_kwargs=added).sample


def _te_out(pipe):
    ids = pipe.tokenizer(["a red cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids).last_hidden_state, pipe.text_encoder_2(ids).text_embeds


def _pipe(tiny):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _trained(tiny, p, state_dir):
    """A fresh pipeline with the run's adapters rebuilt and loaded from its state (fp32)."""
    from modules.lora_training.train import lora_setup

    pipe = _pipe(tiny)
    lora_setup.setup(pipe.unet, pipe.text_encoder, pipe.text_encoder_2, p)
    flat = adapter(state_dir)
    for part, model in (("unet", pipe.unet), ("te1", pipe.text_encoder), ("te2", pipe.text_encoder_2)):
        sd = {k[len(part) + 1:]: v for k, v in flat.items() if k.startswith(part + ".")}
        if sd:
            assert lora_setup.load_adapter_state(model, sd) == []
    return pipe


def _loaded_by_lycoris(tiny, lora_file):
    """A fresh pipeline with the file applied by lycoris' own loader (create_lycoris_from_weights).

    Applied (`apply_to`), not merged: lycoris-lora 4.1.3's `merge_to` multiplies LoHa/LoKr
    deltas by alpha/rank twice (get_weight already scales), unlike its own forward and
    ComfyUI; `test_lycoris_merge_scale_bug` pins that down."""
    from lycoris import LycorisNetwork, create_lycoris_from_weights
    from safetensors.torch import load_file

    pipe = _pipe(tiny)
    sd = {k: v.float() for k, v in load_file(str(lora_file)).items()}
    old = LycorisNetwork.LORA_PREFIX
    try:
        # module names: diffusers UNet as is; CLIP-L under transformers 5 lacks `text_model.`
        for prefix, model in (("lora_unet", pipe.unet), ("lora_te1_text_model", pipe.text_encoder),
                              ("lora_te2", pipe.text_encoder_2)):
            part = {k: v for k, v in sd.items() if k.startswith(prefix + "_")}
            if not part:
                continue
            LycorisNetwork.LORA_PREFIX = prefix
            net, _ = create_lycoris_from_weights(1.0, "", model, weights_sd=part)
            assert len(net.loras) == len({k.split(".")[0] for k in part})  # every module found
            net.apply_to()
    finally:
        LycorisNetwork.LORA_PREFIX = old
    return pipe


def _close(a, b, base):
    """Same output within fp16 rounding of the file, and far from the untrained output."""
    tol = 2e-3 * float(base.abs().max())
    assert float((a - b).abs().max()) < tol, float((a - b).abs().max())
    assert float((a - base).abs().max()) > 20 * tol  # the adapter changed the output


@pytest.mark.slow
@pytest.mark.parametrize("kind,te", [("locon", False), ("loha", True), ("lokr", False), ("dora", True)])
def test_network_type_resume_and_file(ctx, tiny_sdxl, tmp_path, kind, te):
    from safetensors import safe_open

    from modules.lora_training.train.trainer import train

    data(ctx, project="a", n=2)
    data(ctx, project="b", n=2)
    kw = dict(network_type=kind, train_text_encoder=te, max_steps=4, lr_unet=2e-2, lr_te1=1e-2, lr_te2=1e-2,
              dropout=0.1 if kind == "locon" else 0.0, conv_rank=2, conv_alpha=1.0, save_every_steps=2,
              lokr_factor=4 if kind == "lokr" else -1)
    full = train(quiet_job(tmp_path / "j1"), params(tiny_sdxl, project="a", **kw), ctx)
    assert full["steps"] == 4 and not full["stopped"]
    part = train(StopAt(1, workdir=tmp_path / "j2"), params(tiny_sdxl, project="b", **kw), ctx)
    assert part["stopped"] and part["steps"] == 1
    resumed = train(quiet_job(tmp_path / "j3"), params(tiny_sdxl, project="b", resume_from="latest", **kw), ctx)
    assert resumed["steps"] == 4
    a, b = adapter(full["state"]), adapter(resumed["state"])
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-exact

    loras = ctx.path("LORAS_DIR")
    assert (loras / "a-000002.safetensors").is_file()  # save-every-N, kohya naming
    lora = loras / "a.safetensors"
    with safe_open(str(lora), "pt") as f:
        keys, meta = set(f.keys()), f.metadata()
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
    assert {k.split(".", 1)[1] for k in keys} <= SUFFIXES[kind]
    assert {k.split("_")[1] for k in keys} == ({"unet", "te1", "te2"} if te else {"unet"})
    if te:
        assert any(k.startswith("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.") for k in keys)
        assert any(k.startswith("lora_te2_text_model_encoder_layers_0_") for k in keys)
    if kind == "locon":  # conv: down (r, in, 3, 3), up (out, r, 1, 1), conv rank/alpha
        assert shapes[f"{CONV}.lora_down.weight"] == (2, 32, 3, 3)
        assert shapes[f"{CONV}.lora_up.weight"] == (32, 2, 1, 1)
        assert shapes[f"{Q}.lora_down.weight"][0] == 4
    if kind == "loha":
        assert shapes[f"{CONV}.hada_w1_a"] == (32, 2) and shapes[f"{CONV}.hada_w1_b"] == (2, 32 * 9)
    if kind == "dora":  # output axis: (out, 1) linear, (out, 1, 1, 1) conv
        assert shapes[f"{Q}.dora_scale"] == (64, 1)
    if kind in ("locon", "loha", "lokr"):
        assert meta["ss_network_module"] == "lycoris.kohya"
        assert CONV + ".alpha" in keys  # LyCORIS types adapt the convolutions
    else:
        assert meta["ss_network_module"] == "networks.lora" and '"dora_wd"' in meta["ss_network_args"]

    p = params(tiny_sdxl, project="a", **kw)
    trained = _trained(tiny_sdxl, p, full["state"])
    base = _pipe(tiny_sdxl)
    want, base_out = _unet_out(trained), _unet_out(base)
    # lycoris' loader reads every type (DoRA: a LoCon module with dora_scale)
    got_pipe = _loaded_by_lycoris(tiny_sdxl, lora)
    _close(_unet_out(got_pipe), want, base_out)
    if te:
        for x, y, z in zip(_te_out(got_pipe), _te_out(trained), _te_out(base)):
            _close(x, y, z)
    if kind == "locon":  # diffusers reads kohya LoRA-with-convs (it drops `dora_scale`: no DoRA)
        d = _pipe(tiny_sdxl)
        d.load_lora_weights(str(lora))
        _close(_unet_out(d), want, base_out)
        if te:
            for x, y, z in zip(_te_out(d), _te_out(trained), _te_out(base)):
                _close(x, y, z)


def test_lycoris_merge_scale_bug():
    """lycoris-lora 4.1.3: LoHa/LoKr `merge_to` applies alpha/rank twice, its forward (and
    ComfyUI: delta = alpha/rank * (w1a w1b) * (w2a w2b)) once - why the file test applies
    instead of merging. If this fails, lycoris fixed it and the test above may merge again."""
    from lycoris.modules.loha import LohaModule

    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 6)
    x = torch.randn(3, 8)
    mod = LohaModule("lora_unet_x", lin, lora_dim=4, alpha=1.0)  # scale 1/4
    with torch.no_grad():
        for p in (mod.hada_w1_a, mod.hada_w1_b, mod.hada_w2_a, mod.hada_w2_b):
            p.normal_()
    delta = (mod.hada_w1_a @ mod.hada_w1_b) * (mod.hada_w2_a @ mod.hada_w2_b) * 0.25  # ComfyUI's formula
    want = torch.nn.functional.linear(x, lin.weight + delta, lin.bias)
    mod.apply_to()
    with torch.no_grad():
        assert torch.allclose(lin(x), want, atol=1e-5)  # forward: once
        merged = mod.get_merged_weight(1.0)[0]
    assert torch.allclose(merged, lin.weight + delta * 0.25, atol=1e-5)  # merge: twice
