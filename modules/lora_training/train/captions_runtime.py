"""Captions as seen by one training step: caption dropout, tag shuffle with keep-first-N,
the trigger word always first (kohya's caption_dropout_rate / shuffle_caption /
keep_tokens, OneTrainer's caption dropout and tag shuffling).

Tags are the comma-separated parts of a caption. The tag holding the trigger word moves to
the front and stays there; the next `keep_tokens` tags stay in place; the rest is shuffled.
Every draw comes from a generator seeded by (run seed, global micro-batch, position in the
batch): stateless, so a resumed run sees exactly the captions of an uninterrupted one and the
run's noise generator is not touched (all options off = the plain captions).
"""
from __future__ import annotations

import random
import re
from typing import Any


def active(p: Any) -> bool:
    return p.caption_dropout > 0 or p.shuffle_tags


def _has_word(tag: str, word: str) -> bool:
    return bool(word) and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", tag, flags=re.IGNORECASE) is not None


def shuffle_tags(caption: str, trigger: str, keep_tokens: int, rnd: random.Random) -> str:
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    idx = next((i for i, t in enumerate(tags) if _has_word(t, trigger)), None)
    head = [tags[idx]] if idx is not None else []
    rest = tags[:idx] + tags[idx + 1:] if idx is not None else tags
    kept, tail = rest[:keep_tokens], rest[keep_tokens:]
    rnd.shuffle(tail)
    return ", ".join(head + kept + tail)


def step_captions(items: list, p: Any, micro: int) -> list[str] | None:
    """This micro-batch's captions, or None when no option is on (the cached captions)."""
    if not active(p):
        return None
    out = []
    for j, it in enumerate(items):
        rnd = random.Random(f"captions:{p.seed}:{micro}:{j}")
        if p.caption_dropout > 0 and rnd.random() < p.caption_dropout:
            out.append("")
            continue
        out.append(shuffle_tags(it.caption, p.trigger_word, p.keep_tokens, rnd) if p.shuffle_tags else it.caption)
    return out
