#!/bin/sh
# Runs every test: each cmocka binary under BUILD/tests/, then the CLI suite
# (tests/cli/test_*.py, Python's unittest driving build/keyhog).  Prints one
# closing line "N passed, N failed" and exits non-zero if anything failed.
BUILD=${1:-build}
passed=0
failed=0
failed_names=""
log=$(mktemp)
for bin in $(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x | sort); do
    CMOCKA_MESSAGE_OUTPUT=stdout "$bin" >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crashed
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        failed_names="$failed_names $bin"
        cat "$log"
    fi
    echo "$(basename "$bin"): $p passed, $f failed"
done
if ls tests/cli/test_*.py >/dev/null 2>&1; then
    KEYHOG="$BUILD/keyhog" python3 tests/cli/runner.py >"$log" 2>&1
    rc=$?
    cat "$log" | grep -v '^ok$' | tail -n 200
    p=$(sed -n 's/^CLI: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^CLI: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$log" | tail -n 1)
    p=${p:-0}; f=${f:-1}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -ne 0 ] && failed_names="$failed_names cli"
fi
rm -f "$log"
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
