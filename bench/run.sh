#!/bin/sh
# make bench: prepares the corpus (Debian's linux-source-6.1 with planted
# secrets) once under bench/corpus/, then runs bench/bench.py.
set -eu
BUILD=${1:-build}
CORPUS=bench/corpus/linux-source-6.1
if ! [ -f bench/corpus/.ready ]; then
    rm -rf bench/corpus  # a tree planted halfway is extracted again
    CORPUS=$(sh scripts/linux-corpus.sh bench/corpus)
    python3 bench/plant.py "$CORPUS" 500 bench/corpus/planted.jsonl
    touch bench/corpus/.ready
fi
python3 bench/bench.py "$BUILD" "$CORPUS" bench/corpus/planted.jsonl
