"""The SDXL LoRA training engine (no UI code): config, model loading, dataset, caches,
LoRA setup, optimizers, the loop, samples/validation, resumable checkpoints and export.

Entry point: `modules.lora_training.train.trainer.train(job, params, ctx)`.
"""
