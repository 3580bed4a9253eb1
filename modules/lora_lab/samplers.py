"""The samplers offered, by their A1111 names, as diffusers schedulers.

Names are the ones A1111/Forge print in the `Sampler:` field, so a PNG made here reads back
with the same sampler there. Each entry is (diffusers class name, config overrides); the
scheduler is built from the base model's own scheduler config (beta schedule, prediction
type, timestep spacing), like A1111's choice applied to that checkpoint.
"""
from __future__ import annotations

from typing import Any

SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        "use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2,
                                                            "use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
}
SAMPLER_NAMES = tuple(SAMPLERS)


def make_scheduler(name: str, base_config: dict) -> Any:
    """A fresh scheduler `name` configured from the base's scheduler config."""
    import diffusers

    cls_name, overrides = SAMPLERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(dict(base_config), **overrides)
