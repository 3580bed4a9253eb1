"""WD14 taggers (a tiny real ONNX model), a tiny real Qwen2.5-VL, combined captions, and the
batched / stoppable / resumable caption job, through the real locating and loading code."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.jobs import ConsoleJob
from modules.lora_training.data import DATA_JOB_KINDS
from modules.lora_training.data.captioners import CaptionOptions, first_sentence, load_one
from modules.lora_training.data.captioners.wd14 import read_tags_csv, tags_from_probs
from modules.lora_training.data.jobs import CaptionParams, run_caption

from tests.lora_training.tiny_florence import make_tiny_florence
from tests.lora_training.tiny_qwen_vl import make_tiny_qwen_vl
from tests.lora_training.tiny_wd14 import TAGS, make_tiny_wd14, reference_probs
from tests.lora_training.helpers import smooth_images


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("captioners")
    wd, w, b = make_tiny_wd14(root / "tiny-wd14")
    fixed, fw, fb = make_tiny_wd14(root / "tiny-wd14-b1", seed=1, fixed_batch=True)
    return {"wd14": wd, "w": w, "b": b, "wd14_b1": fixed, "fw": fw, "fb": fb,
            "vlm": make_tiny_qwen_vl(root / "tiny-qwen-vl"), "florence": make_tiny_florence(root / "tiny-florence"),
            "qwen3_vl": make_tiny_qwen_vl(root / "tiny-qwen3-vl", side=64, family="qwen3_vl")}


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (40 + 10 * i, 64 - 6 * i, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture
def studio(bare_ctx, models, tmp_path: Path):
    for kind in DATA_JOB_KINDS:
        bare_ctx.jobs.register(kind)
    for name in ("wd14", "vlm", "florence"):
        shutil.copytree(models[name], bare_ctx.path("CAPTIONERS_DIR") / models[name].name)
    src = smooth_images(tmp_path / "src")
    job = bare_ctx.jobs.submit("lora.prepare", {"project": "tags", "concept": "girl", "source_dir": str(src),
                                                "resolution": 256, "min_size": 128})
    assert bare_ctx.jobs.wait(job, 60)["status"] == "completed"
    return bare_ctx


def _captions(ctx) -> dict[str, str]:
    d = ctx.path("LORA_PROJECTS_DIR") / "tags" / "data" / "girl"
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(d.glob("*.txt"))}


def test_tags_from_probs_thresholds_order_blacklist_kaomoji(models) -> None:
    tags = read_tags_csv(models["wd14"] / "selected_tags.csv")
    assert [(t.name, t.category) for t in tags] == TAGS
    p = np.zeros(len(TAGS), dtype=np.float32)
    val = dict(zip([n for n, _ in TAGS], range(len(TAGS))))
    for name, prob in {"general": 0.2, "sensitive": 0.7, "1girl": 0.99, "solo": 0.5, "long_hair": 0.9,
                       "smile": 0.34, "^_^": 0.6, "simple_background": 0.4, "hatsune_miku": 0.86,
                       "rem_(re:zero)": 0.84}.items():
        p[val[name]] = prob
    opts = CaptionOptions(kind="wd14")
    assert tags_from_probs(p, tags, opts) == "hatsune miku, 1girl, long hair, ^_^, solo, simple background"
    opts = CaptionOptions(kind="wd14", include_rating=True, general_threshold=0.55, character_threshold=0.8,
                          blacklist=("long hair", "simple_background"), tag_order="confidence")
    assert tags_from_probs(p, tags, opts) == "sensitive, 1girl, hatsune miku, rem (re:zero), ^_^"


def test_wd14_loads_batches_and_matches_reference(models, bare_ctx) -> None:
    tagger = load_one("wd14", "", bare_ctx.path("CAPTIONERS_DIR"), str(models["wd14"]), "cpu", None)
    imgs = _images(3)
    batched = tagger.probabilities(imgs)
    assert batched.shape == (3, len(TAGS))
    for img, row in zip(imgs, batched):
        np.testing.assert_allclose(row, reference_probs(img, models["w"], models["b"]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(tagger.probabilities([img])[0], row, rtol=1e-5, atol=1e-6)
    assert len({tuple(np.round(r, 4)) for r in batched}) == 3  # the images really reach the model
    opts = CaptionOptions(kind="wd14", general_threshold=0.3, character_threshold=0.3)
    assert tagger.caption(imgs, opts) == [tags_from_probs(r, tagger.tags, opts) for r in batched]
    # an export without a dynamic batch axis runs image by image, same answers
    fixed = load_one("wd14", str(models["wd14_b1"]), bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
    assert fixed.fixed_batch == 1
    out = fixed.probabilities(imgs)
    np.testing.assert_allclose(out[2], reference_probs(imgs[2], models["fw"], models["fb"]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family,cls", [("vlm", "Qwen2_5_VLForConditionalGeneration"),
                                        ("qwen3_vl", "Qwen3VLForConditionalGeneration")])
def test_vlm_batched_equals_one_by_one(models, bare_ctx, family, cls) -> None:
    import torch

    vlm = load_one("vlm", "", bare_ctx.path("CAPTIONERS_DIR"), str(models[family]),  # the default: a path
                   "cpu", torch.float32)
    assert type(vlm.model).__name__ == cls
    imgs = _images(3)  # three sizes: three different numbers of image tokens, left padding
    inputs = vlm.inputs(imgs, "describe this image in one sentence.")
    n_img = (inputs["input_ids"] == vlm.image_token_id).sum(1).tolist()
    assert n_img == [int(g.prod()) // 4 for g in inputs["image_grid_thw"]] and len(set(n_img)) > 1
    assert (inputs["mm_token_type_ids"].sum(1) == torch.tensor(n_img)).all()
    opts = CaptionOptions(kind="vlm", prompt="describe this image in one sentence.", max_new_tokens=8)
    batched = vlm.caption(imgs, opts)
    single = [vlm.caption([im], opts)[0] for im in imgs]
    assert batched == single and all(batched)
    assert all("<|" not in c and len(vlm.tokenizer(c)["input_ids"]) <= 8 + 2 for c in batched)


def test_caption_job_wd14_stop_then_resume(studio) -> None:
    class StopAfterFirstBatch(ConsoleJob):
        def progress(self, done, total, desc=""):
            super().progress(done, total, desc)
            if done == 2:
                self.request_stop()

    (studio.path("LORA_PROJECTS_DIR") / "tags" / "data" / "girl" / "img4.txt").write_text("own", encoding="utf-8")
    params = CaptionParams(project="tags", kind="wd14", model="tiny-wd14", trigger_word="sks", batch_size=2,
                           overwrite=True, general_threshold=0.0, character_threshold=1.0, blacklist="solo")
    first = StopAfterFirstBatch("lora.caption", params, verbose=False, workdir=studio.jobs.jobs_dir / "capjob1")
    result = run_caption(first, params, studio)
    assert result["stopped"] and result["written"] == 2
    caps = _captions(studio)
    assert caps["img0"].startswith("sks, ") and "1girl" in caps["img0"] and "solo" not in caps["img0"]
    assert "hatsune miku" not in caps["img0"]  # character threshold 1.0
    assert caps["img4"] == "own" and "img2" not in caps
    stamps = {k: (studio.path("LORA_PROJECTS_DIR") / "tags/data/girl" / f"{k}.txt").stat().st_mtime_ns
              for k in ("img0", "img1")}
    # the resume replays the same settings and skips what the stopped run wrote
    resumed = CaptionParams(**{**params.model_dump(), "resume_from": "capjob1"})
    second = ConsoleJob("lora.caption", resumed, verbose=False, workdir=studio.jobs.jobs_dir / "capjob2")
    result = run_caption(second, resumed, studio)
    assert (result["written"], result["resumed"], result["stopped"]) == (3, 2, False)
    caps = _captions(studio)
    assert caps["img4"].startswith("sks, ")  # overwrite still applies to what was left
    assert all((studio.path("LORA_PROJECTS_DIR") / "tags/data/girl" / f"{k}.txt").stat().st_mtime_ns == v
               for k, v in stamps.items())
    kind = next(k for k in DATA_JOB_KINDS if k.name == "lora.caption")
    assert kind.resume(params.model_dump(), "abc-1", studio)["resume_from"] == "abc-1"


def test_caption_job_vlm_and_combined(studio) -> None:
    job = studio.jobs.submit("lora.caption", {"project": "tags", "kind": "vlm", "model": "tiny-qwen-vl",
                                              "prompt": "describe this image in one sentence.", "max_new_tokens": 8,
                                              "batch_size": 3, "trigger_word": "sks"})
    row = studio.jobs.wait(job, 120)
    assert row["status"] == "completed", row
    assert row["result"]["written"] == 5 and studio.models.loaded() == []
    assert all(t.startswith("sks, ") and len(t) > 5 for t in _captions(studio).values())
    job = studio.jobs.submit("lora.caption", {"project": "tags", "kind": "combined", "tagger_model": "tiny-wd14",
                                              "model": "tiny-florence", "sentence_kind": "florence",
                                              "overwrite": True, "general_threshold": 0.0, "num_beams": 1,
                                              "max_new_tokens": 10, "batch_size": 2})
    row = studio.jobs.wait(job, 120)
    assert row["status"] == "completed", row
    for text in _captions(studio).values():
        assert text.startswith("1girl, ") or ", 1girl, " in text  # all general tags at threshold 0
        assert text.endswith(".") and text.count(". ") == 0  # one sentence last


def test_first_sentence() -> None:
    assert first_sentence("A cat. On a mat.") == "A cat."
    assert first_sentence("a dog on grass") == "a dog on grass."
    assert first_sentence("") == ""
