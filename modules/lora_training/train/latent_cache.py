"""Disk cache of VAE latents and text-encoder outputs, in the project's `cache/`.

A latent entry is keyed by a hash of the image bytes, its crop/target geometry and the base
model's fingerprint; a text entry by the caption and the fingerprint. Change an image, a
caption, the model or the resolution and only that entry is recomputed; everything else is
read back (counted in `hits`, so tests and the log can show the reuse). The latent
distribution (mean, std) is stored, not one sample, so each step still draws fresh latents
exactly as an uncached loop would. Files are written to a temp name then renamed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

from modules.lora_training.train.dataset import Item, image_digest, load_pixels
from core.sdxl import encode_prompt, tokenize


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class FeatureCache:
    def __init__(self, root: str | Path, fingerprint: str) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.hits = 0
        self.misses = 0
        self.vae_encodes = 0
        self.text_encodes = 0

    def _load(self, path: Path) -> dict | None:
        if not path.is_file():
            return None
        from core.models import load_state_dict_file

        try:
            return load_state_dict_file(path)
        except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed, not fatal
            return None

    def _save(self, path: Path, tensors: dict) -> None:
        from safetensors.torch import save_file

        from core.media import atomic_path

        with atomic_path(path) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))

    def latents(self, items: list[Item], vae: Any, device: str, should_stop: Callable[[], bool],
                progress: Callable[[int, int], None] | None = None) -> list[dict] | None:
        """(mean, std) of each item's latent distribution; None when stopped."""
        import torch

        out: list[dict] = []
        for i, it in enumerate(items):
            if should_stop():
                return None
            path = self.root / "latents" / f"{_key(image_digest(it), self.fingerprint)}.safetensors"
            entry = self._load(path)
            if entry is None:
                self.misses += 1
                with torch.no_grad():
                    px = load_pixels(it).unsqueeze(0).to(device, dtype=vae.dtype)
                    dist = vae.encode(px).latent_dist
                    self.vae_encodes += 1
                entry = {"mean": dist.mean[0].float().cpu(), "std": dist.std[0].float().cpu()}
                self._save(path, entry)
            else:
                self.hits += 1
            out.append(entry)
            if progress:
                progress(i + 1, len(items))
        return out

    def text(self, captions: list[str], tokenizers, text_encoders, should_stop: Callable[[], bool]
             ) -> dict[str, dict] | None:
        """caption -> {"embeds": (77, D), "pooled": (D2,)}; None when stopped."""
        import torch

        out: dict[str, dict] = {}
        for cap in dict.fromkeys(captions):
            if should_stop():
                return None
            path = self.root / "text" / f"{_key(cap, self.fingerprint)}.safetensors"
            entry = self._load(path)
            if entry is None:
                self.misses += 1
                with torch.no_grad():
                    emb, pooled = encode_prompt(text_encoders, tokenize(tokenizers, [cap]))
                    self.text_encodes += 1
                entry = {"embeds": emb[0].float().cpu(), "pooled": pooled[0].float().cpu()}
                self._save(path, entry)
            else:
                self.hits += 1
            out[cap] = entry
        return out
