#!/bin/sh
# Runs every built libFuzzer target for SECONDS each: fuzz/run.sh BUILD SECONDS [TARGET...]
#
# Each target starts from its seed corpus fuzz/corpus/<name> (read-only here:
# new inputs go to BUILD/fuzz/corpus/<name>, which persists between runs so
# a local `make fuzz` keeps what earlier runs learnt) and its dictionary
# fuzz/<name>.dict if there is one.  A crash, leak, sanitizer report or
# timeout leaves the input in BUILD/fuzz/crashes/ and fails the run; the
# last lines of each target's log are printed either way.
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
shift 2 2>/dev/null || shift $#
TARGETS=${*:-$(cd "$BUILD/fuzz" 2>/dev/null && ls fuzz_* 2>/dev/null | grep -v '\.')}
[ -n "$TARGETS" ] || { echo "fuzz/run.sh: no targets under $BUILD/fuzz" >&2; exit 2; }
mkdir -p "$BUILD/fuzz/crashes"
failed=""
for t in $TARGETS; do
    name=${t#fuzz_}
    work="$BUILD/fuzz/corpus/$name"
    mkdir -p "$work"
    seeds=""
    [ -d "fuzz/corpus/$name" ] && seeds="fuzz/corpus/$name"
    dict=""
    [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
    log="$BUILD/fuzz/$t.log"
    # fuzz_scan keeps its compiled detector databases here between runs.
    export KEYHOG_FUZZ_CACHE="$BUILD/fuzz/scan.cache"
    echo "== $t: ${SECONDS_EACH}s"
    # -rss_limit_mb: the documented bound for one input is far below it.
    # -timeout: no single input may take 10 s (the pathological-regex bound).
    "$BUILD/fuzz/$t" $dict -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=2560 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$BUILD/fuzz/crashes/$t-" "$work" $seeds >"$log" 2>&1
    rc=$?
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|Done [0-9]+ runs)' "$log" | tail -n 2
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (inputs in $BUILD/fuzz/crashes/)"
    exit 1
fi
echo "fuzz: every target ran ${SECONDS_EACH}s without a finding"
