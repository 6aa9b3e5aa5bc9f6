#!/bin/bash
# The device run on the whole bench corpus (docs/gpu.md): Debian's
# linux-source-6.1.tar.xz, split and carried in pieces (.devpart1/ to
# .devpart3/, git-ignored; one call's carry is limited, so they go over
# several calls while the machine stays warm), planted as make bench plants
# it (bench/plant.py, 500 secrets), then gpu_bench on it from RAM and
# keyhog scan's JSONL with both backends.  Binaries and libraries come in
# .devcarry/ as for bench/gpu_device.sh.  Usage: bash bench/gpu_full.sh [RUNS]
set -u
RUNS=${1:-2}
cat .devpart1/* .devpart2/* .devpart3/* >/tmp/linux-source-6.1.tar.xz
. bench/device_setup.sh /tmp/linux-source-6.1.tar.xz
for r in $(seq "$RUNS"); do
    echo "== gpu_bench: the bench corpus in RAM, 16 MiB batches, 3 lanes (run $r)"
    timeout 180 $B/gpu_bench $C
done
echo "== CLI parity on the bench corpus (keyhog scan -f jsonl)"
cli_parity
