#!/usr/bin/env bash
# The GPU check: on a machine with one CUDA GPU, train the default DCGAN and StyleGAN2 for a
# few hundred steps at 32-true and bf16-mixed, run the benchmark there, and exercise the
# newer paths (streaming a prepared set at batch 256, 64x64; export and sampling; ADA and
# progressive growing; R3GAN when present). About 8 minutes on an H100/H200-class GPU.
#
#   OUT=gpu_check_out bash scripts/gpu_check.sh
#
# Writes OUT/summary.txt (one line per run: what, exit status, seconds, images/s and the
# final losses) and OUT/all.log (every command's output). If a folder .whl holds wheels
# (hydra-core, omegaconf, antlr4-python3-runtime, torch-fidelity, litdata, ... for a
# machine without network), they are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
WORK=$(mktemp -d)
SUMMARY="$OUT/summary.txt"
LOG="$OUT/all.log"
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
} 2>&1 | tee "$SUMMARY" >> "$LOG"

# run NAME SECONDS COMMAND...: the command's output to all.log, one summary line.
run() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$WORK/run.log" 2>&1
  local rc=$?
  { echo "=== $name (rc=$rc): $*"; cat "$WORK/run.log"; } >> "$LOG"
  local line=""
  if grep -aq "metrics: {" "$WORK/run.log"; then
    line=$(grep -a "metrics: {" "$WORK/run.log" | tail -1 | sed 's/.*metrics: //' |
      python3 -c '
import json, sys
m = json.loads(sys.stdin.read())
rate = m["images_seen"] / max(m["wall_time_s"], 1e-9)
losses = {k: round(v, 4) for k, v in m.items() if k in ("train/d_loss", "train/g_loss")}
steps = m["steps"]
print(f"steps={steps} images/s={rate:.0f} {losses}")')
  fi
  echo "$name rc=$rc $((SECONDS - start))s $line" >> "$SUMMARY"
  tail -n 3 "$WORK/run.log" | grep -a -i "error\|ratio\|images/s" >> "$SUMMARY"
}

COMMON=(trainer=gpu evaluation=none logger=none callbacks.sample_grid.every_n_steps=0
        trainer.enable_progress_bar=false)
for precision in 32-true bf16-mixed; do
  run "dcgan-$precision" 90 python3 train.py "${COMMON[@]}" trainer.max_steps=400 \
    trainer.precision=$precision hydra.run.dir="$WORK/dcgan-$precision"
  run "stylegan-$precision" 150 python3 train.py "${COMMON[@]}" model=stylegan \
    trainer.max_steps=300 trainer.precision=$precision hydra.run.dir="$WORK/stylegan-$precision"
done

run "bench-dcgan" 120 python3 -m ganlab.bench model=dcgan data=digits data.batch_size=64 \
  trainer.accelerator=gpu trainer.enable_progress_bar=false

# Streaming from a prepared litdata set at batch 256, 64x64 (data.memory_limit forces the
# stream), against the same set in memory.
python3 - "$WORK/images" <<'EOF' >> "$LOG" 2>&1
import sys
sys.path.insert(0, "scripts")
from pathlib import Path
from data_bench import synthetic
synthetic(Path(sys.argv[1]), 8192)
EOF
run "prepare-litdata" 120 python3 -m ganlab.prepare source="$WORK/images" \
  output="$WORK/set" image_size=64 channels=3 format=litdata workers=8
for memory in 1MB auto; do
  run "prepared-256-memory_limit=$memory" 120 python3 train.py "${COMMON[@]}" data=prepared \
    data.path="$WORK/set" data.image_size=64 data.channels=3 data.batch_size=256 \
    data.memory_limit=$memory trainer.max_steps=150 hydra.run.dir="$WORK/prepared-$memory"
done

# ADA and progressive growing on the GPU; R3GAN's digits recipe where it exists.
run "dcgan-ada-bf16" 90 python3 train.py "${COMMON[@]}" augment=ada trainer.max_steps=200 \
  trainer.precision=bf16-mixed hydra.run.dir="$WORK/ada"
run "progan" 90 python3 train.py "${COMMON[@]}" model=progan trainer.max_steps=200 \
  model.generator.stable_kimg=2 model.generator.fade_kimg=2 hydra.run.dir="$WORK/progan"
if [[ -f conf/experiment/r3gan_digits.yaml ]]; then
  run "r3gan_digits" 90 python3 train.py "${COMMON[@]}" experiment=r3gan_digits \
    trainer.max_steps=200 hydra.run.dir="$WORK/r3gan"
fi

# Export the DCGAN run and sample it on the GPU.
run "export" 90 python3 -m ganlab.export checkpoint="$WORK/dcgan-32-true/checkpoints/last.ckpt" \
  output="$WORK/export" formats=[safetensors,torchscript,onnx]
run "sample-export" 60 python3 -m ganlab.sample checkpoint="$WORK/export" \
  output="$OUT/samples.png" device=cuda
date -u >> "$SUMMARY"
cat "$SUMMARY"
