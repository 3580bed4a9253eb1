"""The training loop: steps, accumulation, mixed precision, live metrics, samples,
validation, periodic checkpoints, Stop (state + usable LoRA within one step) and Resume
(bit-for-bit the same trajectory as an uninterrupted run with the same seed).

Determinism: the batch order of an epoch is a function of (seed, epoch); every random draw
of the loss (latent sampling, noise, timesteps) comes from one CPU generator whose state is
checkpointed, together with torch/CUDA/numpy/python RNG states (LoRA dropout uses torch's).
A stop mid-accumulation rolls back to the state at the start of that cycle, so a saved
state is always at an optimizer-step boundary.

Hot path (docs/BENCHMARKS.md, "speed levers"): on CUDA the loss is read back to the host
every `SYNC_EVERY` steps, not every step (metrics and the smoothed loss are emitted in order
when it is); the RNG snapshot for a rollback is only taken when a cycle has several
micro-batches. Several processes (accelerate): every rank walks the same global batches of
batch_size x world items, draws the randomness of the whole global batch and trains its own
rows of it, so N ranks x batch b follow the trajectory of one process x batch N*b; ranks
agree on Stop at each check; rank 0 alone writes caches first, checkpoints, samples, the LoRA.
"""
from __future__ import annotations

import math
import time
from typing import Any

from core.errors import StudioError
from modules.lora_training.train import autosave
from modules.lora_training.train import checkpoint as ck
from modules.lora_training.train import config as cfg
from modules.lora_training.train import dataset as ds
from modules.lora_training.train import export_kohya as ex
from modules.lora_training.train import evaluation, init_lora, lora_setup, optim, outputs, param_groups, recipe_runtime, session
from modules.lora_training.train.loss_report import LossReport, fmt_eta
from modules.lora_training.train.estimate import plan, save_timing, timing_key
from modules.lora_training.train.step import diffusion_loss, optimizer_step

SYNC_EVERY = {"cuda": 10, "cpu": 1}  # optimizer steps between loss read-backs (host syncs)


