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
D=.devcarry
B=$D/bin
export LD_LIBRARY_PATH=/tmp/kl/lib:$B KEYHOG_CACHE_DIR=/tmp/khc
cat .devpart1/* .devpart2/* .devpart3/* >/tmp/linux-source-6.1.tar.xz
rm -rf /tmp/kl /tmp/kf
python3 -c "
import tarfile
tarfile.open('$D/libs.tar.xz').extractall('/tmp/kl')
tarfile.open('/tmp/linux-source-6.1.tar.xz').extractall('/tmp/kf')
"
C=/tmp/kf/linux-source-6.1
python3 bench/plant.py $C 500 /tmp/planted.jsonl >/dev/null
nvidia-smi -L; nproc; du -sh $C
for r in $(seq "$RUNS"); do
    echo "== gpu_bench: the bench corpus in RAM, 16 MiB batches, 3 lanes (run $r)"
    timeout 180 $B/gpu_bench $C
done
echo "== CLI parity on the bench corpus (keyhog scan -f jsonl)"
$B/keyhog scan -q --backend cpu bench >/dev/null 2>&1 # compiles and caches the engine
for b in cpu gpu; do
    TIMEFORMAT="$b: %R s wall"
    time KEYHOG_GPU_STATS=1 $B/keyhog scan -q --no-ignore -f jsonl --backend $b $C >/tmp/$b.jsonl
    echo "$b: $(wc -l </tmp/$b.jsonl) findings"
done
cmp /tmp/cpu.jsonl /tmp/gpu.jsonl && echo "JSONL byte-identical"
