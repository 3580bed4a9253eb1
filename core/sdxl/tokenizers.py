"""The two SDXL CLIP tokenizers, built offline from the real CLIP BPE vocabulary.

`configs/bpe_simple_vocab_16e6.txt.gz` is the merges file OpenAI's CLIP and open_clip ship
(MIT licence), carried as-is. The vocabulary is derived from it exactly as CLIP's
`SimpleTokenizer` does: the 256 byte symbols, the same with `</w>`, one entry per merge, then
`<|startoftext|>` / `<|endoftext|>` (49408 ids, the vocab.json of every SDXL tokenizer).
SDXL's tokenizer 1 pads with `<|endoftext|>`, tokenizer 2 with `!` (id 0); both cut at 77.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

BPE_FILE = Path(__file__).parent / "configs" / "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # what CLIP's SimpleTokenizer reads from the file
MAX_LENGTH = 77


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode symbol table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


@lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab: token -> id, merges in rank order) of the real CLIP BPE."""
    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(m.split()) for m in lines[1:N_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A transformers CLIPTokenizer on the real vocabulary, max length 77."""
    from transformers import CLIPTokenizer

    vocab, merges = vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token,
                         model_max_length=MAX_LENGTH)


def sdxl_tokenizers():
    """(tokenizer, tokenizer_2) as SDXL base 1.0 uses them."""
    return clip_tokenizer("<|endoftext|>"), clip_tokenizer("!")


def write_files(folder: str | Path) -> Path:
    """vocab.json + merges.txt in the layout `CLIPTokenizer.from_pretrained` reads."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n",
                                       encoding="utf-8")
    return folder