class Trainer:
    def __init__(self, job: Any, params: cfg.TrainParams, ctx: Any, dist: Any = None) -> None:
        self.job, self.ctx, self.dist = job, ctx, dist
        self.p = cfg.apply_preset(params)
        self.main = dist is None or dist.is_main_process
        self.step = 0
        self.epoch = 0
        self.pos = 0  # micro-batch index inside the current epoch's batch order
        self.report = LossReport(self)
        self.batches: list[list[int]] = []
        self.saved_step, self.saved_path = -1, None
        self.autosave = autosave.SaveClock(self.p.save_every_minutes)
        self.step_file_at = -1
        self.started_at = time.time()  # ss_training_started_at; a resumed run keeps the first one
        self.rank, self.world = 0, 1

    # -- helpers -----------------------------------------------------------------
    def log(self, key: str, **kw: Any) -> None:
        if self.main:
            self.job.info(self.job.t(key, **kw))

    def _loss(self, latents, embeds, pooled, tids, gen, model=None, **kw):
        model = model or (self.ddp_unet if self.dist is not None else self.s.unet)
        return diffusion_loss(model, self.s.noise_scheduler, latents, embeds, pooled, tids, gen,
                              noise_offset=kw.pop("noise_offset", 0.0), min_snr_gamma=kw.pop("min_snr_gamma", 0.0),
                              autocast_dtype=self.autocast, weight_dtype=self.s.weight_dtype, **kw)

    def _state(self, rng: dict | None = None) -> dict:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng or ck.rng_state(self.gen),
                "step": self.step, "epoch": self.epoch, "pos": self.pos, **self.report.state(),
                "order": [b for bs in self.batches for b in bs][:100_000], **self.rx.state()}

    def _models(self) -> dict:
        s = self.s
        return {"unet": s.unet, **({"te1": s.te1, "te2": s.te2} if s.te_trained else {})}

    def _parts(self) -> dict:
        return {part: lora_setup.adapter_state(m) for part, m in self._models().items()}

    def periodic_save(self) -> None:
        """Save-every-N: a resumable state and `<name>-000500.safetensors` beside the final file."""
        self.save_state()
        if self.step_file_at != self.step:  # step and epoch saves can land on the same step
            self.save_lora(finished=False, path=outputs.step_path(self.s.paths.loras, self.p.name, self.step))
            self.step_file_at = self.step

    def save_state(self, rng: dict | None = None) -> Any:
        self._flush()  # every rank: the read-back is a collective with several processes
        if not self.main:
            return None
        if self.saved_step == self.step and self.saved_path is not None:
            return self.saved_path  # periodic step + epoch saves can land on the same step
        try:
            path = ck.save_state(self.run_dir, self.step, self._parts(), self._state(rng),
                                 {"epoch": self.epoch, "pos": self.pos, "params": self.p.model_dump(mode="json"),
                                  "dataset_hash": self.dhash, "base": self.s.base.ref, "run": self.run_dir.name,
                                  "job_id": self.job.id, "started_at": self.started_at}, self.p.keep_last)
        except OSError as exc:
            import errno

            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StudioError("lora.disk_full", path=str(self.run_dir)) from exc
            raise
        self.saved_step, self.saved_path = self.step, path
        self.autosave.saved(self.step)
        self.job.artifact(path, "checkpoint")
        self.log("lora.log.checkpoint", step=self.step, path=str(path),
                 time=autosave.clock_time(self.autosave.last_wall))
        return path

    def save_lora(self, finished: bool, path: Any = None) -> dict:
        if not self.main:
            return {}
        meta = ex.metadata(self.p, base_model=self.s.base.ref, steps=self.step, epoch=self.epoch,
                           dataset_hash=self.dhash, n_images=len(self.s.train_items), finished=finished,
                           items=self.s.train_items, started_at=self.started_at, total_steps=self.total)
        meta.update(recipe_runtime.metadata(self.p, self.s.train_items, self.s.reg_items))
        out = ex.save_kohya(path or outputs.final_path(self.s.paths.loras, self.p.name),
                            ex.kohya_state(self._models(), self.p.alpha), meta)
        self.job.artifact(out, "lora" if path is None else "lora_step")
        res = {"lora": str(out)}
        if path is not None:  # an intermediate file: the diffusers copy is written at the end only
            self.log("lora.log.saved_lora", path=str(out))
            return res
        res.update(self.rx.save_ema(meta))
        if self.p.export_diffusers:
            d = ex.save_diffusers(self.s.paths.loras / f"{self.p.name}_diffusers", self._parts())
            self.job.artifact(d, "lora_diffusers")
            res["lora_diffusers"] = str(d)
        self.log("lora.log.saved_lora", path=str(out))
        return res

    # -- setup ---------------------------------------------------------------------
    def setup(self) -> bool:
        import torch

        p, job, ctx = self.p, self.job, self.ctx
        self.s = s = session.open_session(p, ctx, job)
        if self.dist is not None:
            s.device = str(self.dist.device)
        self.dhash = ds.dataset_hash(s.train_items + s.val_items)
        # a state this run cannot continue is refused here, before any model or weight is loaded
        wanted = ck.settings_of(p.model_dump(mode="json"), s.base.ref)
        self.resume_dir = ck.find_state(p.resume_from, s.paths.checkpoints, p.name, wanted) if p.resume_from else None
        # each run owns its states; a resumed run goes on in the folder of the state it continues
        self.run_dir = (ck.run_dir_of(self.resume_dir, s.paths.checkpoints) if self.resume_dir else None) \
            or ck.new_run_dir(s.paths.checkpoints, p.name, self.job.id)
        if self.main:
            outputs.check_free(p, s.paths.loras)  # before any weight is loaded
        world = self.dist.num_processes if self.dist is not None else 1
        rank = self.dist.process_index if self.dist is not None else 0
        self.rank, self.world = rank, world
        self.per_epoch = len(self._epoch_batches(0))
        self.total = p.max_steps or math.ceil(self.per_epoch / p.grad_accum) * p.epochs
        est = plan(p, ctx, n_train=len(s.train_items), per_epoch=self.per_epoch, world=world, device=s.device)
        est["steps"] = self.total
        self.estimate = est
        self.log("lora.log.estimate", steps=est["steps"], images=len(s.train_items), val=len(s.val_items),
                 vram=est["vram_gib"], lora_params=est["lora_params"])
        if est.get("seconds"):
            self.log("lora.log.estimate_time", time=fmt_eta(est["seconds"]))
        self.log("lora.log.options", preset=p.vram_preset, batch=p.batch_size, accum=p.grad_accum,
                 optimizer=p.optimizer, precision=str(s.weight_dtype).replace("torch.", ""),
                 ckpt=p.gradient_checkpointing, cache=p.cache_latents, te=p.train_text_encoder)
        self.log("lora.log.loading", base=s.base.ref)
        session.load_models(s, ctx, job)
        if self.dist is not None:
            with self.dist.main_process_first():  # rank 0 fills the cache, the others read it
                filled = session.fill_caches(s, job)
        else:
            filled = session.fill_caches(s, job)
        if not filled:
            return False
        if s.cache is not None and p.cache_latents:
            self.log("lora.log.cache", hits=s.cache.hits, misses=s.cache.misses, path=str(s.paths.cache))
        _seed_everything(p.seed)  # LoRA init (gaussian A) draws from torch's RNG
        groups = lora_setup.setup(s.unet, s.te1, s.te2, p)
        if s.init_lora_path is not None and self.resume_dir is None:  # continue from a LoRA file
            self.log("lora.log.init_lora", path=str(s.init_lora_path), modules=init_lora.apply_to_session(s))
        if p.gradient_checkpointing:
            s.unet.enable_gradient_checkpointing()
            if s.te_trained:
                for te in (s.te1, s.te2):  # transformers 5 renamed it; keep the old name working
                    (getattr(te, "activation_checkpointing_enable", None) or te.gradient_checkpointing_enable)()
        s.unet.train()
        models = {"unet": s.unet, "te1": s.te1, "te2": s.te2}  # LoRA+ / per-block LR split the groups
        self.opt = optim.build_optimizer(p.optimizer, param_groups.refine(groups, models, p), p.weight_decay, s.device)
        self.sched = optim.build_scheduler(p.lr_scheduler, self.opt, p.warmup_steps, self.total)
        fp16 = s.weight_dtype == torch.float16
        dev_type = "cuda" if s.device.startswith("cuda") else "cpu"
        self.scaler = torch.amp.GradScaler(dev_type, enabled=fp16)
        self.autocast = s.weight_dtype if s.weight_dtype != torch.float32 else None
        self.trainable = [q for g in groups for q in g["params"]]
        self.rx = recipe_runtime.RecipeRuntime(self)
        self.gen = torch.Generator().manual_seed(p.seed)
        self.sync_every = SYNC_EVERY["cuda" if s.device.startswith("cuda") else "cpu"]
        if self.dist is not None:
            self.ddp_unet = self.dist.prepare_model(s.unet)
        if self.resume_dir is not None:
            self._resume()
        return True

    def _resume(self) -> None:
        adapters, state, meta = ck.load_state(self.resume_dir)
        for part, model in (("unet", self.s.unet), ("te1", self.s.te1), ("te2", self.s.te2)):
            if (part in adapters) != (part == "unet" or self.s.te_trained):
                raise StudioError("lora.state_mismatch", detail=f"text encoders trained: {self.s.te_trained}")
            if part not in adapters:
                continue
            try:
                bad = lora_setup.load_adapter_state(model, {k: v.to(self.s.device) for k, v in adapters[part].items()})
            except RuntimeError as exc:  # shape mismatch: other rank / targets
                raise StudioError("lora.state_mismatch", detail=str(exc)[:200]) from exc
            if bad:
                raise StudioError("lora.state_mismatch", detail=", ".join(bad[:3]))
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        ck.set_rng_state(state["rng"], self.gen)
        self.step, self.epoch, self.pos = int(state["step"]), int(state["epoch"]), int(state["pos"])
        self.report.load_state(state)
        self.rx.load_state(state)
        self.started_at = float(meta.get("started_at", self.started_at))
        self.log("lora.log.resumed", path=str(self.resume_dir), step=self.step, epoch=self.epoch)

    # -- the loop --------------------------------------------------------------------
    def run(self) -> dict:
        t_start = time.time()
        if not self.setup():
            self.log("lora.log.stopped_early")
            return {"stopped": True, "steps": 0}
        p, s = self.p, self.s
        stopped = False
        step_times: list[float] = []
        self.autosave = autosave.SaveClock(p.save_every_minutes)  # counts training, not loading
        while self.step < self.total and not stopped:
            self.batches = self._epoch_batches(self.epoch)
            while self.pos < len(self.batches) and self.step < self.total:
                t0 = time.time()
                n_micro = min(p.grad_accum, len(self.batches) - self.pos)
                # a stop before the first micro-batch has drawn nothing: no snapshot needed
                snapshot = ck.rng_state(self.gen) if n_micro > 1 else None
                loss_sum = None
                for m in range(n_micro):
                    if self._should_stop():
                        stopped = True
                        break
                    loss = self._micro_step(self.batches[self.pos + m], last=m == n_micro - 1, n_micro=n_micro,
                                            micro=self.epoch * len(self.batches) + self.pos + m)
                    loss_sum = loss if loss_sum is None else loss_sum + loss
                if stopped:  # roll back to the last optimizer-step boundary
                    self.opt.zero_grad(set_to_none=True)
                    if snapshot is not None:
                        ck.set_rng_state(snapshot, self.gen)
                    break
                self._optimizer_step()
                self.pos += n_micro
                self.step += 1
                self.rx.after_step(self.step)
                step_times.append(time.time() - t0)
                self._after_step(loss_sum / n_micro, step_times)
                if self._should_stop():
                    stopped = True
                    break
            if not stopped and self.pos >= len(self.batches):
                self.epoch += 1
                self.pos = 0
                if p.save_every_epochs and self.epoch % p.save_every_epochs == 0 and self.step < self.total:
                    self.periodic_save()
        self._flush()
        result = {"steps": self.step, "epochs": self.epoch, "stopped": stopped, "loss": self.report.last,
                  "loss_smooth": self.report.smooth(), "estimate": self.estimate,
                  "seconds": round(time.time() - t_start, 2),
                  "cache_hits": s.cache.hits if s.cache else 0, "cache_misses": s.cache.misses if s.cache else 0}
        if step_times and self.main:
            save_timing(self.ctx, timing_key(p, self.ctx.models.device_name(), s.base.fingerprint),
                        sorted(step_times)[len(step_times) // 2])
        if self.main and s.device.startswith("cuda"):
            import torch

            peak = torch.cuda.max_memory_allocated() / 2**20
            result["peak_mem_mb"] = round(peak, 1)
            self.log("lora.log.peak_memory", mb=round(peak))
        if self.main:
            state_dir = self.save_state()
            result["state"] = str(state_dir)
            result.update(self.save_lora(finished=not stopped))
            self.log("lora.log.stopped" if stopped else "lora.log.done", step=self.step, total=self.total)
        return result

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """This epoch's batches; with several processes, the global batches (world x batch)."""
        return ds.epoch_batches(self.s.train_items, self.p.batch_size * self.world, self.p.seed, epoch)

    def _micro_step(self, batch: list[int], last: bool, n_micro: int, micro: int):
        """Forward + backward of one micro-batch (the recipe's loss); returns the detached loss
        (no host sync)."""
        import contextlib

        items = [self.s.train_items[i] for i in batch]
        keep = None
        if self.world > 1:  # this rank's rows of the global batch (a short tail batch repeats one)
            keep = list(range(len(items)))[self.rank::self.world] or [len(items) - 1]
        sync = contextlib.nullcontext() if self.dist is None or last else self.dist.no_sync(self.ddp_unet)
        with sync:
            loss = self.rx.micro_loss(items, micro, keep=keep)
            scaled = self.scaler.scale(loss / n_micro)
            scaled.backward() if self.dist is None else self.dist.backward(scaled)
        return loss.detach()

    def _optimizer_step(self) -> None:
        if self.world > 1 and self.s.te_trained:
            self._average_te_grads()  # DDP wraps the UNet only
        optimizer_step(self.opt, self.sched, self.scaler, self.trainable, self.p.max_grad_norm)

    def _average_te_grads(self) -> None:
        import torch.distributed as tdist

        for g in self.opt.param_groups:
            if g.get("name") in ("te1", "te2"):
                for q in g["params"]:
                    if q.grad is not None:
                        tdist.all_reduce(q.grad)
                        q.grad.div_(self.world)

    def _should_stop(self) -> bool:
        """Stop asked? With several processes every rank gets the same answer (any rank asked)."""
        return self._agreed(self.job.should_stop())

    def _agreed(self, flag: bool) -> bool:
        """True on every rank when it is true on any (a collective with several processes)."""
        if self.world == 1:
            return flag
        import torch

        t = torch.tensor([1.0 if flag else 0.0], device=self.dist.device)
        return bool(self.dist.reduce(t, reduction="sum").item() > 0)

    def _flush(self) -> None:
        self.report.flush()

    def _after_step(self, loss: Any, step_times: list[float]) -> None:
        p = self.p
        lr = self.sched.get_last_lr()[0]
        if p.optimizer == "prodigy":  # effective LR = lr * d (Prodigy's own estimate)
            lr *= float(self.opt.param_groups[0].get("d", 1.0))
        recent = step_times[-20:]
        eta = (self.total - self.step) * sum(recent) / len(recent)
        self.report.add(self.step, loss, lr, eta)
        val = p.validation_every_steps and self.s.val_items and self.step % p.validation_every_steps == 0
        sample = p.sample_every_steps and p.sample_prompts and self.step % p.sample_every_steps == 0
        save = p.save_every_steps and self.step % p.save_every_steps == 0 and self.step < self.total
        timed = False
        if len(self.report) >= self.sync_every or self.step == 1 or self.step % 50 == 0 or val or sample or save:
            self._flush()  # on every rank (a collective with several processes)
            # a timed save waits for a read-back step: every rank reaches it at the same steps
            timed = not save and self.step < self.total and self._agreed(self.autosave.due())
        if not self.main:
            return
        if val:
            self.job.metric(self.step, val_loss=evaluation.validation_loss(self))
        if sample:
            evaluation.render_samples(self)
        if save:
            self.periodic_save()
        elif timed:
            self.log("lora.log.timed_save", minutes=f"{self.autosave.minutes_since():.0f}")
            self.save_state()  # crash safety only: no step LoRA file for a timed save


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CUDA too


def train(job: Any, params: cfg.TrainParams, ctx: Any, dist: Any = None) -> dict:
    """Run one training job (the `lora.train` job kind). Everything it loaded is released
    when it ends, however it ends (the runner does it too; scripts and the CLI rely on this)."""
    try:
        return Trainer(job, params, ctx, dist).run()
    finally:
        ctx.models.release(job.id)
