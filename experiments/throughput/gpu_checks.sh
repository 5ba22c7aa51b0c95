#!/usr/bin/env bash
# One lease of a GPU: the ResNet/SNGAN rows of the GPU table plus the compiled/bf16 penalty runs
# that CPU CI cannot cover (dcgan64/digits: make bench-gpu, measured on an H200 already).
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
# torch.compile + bf16 autocast + each penalty on the GPU (double backward through inductor)
check() {
  name=$1; shift
  timeout 150 python3 -m src.train debug=fast logger=csv trainer.limit_train_batches=8 \
    hydra.run.dir=/tmp/runs/$name "$@" >"$OUT/check_$name.log" 2>&1
  rc=$?
  echo "check $name: exit $rc $(sed -n "1p;\$p" /tmp/runs/$name/metrics.csv 2>/dev/null | tr "\n" " ")" | tee -a "$OUT/checks.txt"
}
(
  python -m experiments.throughput.bench --device cuda --rounds 2 --cases resnet
  check resnet_wgan_gp_bf16_compile model=resnet model.loss=wasserstein model.penalty=wgan_gp \
    model.compile=true trainer.precision=bf16-mixed data=fake
  check sngan_r1_lazy_bf16_compile model=sngan model.loss=hinge model.penalty=r1 \
    model.penalty_weight=0.1 model.penalty_every=4 model.compile=true trainer.precision=bf16-mixed
  check dcgan_conditional_lecam_bf16_compile model.conditional=true model.lecam_weight=0.3 \
    model.compile=true trainer.precision=bf16-mixed model.penalty=r2 model.penalty_weight=0.1
  python -m experiments.throughput.bench --device cuda --rounds 2 --cases sngan
  # issue 28: R3GAN's CIFAR-10 networks (fp32 and bf16-mixed), and its preset's step (RpGAN,
  # R1 + R2 double backward, schedules, augmentation) for a few batches of fake CIFAR-shaped data
  python -m experiments.throughput.bench --device cuda --rounds 2 --cases r3gan
  check r3gan_cifar10_bf16 experiment=r3gan_cifar10 data=fake data.channels=3 data.image_size=32 \
    model.conditional=false data.batch_size=128 trainer.precision=bf16-mixed
) 2>&1 | grep --line-buffered -v -e "^GPU available" -e "^TPU available" -e "Tip:" -e "stopped:" | tee "$OUT/bench_gpu.txt"
