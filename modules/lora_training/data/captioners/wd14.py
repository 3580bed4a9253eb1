"""WD14-family booru taggers (WD v1.4 / v3: ViT, ConvNeXt, SwinV2, EVA02) run with onnxruntime.

A tagger folder holds `model.onnx` and its `selected_tags.csv` (`tag_id,name,category,count`;
category 9 = rating, 0 = general, 4 = character), as published by SmilingWolf. Images are
prepared the way the reference tagger does: composited on white, padded to a white square,
resized (bicubic) to the model's input side, BGR float 0..255 in NHWC. The model outputs
one sigmoid probability per tag.

`tags_from_probs` turns probabilities into a caption: general tags over the general
threshold, character tags over the character threshold, optionally the most likely rating
first, a blacklist removed, underscores turned into spaces except in kaomoji (`^_^`), in
booru order (rating, character, general; each by confidence) or by confidence alone.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import StudioError

from .base import CaptionOptions, Captioner, ModelSpec

SPEC = ModelSpec(kind="wd14", required=("model.onnx", "selected_tags.csv"),
                 download=("model.onnx", "selected_tags.csv"), example="SmilingWolf/wd-eva02-large-tagger-v3")
RATING, GENERAL, CHARACTER = 9, 0, 4
# The reference tagger keeps these as written (their underscore is part of the face).
KAOMOJI = frozenset({"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9",
                     ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"})


@dataclass(frozen=True)
class Tag:
    name: str
    category: int


def read_tags_csv(path: Path) -> list[Tag]:
    """The tags of a `selected_tags.csv`, in the model's output order."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        tags = [Tag(r["name"], int(r["category"])) for r in rows]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise StudioError("lora_data.tagger_bad_csv", path=str(path), error=f"{type(exc).__name__}: {exc}") from exc
    if not tags:
        raise StudioError("lora_data.tagger_bad_csv", path=str(path), error="no tag")
    return tags


def display_name(tag: str) -> str:
    """`long_hair` -> `long hair`; kaomoji kept."""
    return tag if tag in KAOMOJI else tag.replace("_", " ")


def _key(tag: str) -> str:
    return " ".join(tag.replace("_", " ").split()).lower()


def tags_from_probs(probs: np.ndarray, tags: list[Tag], opts: CaptionOptions) -> str:
    """One caption (comma-separated tags) from the probabilities of one image."""
    banned = {_key(b) for b in opts.blacklist if b.strip()}
    scored = {RATING: [], CHARACTER: [], GENERAL: []}
    for p, tag in zip(probs.tolist(), tags):
        if tag.category in scored and _key(tag.name) not in banned:
            scored[tag.category].append((p, tag.name))
    picked: list[tuple[float, str]] = []
    if opts.include_rating and scored[RATING]:
        picked.append(max(scored[RATING]))
    chars = sorted((x for x in scored[CHARACTER] if x[0] >= opts.character_threshold), key=lambda x: -x[0])
    general = sorted((x for x in scored[GENERAL] if x[0] >= opts.general_threshold), key=lambda x: -x[0])
    body = chars + general
    if opts.tag_order == "confidence":
        body.sort(key=lambda x: -x[0])
    return ", ".join(display_name(name) for _, name in picked + body)


class WD14Tagger(Captioner):
    """An onnxruntime session + its tag list."""

    kind = "wd14"

    def __init__(self, session, tags: list[Tag]) -> None:
        self.session, self.tags = session, tags
        inp = session.get_inputs()[0]
        self.input_name, shape = inp.name, list(inp.shape)
        self.nhwc = shape[-1] == 3
        self.size = int(shape[1] if self.nhwc else shape[2])
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(tags):
            raise StudioError("lora_data.tagger_mismatch", outputs=n_out, tags=len(tags))

    def prepare(self, image) -> np.ndarray:
        from PIL import Image

        img = image.convert("RGBA")
        canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
        canvas.alpha_composite(img)
        img = canvas.convert("RGB")
        side = max(img.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
        if side != self.size:
            square = square.resize((self.size, self.size), Image.Resampling.BICUBIC)
        arr = np.asarray(square, dtype=np.float32)[:, :, ::-1]  # RGB -> BGR, as the models were trained
        return np.ascontiguousarray(arr if self.nhwc else arr.transpose(2, 0, 1))

    def probabilities(self, images: list) -> np.ndarray:
        batch = np.stack([self.prepare(im) for im in images])
        if self.fixed_batch == 1 and len(images) > 1:  # an export without a dynamic batch axis
            return np.concatenate([self.session.run(None, {self.input_name: batch[i:i + 1]})[0]
                                   for i in range(len(images))])
        return self.session.run(None, {self.input_name: batch})[0]

    def caption(self, images: list, opts: CaptionOptions) -> list[str]:
        probs = self.probabilities(images)
        return [tags_from_probs(p, self.tags, opts) for p in probs]


def load_wd14(folder: Path, device: str, threads: int = 0) -> WD14Tagger:
    """An onnxruntime session on CUDA when asked and available, else CPU."""
    import onnxruntime as ort

    folder = Path(folder)
    tags = read_tags_csv(folder / "selected_tags.csv")
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=so, providers=providers)
    except Exception as exc:  # noqa: BLE001 - a damaged or non-ONNX file
        raise StudioError("lora_data.captioner_bad", name=str(folder), hint=SPEC.example,
                          error=f"{type(exc).__name__}: {exc}"[:300]) from exc
    return WD14Tagger(session, tags)
