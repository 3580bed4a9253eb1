"""A tiny random Florence-2 built offline, saved like the real checkpoints.

`make_tiny_florence(path)` writes a folder that `Florence2ForConditionalGeneration` and
`Florence2Processor` load with `from_pretrained` (the same code path as a real
`florence-community/Florence-2-base` download): a byte-level BPE tokenizer trained on the
spot with `tokenizers` and wrapped as a BART tokenizer with an `<image>` token, a CLIP-style
image processor at 64x64 whose `image_seq_length` (5) equals the tokens the tiny DaViT tower
emits (a 2x2 grid after strides 4*2*2*2 = 32, plus one pooled token), and a random
Florence2Config with one layer everywhere. About 40k parameters; builds in ~1 s.
Reused by the LoRA trainer's tests and the e2e tests.
"""
from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "a photo of a person smiling", "a dog sitting on the grass", "a red car parked in the street",
    "a woman with long hair wearing a hat", "a cat on a wooden table", "the image shows a landscape",
    "what does the image describe?", "describe in detail what is shown in the image.",
    "describe with a paragraph what is shown in the image.", "a close up portrait, blue background",
]
IMAGE_SIZE = 64
IMAGE_SEQ_LENGTH = 5  # 2x2 grid + 1, for 64x64 input and the default patch strides
# Real Florence-2 processors carry parsing rules per answer type; captions need pure_text.
_POST_PROCESSOR_CONFIG = {"pure_text": {}, "ocr": {"PATTERN": r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"
                                                   r"<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>",
                                                   "AREA_THRESHOLD": 0.0},
                          "phrase_grounding": {"banned_grounding_tokens": []}, "description_with_bboxes": {},
                          "description_with_polygons": {}, "polygons": {}, "bboxes": {},
                          "description_with_bboxes_or_polygons": {}}


def make_tiny_florence(path: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny Florence-2 (model + processor) under `path`; returns `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (BartTokenizer, CLIPImageProcessorPil, Florence2Config,
                              Florence2ForConditionalGeneration, Florence2Processor)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(_CORPUS * 4, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, show_progress=False))  # corpus alphabet only: tokens
    # are ASCII words/pieces, so random generations still decode to readable text
    vocab = bpe.get_vocab()
    merges = [tuple(pair) if isinstance(pair, (tuple, list)) else tuple(pair.split(" "))
              for pair in _merges_of(bpe)]
    tokenizer = BartTokenizer(vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"})
    image_processor = CLIPImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                            do_center_crop=False, image_seq_length=IMAGE_SEQ_LENGTH)
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer,
                                   post_processor_config=_POST_PROCESSOR_CONFIG)
    tok = processor.tokenizer
    config = Florence2Config(
        vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[8, 8, 16, 16], num_heads=[1, 1, 1, 1],
                           num_groups=[1, 1, 1, 1], window_size=2, projection_dim=16, drop_path_rate=0.0,
                           max_position_embeddings=8, max_temporal_embeddings=4),
        text_config=dict(model_type="bart", vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                         decoder_ffn_dim=32, max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=tok.bos_token_id),
        image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _merges_of(bpe) -> list:
    """The trained merges, read back from the tokenizer's JSON (no public getter)."""
    import json

    return json.loads(bpe.to_str())["model"]["merges"]
