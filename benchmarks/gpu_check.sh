#!/usr/bin/env bash
# The GPU check (issue 21): everything depthlab claims about a GPU, as one command with a time limit per
# step, writing every log and JSON into one folder. GPU time is scarce: run it once, read the folder.
#
#   benchmarks/gpu_check.sh                       # every step below, in order (≤ 8 minutes on one H200)
#   benchmarks/gpu_check.sh tests t93             # only these steps
#
# Steps (each under `timeout`; a step that fails or overruns is logged and the next one still runs):
#   env         nvidia-smi, torch and CUDA versions, CPU count (env.txt)
#   tests       the GPU tests: pytest -m gpu (tests.log)
#   step        benchmarks/train_step.py: eager vs CUDA graph x fp32 vs bf16 x memory format (train_step_cuda.json)
#   throughput  benchmarks/train_throughput.py --device cuda (train_throughput_cuda.json)
#   workers     benchmarks/gpu_workers.py: 1, 2, 4 processes on the GPU (gpu_workers.json)
#   t93         benchmarks/time_to_accuracy.py: the default ResNet-20 recipe to 93% (time_to_accuracy_cuda.json)
#   dryrun      `--dry-run --device cuda` of every study's gpu preset (dryrun-STUDY.log)
#   study       the degradation study's gpu preset, then its replication on fresh seeds, each with $WORKERS
#               workers on the GPU, and their reports unless REPORTS=0 (study-*.log, degradation-gpu*/)
#   mps         (not in the default list) gpu_workers.py with 1 and 4 processes under CUDA's Multi-Process
#               Service, which lets kernels of different processes run at once (gpu_workers_mps.json)
#
# Environment: OUT (default runs/gpu-check), PYTHON (default python3; the checkout's src/ is put on
# PYTHONPATH, so depthlab need not be installed), WORKERS (default 4 per study directory), STUDY_LIMIT
# (seconds for both study directories, default 420),
# DEPTHLAB_DATA (where fashion-mnist is; default: depthlab's search path).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
PYTHON=${PYTHON:-python3}
WORKERS=${WORKERS:-4}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OUT PYTHON WORKERS
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(env tests step throughput workers t93 dryrun study)
began=$(date +%s)

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: run it under timeout, log its wall time and exit status
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  echo "== $name (limit ${limit}s) =="
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"limit\": $limit}" >> "$OUT/steps.jsonl"
  tail -n 15 "$OUT/$name.log"
  echo "== $name: rc=$rc after $(( $(date +%s) - t0 )) s =="
}

study_pair() {  # the gpu preset (seeds 0-5), then its replication (6-11), each with $WORKERS workers
  local seeds
  seeds=$($PYTHON -c "from depthlab.studies import get_study; print(get_study('degradation').presets['gpu'].seeds)")
  local offset d t0 rc=0
  for d in degradation-gpu degradation-gpu-replication; do
    offset=0; [ "$d" = degradation-gpu-replication ] && offset=$seeds
    t0=$(date +%s)
    $PYTHON -m depthlab study degradation --preset gpu --device cuda --workers "$WORKERS" \
      --seed-offset "$offset" --out "$OUT/$d" > "$OUT/study-$d.log" 2>&1 || rc=1
    printf '{"command": "benchmarks/gpu_check.sh study (%s: depthlab study degradation --preset gpu --device cuda --workers %s --seed-offset %s)", "workers": %s, "device": "cuda", "wall_seconds": %s}\n' \
      "$d" "$WORKERS" "$offset" "$WORKERS" "$(( $(date +%s) - t0 ))" > "$OUT/$d/timing.json"
    [ "${REPORTS:-1}" = 1 ] && { $PYTHON -m depthlab report "$OUT/$d" --out "$OUT/$d/report.html" \
      --figures "$OUT/$d/figures" >> "$OUT/study-$d.log" 2>&1 || rc=1; }
    [ $rc -eq 0 ] || return $rc
  done
}

mps_workers() {  # the workers benchmark under CUDA's Multi-Process Service (kernels of processes overlap)
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/depthlab-mps CUDA_MPS_LOG_DIRECTORY=/tmp/depthlab-mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  nvidia-cuda-mps-control -d || return 3
  $PYTHON benchmarks/gpu_workers.py --workers 1,4 --setup-seconds 15 --seconds 5 --json "$OUT/gpu_workers_mps.json"
  local rc=$?
  echo quit | nvidia-cuda-mps-control
  return $rc
}

export -f study_pair mps_workers
for s in "${steps[@]}"; do
  case $s in
    env) stage env 60 bash -c "nvidia-smi; $PYTHON -c 'import torch, sys, os; print(sys.version); print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name(), os.cpu_count())'; command -v nvidia-cuda-mps-control || echo 'no MPS control'" ;;
    tests) stage tests 150 $PYTHON -m pytest -q -m gpu -p no:cacheprovider --durations=15 tests ;;
    step) stage step 120 $PYTHON benchmarks/train_step.py --device cuda --repeats 1 --json "$OUT/train_step_cuda.json" ;;
    throughput) stage throughput 150 $PYTHON benchmarks/train_throughput.py --device cuda --shapes "${SHAPES:-fmnist,cifar}" --repeats 1 --json "$OUT/train_throughput_cuda.json" ;;
    workers) stage workers 100 $PYTHON benchmarks/gpu_workers.py --workers 1,2,4 --setup-seconds 20 --json "$OUT/gpu_workers.json" ;;
    t93) stage t93 90 $PYTHON benchmarks/time_to_accuracy.py --device cuda --json "$OUT/time_to_accuracy_cuda.json" ;;
    dryrun)
      for st in degradation vgg-depth inception-aux; do
        stage "dryrun-$st" 90 $PYTHON -m depthlab study "$st" --preset gpu --device cuda --dry-run
      done ;;
    study) stage study "${STUDY_LIMIT:-420}" bash -c study_pair ;;
    mps) stage mps 90 bash -c mps_workers ;;
    *) echo "unknown step $s; choose from: env tests step throughput workers t93 dryrun study mps"; exit 2 ;;
  esac
done
echo "gpu check: $(( $(date +%s) - began )) s; logs and JSON in $OUT"
