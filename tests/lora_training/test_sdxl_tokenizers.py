"""The SDXL tokenizers built from the shipped CLIP BPE file give the ids of the real ones.

Two references: transformers' CLIPTokenizer loaded from a vocab.json + merges.txt pair (the
files every SDXL repo carries), and CLIP's own SimpleTokenizer algorithm re-implemented here
from OpenAI's published code (byte-level BPE over the same gz, `</w>` on the last symbol of a
word), plus ids known from the published vocabulary.
"""
from __future__ import annotations

import gzip

import pytest
import regex

from core.sdxl import tokenizers as tk

PROMPTS = [
    "a photo of a cat",
    "masterpiece, best quality, 1girl, solo, (long hair:1.2), blue eyes!!!",
    "score_9, score_8_up, source_anime, rating_safe",
    "Café crème brûlée — naïve façade, Ærøskøbing",
    "日本語のプロンプト 東京タワー", "emoji 🐱🎨 test",
    "don't stop, it's John's car; we'll see, they've gone",
    "numbers 12345 and 3.14 and 1,000,000", "UPPER lower MiXeD   spaces\ttabs\nnewline",
    "a</w>b </w> edge <|endoftext|> inside", "&amp; html &lt;tags&gt;", "",
    " ".join(f"word{i}" for i in range(120)),  # far past 77 tokens: truncated, eos kept last
]


class SimpleTokenizer:
    """CLIP's reference tokenizer (openai/CLIP simple_tokenizer.py), without ftfy / html unescaping."""

    def __init__(self) -> None:
        self.byte_encoder = tk.bytes_to_unicode()
        merges = gzip.open(tk.BPE_FILE, "rt", encoding="utf-8").read().split("\n")[1:49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                 regex.IGNORECASE)

    def bpe(self, token: str) -> list[str]:
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return list(word)

    def ids(self, text: str, pad: int) -> list[int]:
        import unicodedata

        # CLIP also html-unescapes; transformers' CLIPTokenizer (what SDXL uses in diffusers) does not
        text = unicodedata.normalize("NFC", text).strip()
        text = regex.sub(r"\s+", " ", text).strip().lower()
        body = []
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            body.extend(self.encoder[t] for t in self.bpe(token))
        ids = [49406] + body[:75] + [49407]
        return ids + [pad] * (77 - len(ids))


@pytest.fixture(scope="module")
def built():
    return tk.sdxl_tokenizers()


def _ids(tok, prompts):
    return tok(prompts, padding="max_length", max_length=77, truncation=True).input_ids


def test_vocab_is_the_real_clip_one(built):
    tok1, tok2 = built
    vocab, merges = tk.vocab_and_merges()
    assert len(vocab) == len(tok1) == 49408 and len(merges) == 48894
    assert tok1("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert vocab["!"] == 0 and vocab["a</w>"] == 320 and vocab["<|endoftext|>"] == 49407
    assert tok1.pad_token_id == 49407 and tok2.pad_token_id == 0  # SDXL's tokenizer 2 pads with "!"
    assert tok1.model_max_length == tok2.model_max_length == 77


def test_same_ids_as_transformers_and_clip_reference(built, tmp_path):
    from transformers import CLIPTokenizer

    tok1, tok2 = built
    folder = tk.write_files(tmp_path / "tok")
    ref1 = CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
    ref2 = CLIPTokenizer.from_pretrained(str(folder), model_max_length=77, pad_token="!")
    simple = SimpleTokenizer()
    ours1, ours2 = _ids(tok1, PROMPTS), _ids(tok2, PROMPTS)
    assert ours1 == _ids(ref1, PROMPTS) and ours2 == _ids(ref2, PROMPTS)
    for prompt, a, b in zip(PROMPTS, ours1, ours2):
        if "<|endoftext|>" in prompt:  # CLIP's regex keeps it as one special token as well
            continue
        assert a == simple.ids(prompt, pad=49407), prompt
        if "!" not in prompt:  # see below
            assert b == simple.ids(prompt, pad=0), prompt
    # transformers makes the pad token "!" special, so tokenizer 2 splits "!!!" into three id-0
    # tokens where CLIP has one "!!!</w>" (995): that is what SDXL's tokenizer_2 does in
    # diffusers, and what LoRAs are trained against, so we keep it.
    bang = PROMPTS[1]
    assert 995 in simple.ids(bang, 0) and 995 in ours1[1] and 995 not in ours2[1] and ours2[1].count(0) > 77 - 30
    long1 = ours1[-1]
    assert len(long1) == 77 and long1[0] == 49406 and long1[-1] == 49407  # truncated, eos kept
    empty2 = ours2[PROMPTS.index("")]
    assert empty2[:2] == [49406, 49407] and set(empty2[2:]) == {0}
    assert any(i > 256 for i in ours1[PROMPTS.index("日本語のプロンプト 東京タワー")][1:5])  # multi-byte merges used
