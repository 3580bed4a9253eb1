"""Parameters of the LoRA Lab jobs (pydantic: REST answers 422 naming the field).

`lab.generate`: txt2img with any number of LoRAs at chosen strengths.
`lab.grid`: rows = LoRA files (a run's step checkpoints or unrelated files), columns =
strengths, one grid per prompt, same seed in every cell.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from core.params import MAX_PROMPT, MAX_SEED, Name, Prompt, StrictParams
from modules.lora_lab.samplers import SAMPLER_NAMES

Sampler = Literal[SAMPLER_NAMES]  # type: ignore[valid-type]
Precision = Literal["auto", "fp32", "fp16", "bf16"]


class LoraChoice(StrictParams):
    path: str = Field(min_length=1, max_length=4096, description="a .safetensors file, or a name in LORAS_DIR")
    strength: float = Field(1.0, ge=-4.0, le=4.0)


class SamplingParams(StrictParams):
    """What every generation needs: base, prompt, sampler and size."""

    base_model: str = Field("", max_length=4096, description="SDXL diffusers folder, single file or hub id; "
                            "default DEFAULT_SDXL_MODEL_FOR_LORA")
    negative_prompt: str = Field("", max_length=MAX_PROMPT)
    sampler: Sampler = "DPM++ 2M Karras"
    steps: int = Field(25, ge=1, le=150)
    cfg: float = Field(6.0, ge=0.0, le=30.0, description="classifier-free guidance scale")
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 = random (the seed used is recorded)")
    width: int = Field(1024, ge=64, le=2048, multiple_of=8)
    height: int = Field(1024, ge=64, le=2048, multiple_of=8)
    precision: Precision = "auto"
    preview_every: int = Field(5, ge=0, le=150, description="steps between live previews, 0 = none")
    output_dir: str = Field("", max_length=4096, description="default OUTPUTS_DIR/lora_lab/<job id>")

    @field_validator("base_model", "output_dir")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


class GenerateParams(SamplingParams):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    loras: list[LoraChoice] = Field(default_factory=list, max_length=16)
    batch: int = Field(1, ge=1, le=16, description="images, seeds seed, seed+1, ...")


class GridParams(SamplingParams):
    prompts: list[Prompt] = Field(min_length=1, max_length=8, description="one grid per prompt")
    rows: list[Annotated[str, Field(max_length=4096)]] = Field(min_length=1, max_length=32, description="LoRA files, one row each")
    strengths: list[Annotated[float, Field(ge=-4.0, le=4.0)]] = Field(default_factory=lambda: [0.0, 0.5, 0.75, 1.0], min_length=1, max_length=12)
    row_labels: list[Name] = Field(default_factory=list, max_length=32, description="default: file name / step")
    label: bool = True

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        v = [p.strip() for p in v if p and p.strip()]
        if not v:
            raise ValueError("at least one non-empty prompt")
        return v
