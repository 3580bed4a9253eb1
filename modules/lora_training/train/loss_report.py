"""The loss as the user sees it: per-step losses stay on the device and are read back in
batches (one host sync per flush, a mean over ranks with several processes), then emitted in
step order as metrics, the progress line and a log line every 50 steps, with a bias-corrected
exponential moving average for the smoothed curve.

Its EMA is part of a saved state (`state()` / `load_state()`), so a resumed run's smoothed
curve continues the uninterrupted one.
"""
from __future__ import annotations

from typing import Any

from modules.lora_training.train import autosave


def fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


class LossReport:
    def __init__(self, trainer: Any) -> None:
        self.t = trainer
        self.pending: list = []  # (step, loss tensor, lr, eta seconds) not yet read back
        self.ema, self.ema_n = 0.0, 0
        self.last = float("nan")

    def add(self, step: int, loss: Any, lr: float, eta: float) -> None:
        self.pending.append((step, loss, lr, eta))

    def __len__(self) -> int:
        return len(self.pending)

    def smooth(self) -> float:
        return self.ema / (1 - 0.9 ** self.ema_n) if self.ema_n else float("nan")

    def state(self) -> dict:
        return {"ema": self.ema, "ema_n": self.ema_n}

    def load_state(self, state: dict) -> None:
        self.ema, self.ema_n = float(state["ema"]), int(state["ema_n"])

    def flush(self) -> None:
        """Read the pending losses back and emit them (every rank calls it: with several
        processes the read-back is a collective)."""
        if not self.pending:
            return
        import torch

        tr = self.t
        losses = torch.stack([x[1] for x in self.pending]).float()
        if tr.world > 1:
            losses = tr.dist.reduce(losses, reduction="mean")
        pending, self.pending = self.pending, []
        job, total = tr.job, tr.total
        for (step, _, lr, eta), loss in zip(pending, losses.tolist()):
            self.last = loss
            self.ema = 0.9 * self.ema + 0.1 * loss
            self.ema_n += 1
            if not tr.main:
                continue
            job.metric(step, loss=loss, loss_smooth=self.smooth(), lr=lr)
            desc = job.t("lora.progress.step", step=step, total=total, loss=f"{loss:.4f}", eta=fmt_eta(eta))
            if tr.autosave.last_wall is not None:  # how much a crash now would lose
                desc += job.t("lora.progress.last_state", step=tr.autosave.last_step,
                              time=autosave.clock_time(tr.autosave.last_wall))
            job.progress(step, total, desc)
            if step == 1 or step % 50 == 0:
                tr.log("lora.log.step", step=step, total=total, loss=f"{loss:.4f}",
                       smooth=f"{self.smooth():.4f}", lr=f"{lr:.2e}", eta=fmt_eta(eta))
