#!/bin/sh
# make bench-gpu: device numbers from keyhog_gpu_bench, then end to end from
# host memory (bench/gpu_bench.c), CPU against GPU, with a parity check.
# Usage: gpu_run.sh BUILD CORPUS_DIR REPEAT
set -eu
BUILD=${1:-build}
CORPUS=${2:-bench/corpus/linux-source-6.1}
REPEAT=${3:-4}
if ! [ -d "$CORPUS" ]; then
    echo "bench-gpu: no corpus at $CORPUS (make bench prepares it)" >&2
    exit 1
fi
if [ -x "$BUILD/keyhog_gpu_bench" ]; then
    KW=$(mktemp)
    "$BUILD/keyhog" detectors --json | python3 -c \
        'import json,sys; print("\n".join(sorted({k for d in json.load(sys.stdin) for k in d["keywords"]})))' >"$KW"
    "$BUILD/keyhog_gpu_bench" "$KW" 1024 || echo "bench-gpu: no usable GPU for the device numbers"
    rm -f "$KW"
fi
"$BUILD/gpu_bench" -r "$REPEAT" "$CORPUS"
