#!/usr/bin/env bash
# The GPU measurements of benchmarks/RESULTS.md, in parts that each fit one 10-minute run on a
# lent GPU machine (see the README's "Benchmarks"). Logs go to $OUT (default: benchmarks/out).
#
#   bash benchmarks/gpu_session.sh check      # CUDA tests, device, a tiny train.py run with every speed-up
#   bash benchmarks/gpu_session.sh decoder    # DIV2K-size x4 decode: plain/fast, fp32/bf16, compiled
#   bash benchmarks/gpu_session.sh step       # training step: forms, precisions, speed-ups, fed by the pipeline
#   bash benchmarks/gpu_session.sh loader     # input pipeline samples/s by worker count
#   bash benchmarks/gpu_session.sh suite      # Set14 x4 evaluation, fp32 vs bf16 (needs the weights)
#
# Data (git-ignored, carried): training images in $DATA/train/<folder> (scripts/pack_images.py
# makes lossless WebP copies), benchmark sets in $DATA/benchmark, weights at $DATA/weights.pth.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-.device}
OUT=${OUT:-benchmarks/out}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu smoke-tests this script's wiring on a machine without a GPU
mkdir -p "$OUT"
TRAIN=$(ls -d "$DATA"/train/* 2>/dev/null | head -n 1 || true)  # one folder is enough to measure

run() {  # run NAME CMD...: tee the command's output to $OUT/NAME.txt
    local name=$1; shift
    echo "== $name: $*" | tee "$OUT/$name.txt"
    "$@" 2>&1 | tee -a "$OUT/$name.txt"
}

case "${1:-}" in
check)
    [ "$DEVICE" = cuda ] && run env nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    run versions "$PY" -c 'import torch, PIL; print(torch.__version__, torch.version.cuda, PIL.__version__)'
    run tests "$PY" -m pytest -q -x tests/test_models.py tests/test_device_synthesis.py tests/test_pil_resize.py
    rm -rf /tmp/gpu_check
    run train "$PY" train.py --config configs/quickstart.yaml --save-dir /tmp/gpu_check --name speedups --device $DEVICE \
        --set train_dataset.dataset.args.root_path="$TRAIN" --set val_dataset.dataset.args.root_path="$TRAIN" \
        --set val_full=null --set epoch_max=3 --set +precision=bf16 --set +channels_last=true --set +compile=true \
        --set +cuda_graphs=true
    ;;
decoder)
    run decoder "$PY" benchmarks/bench_decoder.py --device $DEVICE --div2k --compile --repeats 10 \
        --weights "$DATA/weights.pth" --memory-sizes 512,1024,2048
    ;;
step)
    run step "$PY" benchmarks/bench_train_step.py --device $DEVICE --repeats 50 --channels-last --compile \
        --cuda-graphs ${TRAIN:+--data "$TRAIN" --workers 12 --steps 500}
    ;;
loader)
    run loader "$PY" benchmarks/bench_loader.py --device $DEVICE --root "$TRAIN" --workers 0 4 8 12 16 --batches 200
    ;;
suite)
    run suite "$PY" benchmarks/bench_test_suite.py --model "$DATA/weights.pth" --load-dir "$DATA" --device $DEVICE
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
