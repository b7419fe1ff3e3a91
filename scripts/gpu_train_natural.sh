#!/usr/bin/env bash
# Train the shipped EDSR-baseline-LIIF (configs/train-natural) in a fixed wall-clock budget, so
# that its cosine schedule reaches zero just as the budget ends:
#   1. the warm-up epochs (the first one compiles), stopped with --stop-after; the last one's
#      speed is read from log.txt;
#   2. --resume with epoch_max set to the epochs the rest of the budget holds (--time-limit stays
#      as a safety net). Warm-up does not depend on epoch_max, so every iteration's lr is that of
#      one run with the final epoch_max, which the run's config.yaml records.
# If part 1 fails with the speed-ups on (torch.compile, CUDA graphs), it is run again without.
#
#   bash scripts/gpu_train_natural.sh BUDGET_S [RUN_NAME] [train.py options, e.g. --set k=v]
#   CONFIG=configs/train-natural/train_edsr-baseline-lmliif.yaml bash scripts/gpu_train_natural.sh BUDGET_S lmliif
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:?usage: gpu_train_natural.sh BUDGET_S [RUN_NAME] [train.py options]}
name=${2:-natural}
shift $(( $# < 2 ? $# : 2 ))
config=${CONFIG:-configs/train-natural/train_edsr-baseline-liif.yaml}
run=save/$name
start=$(date +%s)
warmup=$(python3 -c "from utils.config import load_config; print(load_config('$config')['cosine_lr']['warmup_epochs'])") || exit 1

train() { python3 train.py --config "$config" --name "$name" "$@"; }
opts=("$@")
if ! train "${opts[@]}" --stop-after "$warmup"; then
    echo "part 1 failed with the config's speed-ups: again without compile and CUDA graphs" >&2
    mv "$run" "$run-failed-$(date +%s)" 2>/dev/null
    opts+=(--set compile=false --set cuda_graphs=false)
    train "${opts[@]}" --stop-after "$warmup" || exit 1
fi

# epochs that fit: the warm-up's last epoch gives the speed; part 2's start-up is taken to be
# part 1's (process start, caching, compiling: what is not an epoch, plus epoch 1's extra time)
read -r epoch_max rest < <(python3 - "$run/log.txt" "$budget" "$(( $(date +%s) - start ))" "$warmup" <<'PY'
import re, sys
log, budget, spent, warmup = open(sys.argv[1]).read(), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
seconds = [float(s) for s in re.findall(r'^.*epoch \d+/\d+, lr .*, ([\d.]+) s$', log, re.M)]
epoch_s = seconds[-1] * 1.08  # 8% for validations and noise
startup = spent - sum(seconds) + seconds[0] - seconds[-1]
print(warmup + max(1, int((budget - spent - startup) // epoch_s)), f'{epoch_s:.1f} s/epoch, start-up {startup:.0f} s')
PY
) || exit 1
echo "part 2: epoch_max $epoch_max ($rest); $(( $(date +%s) - start )) s of $budget s spent"
train "${opts[@]}" --resume --set epoch_max="$epoch_max" --time-limit $(( budget - ($(date +%s) - start) ))
