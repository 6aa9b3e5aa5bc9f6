# Sourced on the device by bench/gpu_device.sh and bench/gpu_full.sh with
# the path of a Linux source tarball: unpacks .devcarry/'s libraries and
# the tarball under /tmp, plants 500 secrets into the tree as make bench
# does, and sets D (.devcarry), B (its binaries), C (the planted tree) and
# the environment the binaries need.
D=.devcarry
B=$D/bin
export LD_LIBRARY_PATH=/tmp/kl/lib:$B KEYHOG_CACHE_DIR=/tmp/khc
rm -rf /tmp/kl /tmp/kc
python3 -c "
import sys, tarfile
tarfile.open('$D/libs.tar.xz').extractall('/tmp/kl')
tarfile.open(sys.argv[1]).extractall('/tmp/kc')
" "$1"
C=/tmp/kc/linux-source-6.1
python3 bench/plant.py $C 500 /tmp/planted.jsonl >/dev/null
nvidia-smi -L; nproc; du -sh $C

# keyhog scan -f jsonl over the planted tree with each backend (timed,
# KEYHOG_GPU_STATS on), and whether the two outputs are byte-identical.
cli_parity() {
    $B/keyhog scan -q --backend cpu bench >/dev/null 2>&1 # compiles and caches the engine
    for b in cpu gpu; do
        TIMEFORMAT="$b: %R s wall"
        time KEYHOG_GPU_STATS=1 $B/keyhog scan -q --no-ignore -f jsonl --backend $b $C >/tmp/$b.jsonl
        echo "$b: $(wc -l </tmp/$b.jsonl) findings"
    done
    cmp /tmp/cpu.jsonl /tmp/gpu.jsonl && echo "JSONL byte-identical"
}
