#!/usr/bin/env bash
# Every GPU benchmark of the studio in one go (target: under 10 minutes on one H100/H200),
# then docs/BENCHMARKS.md rebuilt from the reports they write (docs/bench/*.md).
#
#   bash bench/gpu_all.sh            # from the repository root, on a machine with CUDA
#
# Each bench has its own time cap so one slow part cannot eat the others' budget; a bench
# that fails or hits its cap is named in bench/results/gpu_all.log and the run goes on. The
# CPU figures already in docs/ stay where a GPU run does not replace them.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
LOG=bench/results/gpu_all.log
mkdir -p bench/results
: > "$LOG"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
  echo "no CUDA device: nothing to run" | tee -a "$LOG"; exit 1; }
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" | tee -a "$LOG"

run() {  # run CAP_SECONDS NAME CMD...
  local cap=$1 name=$2; shift 2
  local t0=$SECONDS
  echo "== $name (cap ${cap}s): $*" | tee -a "$LOG"
  timeout --signal=INT --kill-after=20 "$cap" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - t0))s" | tee -a "$LOG"
}

# Caps add up to 570 s (tests/core/test_gpu_script.py keeps them under 600), leaving room for
# the GPU's start and the report at the end.
# LoRA: real-size SDXL, every VRAM preset at 1024 px (ours vs diffusers' loop, peak, MFU),
# the speed levers (torch.compile included), batch for each VRAM target.
run 240 lora_realsize "$PY" bench/lora_realsize_bench.py --device cuda --compile
# LoRA: each preset's peak (max_memory_allocated) at 1024 px against the estimate the tab shows.
run 60 lora_memory "$PY" bench/lora_memory_bench.py --device cuda
# LoRA: the tiny-model ratio against the diffusers script loop, on the GPU.
run 50 lora_tiny "$PY" bench/lora_training_bench.py --device cuda --steps 40 --rounds 2
# Captioning batch vs one-by-one (a larger random VLM in bf16; the tagger on onnxruntime's CUDA provider if present).
run 40 captioning "$PY" bench/caption_bench.py --device cuda --images 32 --batch 8
run 60 super_resolution "$PY" bench/super_resolution_bench.py --device cuda --full
run 45 frame_interpolation "$PY" bench/frame_interpolation_bench.py --device cuda --fp16
run 45 style_transfer "$PY" bench/style_transfer_bench.py --device cuda
run 30 image_classifier "$PY" bench/image_classifier_bench.py --device cuda --size 224 --images 256 --batch 64
"$PY" bench/realsize_report.py >>"$LOG" 2>&1
"$PY" bench/make_benchmarks_md.py >>"$LOG" 2>&1
echo "done in ${SECONDS}s; docs/BENCHMARKS.md rebuilt" | tee -a "$LOG"
