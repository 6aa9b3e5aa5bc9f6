#!/bin/sh
# make bench: prepares the corpus (Debian's linux-source-6.1 with planted
# secrets) once under bench/corpus/, then runs bench/bench.py.
set -eu
BUILD=${1:-build}
CORPUS=bench/corpus/linux-source-6.1
if ! [ -f /usr/src/linux-source-6.1.tar.xz ]; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 >/dev/null
    else
        echo "bench: needs Debian's linux-source-6.1: sudo apt-get install -y linux-source-6.1" >&2
        exit 1
    fi
fi
if ! [ -f bench/corpus/.ready ]; then
    rm -rf bench/corpus
    mkdir -p bench/corpus
    echo "bench: extracting the Linux source (once)..." >&2
    tar -xJf /usr/src/linux-source-6.1.tar.xz -C bench/corpus
    python3 bench/plant.py "$CORPUS" 500 bench/corpus/planted.jsonl
    touch bench/corpus/.ready
fi
python3 bench/bench.py "$BUILD" "$CORPUS" bench/corpus/planted.jsonl
