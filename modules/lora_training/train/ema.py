"""Exponential moving average of the adapter weights (OneTrainer's / diffusers' EMA, on the
LoRA parameters only).

After every optimizer step from `start_step` on: shadow = decay * shadow + (1 - decay) * w;
before it the shadow is a plain copy of the weights, so decay 0 is exactly the raw weights.
The shadow lives on the weights' device in fp32, is part of the training state (exact
resume), and `applied()` swaps it into the model for a save or for samples, then swaps the
trained weights back untouched.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class AdapterEMA:
    def __init__(self, params: list, decay: float, start_step: int) -> None:
        self.params = params
        self.decay = float(decay)
        self.start_step = int(start_step)
        self.shadow = [q.detach().float().clone() for q in params]

    def update(self, step: int) -> None:
        """Call after optimizer step `step` (1-based)."""
        import torch

        with torch.no_grad():
            if step < self.start_step:
                for s, q in zip(self.shadow, self.params):
                    s.copy_(q.detach())
                return
            for s, q in zip(self.shadow, self.params):
                s.mul_(self.decay).add_(q.detach().float(), alpha=1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"shadow": [s.detach().cpu().clone() for s in self.shadow], "decay": self.decay,
                "start_step": self.start_step}

    def load_state_dict(self, state: dict) -> None:
        for s, v in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(v.to(s.device))

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The EMA weights in the model for the duration of the block."""
        import torch

        saved = [q.detach().clone() for q in self.params]
        with torch.no_grad():
            for s, q in zip(self.shadow, self.params):
                q.copy_(s.to(q.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for v, q in zip(saved, self.params):
                    q.copy_(v)


def maybe(params: list, p: Any) -> AdapterEMA | None:
    return AdapterEMA(params, p.ema_decay, p.ema_start_step) if p.ema else None
