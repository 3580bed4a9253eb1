"""SDXL shared by the tabs: base model resolution/loading (diffusers folders, single files
offline, a separate VAE), file detection, the CLIP tokenizers, text/size conditioning."""
from core.sdxl.base import BaseRef, load_pipeline, load_vae, read_unet_config, resolve_base, resolve_vae
from core.sdxl.conditioning import encode_prompt, time_ids, tokenize

__all__ = ["BaseRef", "resolve_base", "resolve_vae", "load_pipeline", "load_vae", "read_unet_config", "tokenize",
           "encode_prompt", "time_ids"]
