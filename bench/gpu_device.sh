#!/bin/bash
# The device run behind docs/gpu.md's numbers, as sent to a machine with a
# GPU and none of keyhog's Debian packages: .devcarry/ (git-ignored) holds
# x86-64 binaries built here (bin/), their shared libraries (libs.tar.xz)
# and a slice of the Linux source (corpus.tar.xz; bench/plant.py plants
# secrets into it there).  Usage: bash bench/gpu_device.sh [REPEAT]
set -u
REPEAT=${1:-8}
. bench/device_setup.sh .devcarry/corpus.tar.xz
ldd $B/keyhog | grep "not found"
echo "== unit tests"; $B/test_gpu 2>&1 | tail -2
$B/keyhog detectors --json | python3 -c 'import json,sys; print("\n".join(sorted({k for d in json.load(sys.stdin) for k in d["keywords"]})))' >/tmp/kw
echo "== kernel against a plain CPU search: gpu_check"; timeout 60 stdbuf -oL $B/gpu_check $B/libkeyhog_gpu.so /tmp/kw 2>&1 | grep -v " -> ok$" | tail -8
find $C -type f -name '*.[ch]' | head -20000 | xargs cat | head -c 256M >/tmp/text.bin
echo "== device: keyhog_gpu_bench (Linux text)"; timeout 90 $B/keyhog_gpu_bench /tmp/kw 1024 /tmp/text.bin
echo "== per-batch kernel"; timeout 90 $B/gpu_bench -m gpu --no-persistent -r $REPEAT $C | grep -v "^corpus"
echo "== end to end from RAM: gpu_bench -r $REPEAT (16 MiB batches, 3 lanes)"; timeout 120 $B/gpu_bench -r $REPEAT $C
echo "== the same with 32 MiB batches"; timeout 120 $B/gpu_bench -b 32 -r $REPEAT $C
echo "== the same, twice the corpus (-r $((2 * REPEAT)))"; timeout 120 $B/gpu_bench -r $((2 * REPEAT)) $C
echo "== one lane (KEYHOG_GPU_LANES=1)"; KEYHOG_GPU_LANES=1 timeout 120 $B/gpu_bench -m gpu -r $REPEAT $C | grep -v "^corpus"
echo "== without keyword filters"; KEYHOG_GPU_FILTERS=0 timeout 60 $B/gpu_bench -m gpu -r $REPEAT $C | grep -A2 "^gpu:"
echo "== CLI parity (keyhog scan -f jsonl, $C)"
cli_parity
TIMEFORMAT="gpu, one lane: %R s wall"
time KEYHOG_GPU_LANES=1 $B/keyhog scan -q --no-ignore -f jsonl --backend gpu $C | cmp - /tmp/cpu.jsonl
[ "${CLI_TESTS:-1}" = 1 ] && { echo "== tests/cli/test_gpu.py tests/cli/test_calibrate.py"; KEYHOG=$PWD/$B/keyhog PYTHONPATH=tests/cli timeout 400 python3 -m unittest tests/cli/test_gpu.py tests/cli/test_calibrate.py 2>&1 | tail -3; }
