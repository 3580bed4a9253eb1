"""SDXL shared by the tabs: base model resolution/loading and text/size conditioning."""
from core.sdxl.base import BaseRef, load_pipeline, read_unet_config, resolve_base
from core.sdxl.conditioning import encode_prompt, time_ids, tokenize

__all__ = ["BaseRef", "resolve_base", "load_pipeline", "read_unet_config", "tokenize", "encode_prompt",
           "time_ids"]
