"""Old import path of the SDXL base loading, which now lives in core.sdxl (shared with other tabs).

Kept as a re-export only, so code written against the old path keeps working.
"""
from core.sdxl import BaseRef, encode_prompt, load_pipeline, read_unet_config, resolve_base, time_ids, tokenize

__all__ = ["BaseRef", "resolve_base", "load_pipeline", "read_unet_config", "tokenize", "encode_prompt",
           "time_ids"]
