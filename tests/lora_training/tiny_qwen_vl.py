"""A tiny random Qwen2.5-VL built offline, saved like the real checkpoints.

`make_tiny_qwen_vl(path)` writes a folder that `Qwen2_5_VLForConditionalGeneration`,
`AutoTokenizer` and `AutoImageProcessor` load with `from_pretrained` (the code path of a real
`Qwen/Qwen2.5-VL-3B-Instruct` download): a byte-level BPE tokenizer trained on the spot
with the Qwen special tokens and chat template, a PIL image processor that brings every image
to 56x56 pixels (4x4 patches of 14 px -> 4 image tokens after the 2x2 merge), and a random
config with one layer everywhere. About 60k parameters.
"""
from __future__ import annotations

import json
from pathlib import Path

_CORPUS = ["a photo of a person smiling", "a dog sitting on the grass", "a red car parked in the street",
           "describe this image in one sentence.", "a woman with long hair wearing a hat", "a cat on a table"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|image_pad|>", "<|video_pad|>"]
# The real Qwen2.5-VL template, shortened (no tools); images become vision_start/image_pad/vision_end.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SIDE = 56


def make_tiny_qwen_vl(path: str | Path, seed: int = 0, side: int = SIDE, hidden: int = 32, layers: int = 1,
                      vision_hidden: int = 16, vision_depth: int = 1, family: str = "qwen2_5_vl") -> Path:
    """Build and save a tiny Qwen2.5-VL (model, tokenizer, image processor) under `path`.

    The defaults make the test model; bench/caption_bench.py asks for a larger one (`side`
    pixels per image side, a multiple of 28; `hidden` a multiple of 32). `family="qwen3_vl"`
    builds a tiny Qwen3-VL instead (16 px patches, deepstack features from vision layer 0)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2TokenizerFast,
                              Qwen2VLImageProcessorPil)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(_CORPUS * 4, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                                             show_progress=False))
    merges = [tuple(m) if isinstance(m, (list, tuple)) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    tok = Qwen2TokenizerFast(vocab=bpe.get_vocab(), merges=merges, unk_token=None, bos_token=None,
                             eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_tokens(SPECIALS, special_tokens=True)  # as in the real tokenizer.json: never split
    tok.chat_template = CHAT_TEMPLATE
    patch = 16 if family == "qwen3_vl" else 14
    side = side // (2 * patch) * 2 * patch or 2 * patch
    ip = Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=side * side, patch_size=patch, merge_size=2,
                                  temporal_patch_size=2)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    head_dim = hidden // 4  # 4 heads; mrope sections sum to head_dim / 2
    q = head_dim // 2
    special = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                   vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    text = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    mrope = [q - 2 * (q // 4), q // 4, q // 4]
    if family == "qwen3_vl":
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration as cls

        config = Qwen3VLConfig(
            text_config=dict(text, head_dim=head_dim,
                             rope_parameters={"rope_type": "default", "mrope_section": mrope, "mrope_interleaved": True}),
            vision_config=dict(depth=vision_depth, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                               num_heads=2, patch_size=patch, spatial_merge_size=2, temporal_patch_size=2,
                               out_hidden_size=hidden, num_position_embeddings=16, deepstack_visual_indexes=[0]),
            **special)
    else:
        cls = Qwen2_5_VLForConditionalGeneration
        config = Qwen2_5_VLConfig(
            text_config=dict(text, rope_scaling={"type": "mrope", "mrope_section": mrope}),
            vision_config=dict(depth=vision_depth, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                               num_heads=2, patch_size=patch, spatial_merge_size=2, temporal_patch_size=2,
                               window_size=56, out_hidden_size=hidden, fullatt_block_indexes=list(range(vision_depth))),
            **special)
    torch.manual_seed(seed)
    model = cls(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(path)
    tok.save_pretrained(path)
    ip.save_pretrained(path)
    return path
