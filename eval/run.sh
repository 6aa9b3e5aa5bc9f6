#!/bin/sh
# make eval: accuracy of keyhog on Debian's linux-source-6.1 with planted
# secrets and decoys (docs/eval.md).  Extracts the tree once under
# eval/corpus/ (or uses EVAL_LINUX=DIR, an extracted tree, read-only), then
# for each seed: a hard-linked copy, eval/plant.py, eval/score.py scan; at
# the end eval/score.py report prints the table and writes
# eval/results/<commit>.json.
#   EVAL_SEEDS="1 2 3"  seeds (default three)
set -eu
BUILD=${1:-build}
SEEDS=${EVAL_SEEDS:-"1 2 3"}
WORK=eval/corpus
LINUX=${EVAL_LINUX:-$WORK/linux-source-6.1}
KEYHOG=$(cd "$BUILD" && pwd)/keyhog
export KEYHOG_CACHE_DIR=${KEYHOG_CACHE_DIR:-$(pwd)/$WORK/cache}

if [ -z "${EVAL_LINUX:-}" ]; then
    LINUX=$(sh scripts/linux-corpus.sh $WORK)
fi
[ -d "$LINUX" ] || { echo "eval: no tree at $LINUX" >&2; exit 1; }

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src detectors include 2>/dev/null || commit="$commit-dirty"
results=""
for seed in $SEEDS; do
    tree=$WORK/seed-$seed
    rm -rf "$tree"
    cp -al "$LINUX" "$tree"          # hard links: planting replaces files, never edits them
    python3 eval/plant.py --tree "$tree" --seed "$seed" --manifest $WORK/seed-$seed.manifest.jsonl
    python3 eval/score.py scan --keyhog "$KEYHOG" --tree "$tree" --seed "$seed" \
        --manifest $WORK/seed-$seed.manifest.jsonl --out $WORK/seed-$seed.json
    rm -rf "$tree"
    results="$results $WORK/seed-$seed.json"
done
python3 eval/score.py report --commit "$commit" --out "eval/results/$commit.json" $results
