"""The A1111 `parameters` PNG text chunk ("infotext"), written and read back.

Exactly the layout A1111/Forge write and Civitai parses:

    <prompt, with a <lora:name:strength> tag per LoRA>
    Negative prompt: <negative prompt>
    Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 42, Size: 1024x1024, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "name: 0123456789ab, other: ..."

The negative line is left out when empty. A value holding ',', ':' or a newline is
quoted as JSON, as A1111's `quote()` does. The tags in the prompt are how A1111 applies
LoRAs, so dropping the PNG into A1111 uses the same LoRAs; "Lora hashes" is how Civitai
links them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_PAIR = re.compile(r'\s*(\w[\w \-/+]*):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_TAG = re.compile(r"<lora:([^:>]+):([-0-9.eE+]+)>")


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _num(v: float) -> str:
    return f"{v:g}"


def build(prompt: str, negative: str, fields: dict[str, Any], loras: list[tuple[str, float, str]] = ()) -> str:
    """The infotext. `loras`: (name, strength, short hash) of each LoRA used at a non-zero strength."""
    used = [(n, s, h) for n, s, h in loras if s != 0]
    tags = "".join(f" <lora:{n}:{_num(s)}>" for n, s, _ in used)
    out = [prompt.strip() + tags]
    if negative.strip():
        out.append("Negative prompt: " + negative.strip())
    items = dict(fields)
    if used:
        items["Lora hashes"] = ", ".join(f"{n}: {h}" for n, _, h in used)
    out.append(", ".join(f"{k}: {quote(_num(v) if isinstance(v, float) else v)}" for k, v in items.items()
                         if v is not None and v != ""))
    return "\n".join(out)


def parse(text: str) -> dict[str, Any]:
    """A1111's parser, in short: {'prompt', 'negative_prompt', 'loras': [(name, strength)], and
    every 'Key': 'value' of the last line}."""
    lines = text.strip().split("\n")
    last = lines[-1] if len(_PAIR.findall(lines[-1])) >= 3 else ""
    body = lines[:-1] if last else lines
    prompt, negative, in_neg = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_neg else prompt).append(line)
    full = "\n".join(prompt)
    out: dict[str, Any] = {"loras": [(n, float(s)) for n, s in _TAG.findall(full)],
                           "prompt": _TAG.sub("", full).strip(), "negative_prompt": "\n".join(negative)}
    for key, value in _PAIR.findall(last):
        out[key.strip()] = unquote(value.strip())
    return out


def save_png(image: Any, path: str | Path, infotext: str) -> Path:
    """Write `image` as PNG with the `parameters` chunk, atomically (temp name, then rename)."""
    from PIL.PngImagePlugin import PngInfo

    from core.media import atomic_path

    info = PngInfo()
    info.add_text("parameters", infotext)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info, compress_level=6)
    return path


def read_png(path: str | Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        return im.info.get("parameters", "") or getattr(im, "text", {}).get("parameters", "")
