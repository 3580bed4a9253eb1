"""Single-file SDXL checkpoints: detected from their header, loaded offline with the shipped
configs (fp16/bf16/fp32, EMA or not, VAE inside or separate), foreign/damaged files refused
with a message naming what they are."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.errors import StudioError
from core.sdxl import BaseRef, load_pipeline, resolve_base
from core.sdxl.detect import inspect_file, scan_folder
from tests.lora_training.sgm_file import folder_to_sgm


@pytest.fixture(scope="module")
def sgm(tiny_sdxl, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sgm")
    return {"fp16": folder_to_sgm(tiny_sdxl, d / "tiny_fp16.safetensors", dtype="fp16"),
            "bf16_ema": folder_to_sgm(tiny_sdxl, d / "tiny_bf16.safetensors", dtype="bf16", ema=True),
            "fp32_novae": folder_to_sgm(tiny_sdxl, d / "tiny_novae.safetensors", dtype="fp32", with_vae=False),
            "vpred": folder_to_sgm(tiny_sdxl, d / "tiny_vpred.safetensors", dtype="fp16", v_pred=True, ztsnr=True)}


def _fake(path: Path, keys: dict[str, tuple]) -> Path:
    save_file({k: torch.zeros(s, dtype=torch.float16) for k, s in keys.items()}, str(path))
    return path


FOREIGN = {  # the signature keys of each published layout (tiny shapes)
    "sd1": {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (4, 8),
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (4, 8)},
    "sd2": {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (4, 8),
            "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": (12, 4)},
    "sdxl_refiner": {"model.diffusion_model.label_emb.0.0.weight": (8, 4),
                     "conditioner.embedders.0.model.transformer.resblocks.0.attn.in_proj_weight": (12, 4)},
    "flux": {"double_blocks.0.img_attn.qkv.weight": (12, 4), "single_blocks.0.linear1.weight": (4, 4)},
    "sd3": {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (12, 4)},
    "lora": {"lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight": (4, 8)},
    "vae": {"encoder.down.0.block.0.conv1.weight": (4, 3, 3, 3), "decoder.up.0.block.0.conv1.weight": (4, 4, 3, 3)},
    "sdxl_unet": {"model.diffusion_model.label_emb.0.0.weight": (8, 4)},
}


def test_detects_every_family_from_the_header(sgm, tmp_path):
    info = inspect_file(sgm["fp16"])
    assert (info.kind, info.trainable, info.dtype, info.has_vae, info.has_ema, info.v_pred) == \
        ("sdxl", True, "fp16", True, False, False)
    info = inspect_file(sgm["bf16_ema"])
    assert (info.kind, info.dtype, info.has_ema) == ("sdxl", "bf16", True)
    assert inspect_file(sgm["fp32_novae"]).has_vae is False
    info = inspect_file(sgm["vpred"])
    assert info.kind == "sdxl" and info.v_pred and info.ztsnr
    for kind, keys in FOREIGN.items():
        f = _fake(tmp_path / f"{kind}.safetensors", keys)
        got = inspect_file(f)
        assert (got.kind, got.trainable) == (kind, False), kind
    listed = scan_folder(tmp_path)
    assert [Path(i.path).stem for i in listed] == sorted(FOREIGN, key=str.lower)


def test_foreign_and_damaged_files_are_refused_by_name(ctx, sgm, tmp_path):
    for kind, keys in FOREIGN.items():
        f = _fake(tmp_path / f"{kind}.safetensors", keys)
        with pytest.raises(StudioError) as e:
            resolve_base(str(f), ctx)
        assert e.value.key == f"lora.base_not_sdxl.{kind}"
        assert f.name in ctx.t(e.value.key, **e.value.params)
    good = sgm["fp16"].read_bytes()
    damaged = {"truncated": good[: len(good) // 2], "garbage": b"\x00\x13not a model at all" * 50,
               "short": b"\x01\x02", "bad_json": (20).to_bytes(8, "little") + b"{not json at all!!!}" + b"\0" * 64,
               "huge_header": (10**12).to_bytes(8, "little") + b"{}"}
    for name, blob in damaged.items():
        f = tmp_path / f"{name}.safetensors"
        f.write_bytes(blob)
        assert inspect_file(f).kind == "damaged", name
        with pytest.raises(StudioError) as e:
            resolve_base(str(f), ctx)
        assert e.value.key == "lora.base_damaged", name
        msg = ctx.t(e.value.key, **e.value.params)
        assert f.name in msg and "config" not in msg.lower()
    assert sgm["fp16"].read_bytes() == good  # the user's file is never modified


@pytest.mark.slow
def test_loads_like_the_folder_in_every_dtype(ctx, tiny_sdxl, sgm):
    folder = load_pipeline(resolve_base(str(tiny_sdxl), ctx), ctx)
    ref = {n: getattr(folder, n).state_dict() for n in ("unet", "vae", "text_encoder", "text_encoder_2")}
    for key, tol in (("fp16", 2e-3), ("bf16_ema", 1.6e-2)):
        base = resolve_base(str(sgm[key]), ctx)
        assert base.kind == "file" and base.facts["kind"] == "sdxl"
        pipe = load_pipeline(base, ctx)
        for name, sd in ref.items():
            got = getattr(pipe, name).state_dict()
            assert got.keys() == sd.keys(), name
            for k, v in sd.items():  # EMA copies (all +1) were ignored: the non-EMA weights load
                assert got[k].dtype == torch.float32
                assert torch.allclose(got[k], v, atol=tol * max(1.0, float(v.abs().max()))), (key, name, k)
        assert pipe.tokenizer("a cat").input_ids == folder.tokenizer("a cat").input_ids
        assert pipe.tokenizer_2.pad_token == "!" and dict(pipe.scheduler.config)["beta_end"] == 0.012


def test_no_vae_inside_needs_a_separate_vae(ctx, tiny_sdxl, sgm):
    base = resolve_base(str(sgm["fp32_novae"]), ctx)
    with pytest.raises(StudioError) as e:
        load_pipeline(base, ctx)
    assert e.value.key == "lora.vae_needed" and sgm["fp32_novae"].name in str(e.value.params)
    from core.sdxl import resolve_vae

    vae_dir = resolve_vae(str(tiny_sdxl / "vae"), ctx)
    pipe = load_pipeline(base, ctx, vae=vae_dir)
    ref = load_pipeline(BaseRef("folder", str(tiny_sdxl), "x"), ctx)
    for k, v in ref.unet.state_dict().items():  # fp32 file: bit-exact
        assert torch.equal(pipe.unet.state_dict()[k], v), k
    for k, v in ref.vae.state_dict().items():
        assert torch.equal(pipe.vae.state_dict()[k], v), k
    with pytest.raises(StudioError) as e:
        resolve_vae("no_such_vae.safetensors", ctx)
    assert e.value.key == "lora.vae_missing"


def test_ckpt_file_is_read_weights_only(ctx, tiny_sdxl, sgm, tmp_path):
    from safetensors.torch import load_file

    from core.sdxl import single_file as sf

    ckpt = tmp_path / "tiny.ckpt"  # the old A1111 container: {"state_dict": ...} in a torch zip
    torch.save({"state_dict": load_file(str(sgm["fp32_novae"])), "global_step": 10}, str(ckpt))
    info = inspect_file(ckpt)
    assert (info.kind, info.dtype, info.has_vae) == ("sdxl", "fp32", False)
    unet = sf.load_unet(ckpt, info.shapes)
    ref = load_pipeline(BaseRef("folder", str(tiny_sdxl), "x"), ctx).unet.state_dict()
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in ref.items())
    (tmp_path / "pickle.ckpt").write_bytes(b"\x80\x04garbage")
    assert inspect_file(tmp_path / "pickle.ckpt").kind == "damaged"
