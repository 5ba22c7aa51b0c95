#!/usr/bin/env bash
# One lease of a GPU (<= 8 minutes): the graph-captured rows first (model.cuda_graph, issue 27),
# then the batch scan, the architectures' rows and the runs that CPU CI cannot cover.
# Run from the repository root; output under ${OUT:-/tmp/gpu_out}.
# On a bare machine without Hydra/W&B, carry their wheels in .whl (experiments/throughput/RESULTS.md).
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# a short real run (src.train) whose metrics.csv shows the step's losses, and the capture log
check() {
  name=$1; shift
  timeout 150 python3 -m src.train debug=fast logger=csv trainer.limit_train_batches=24 \
    trainer.log_every_n_steps=4 hydra.run.dir=/tmp/runs/$name "$@" >"$OUT/check_$name.log" 2>&1
  rc=$?
  echo "check $name: exit $rc $(sed -n "1p;\$p" /tmp/runs/$name/metrics.csv 2>/dev/null | tr "\n" " ")" | tee -a "$OUT/checks.txt"
  grep -h "model.cuda_graph" "$OUT/check_$name.log" | sort | uniq -c | tee -a "$OUT/checks.txt"
}
bench() { timeout "$1" python3 -m experiments.throughput.bench --device cuda "${@:2}"; }
(
  # graph-captured vs eager vs the plain loop: 64x64 batch 128 and the digits batch 64
  bench 200 --rounds 2 --cases dcgan64 digits
  # every part a step can have, captured (lazy R1 = its own graph, EMA, LeCam, ADA, bf16),
  # against the same run eagerly: the losses should follow each other
  for graph in true false; do
    check every_part_graph_$graph model.cuda_graph=$graph trainer.precision=bf16-mixed \
      model/ema=average model/regularizers=[r1,lecam] model.regularizers.r1.weight=0.1 \
      model.regularizers.r1.every=4 model.d_steps_per_g_step=2
  done
  bench 120 --rounds 1 --scan
  bench 150 --rounds 1 --cases sngan resnet
  # R3GAN's CIFAR-10 networks (fp32, bf16; eager and captured: its preset's beta2 schedule
  # keeps the preset itself eager, see README), and the preset's step on fake CIFAR-shaped data
  bench 90 --rounds 1 --cases r3gan
  check r3gan_cifar10_bf16 experiment=r3gan_cifar10 data=fake data.channels=3 data.image_size=32 \
    model.conditional=false data.batch_size=128 trainer.precision=bf16-mixed
) 2>&1 | grep --line-buffered -v -e "^GPU available" -e "^TPU available" -e "Tip:" -e "stopped:" | tee "$OUT/bench_gpu.txt"
