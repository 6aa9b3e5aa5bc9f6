/*
 * fuzz_detectors.c - libFuzzer target for detector loading: one detector
 * file's text through kh_detectors_parse (TOML, then the spec checks and a
 * PCRE2 compile of every regex), and, when it parses, through
 * kh_engine_compile and a scan of the detector's own example strings.
 *
 * `--detectors DIR` reads files a scanned repository may carry, so a spec
 * must never crash the loader or the compiler, whatever it says.  Checks:
 * an error leaves *out NULL and a message naming the origin; a success
 * gives exactly one detector whose public info is filled; merging it into a
 * set and removing it again leaves the set as it was.  The engine compile
 * may refuse a spec (KH_EREGEX, KH_EPARSE, KH_ELIMIT) but must not fail
 * otherwise.  Compiling costs ~100 ms under ASan, against well under 1 ms
 * for parsing, so only one parsed input in 8 (chosen by a hash of its
 * bytes, so a replay does the same) is compiled; the others keep the
 * parser busy.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhog.h"
#include "spec/spec.h"

static int count_finding(const kh_finding *f, void *ctx)
{
    (void)f;
    ++*(size_t *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char origin[] = "fuzz/detector.toml";
    kh_detectors *set = (kh_detectors *)0x1;
    kh_error err;
    memset(&err, 'x', sizeof err);
    int rc = kh_detectors_parse((const char *)data, size, origin, &set, &err);
    if (rc != KH_OK) {
        if (set != NULL)
            abort();
        if (!memchr(err.message, 0, sizeof err.message) || err.message[0] == 0 ||
            (rc != KH_ENOMEM && !strstr(err.message, origin)))
            abort();
        return 0;
    }
    if (!set || kh_detectors_count(set) != 1 || !kh_detectors_warnings(set))
        abort();
    const kh_detector_info *info = kh_detectors_get(set, 0);
    if (!info || !info->id || !*info->id || !info->name || !info->origin ||
        (info->keyword_count && !info->keywords) || info->pattern_count == 0 ||
        (int)info->severity < KH_SEVERITY_INFO || info->severity > KH_SEVERITY_CRITICAL)
        abort();
    for (size_t i = 0; i < info->keyword_count; i++)
        if (!info->keywords[i])
            abort();
    if (kh_detectors_find(set, info->id) != info)
        abort();

    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    kh_engine *engine = NULL;
    kh_engine_opts opts = {.decode_depth = 1};
    rc = h % 8 ? KH_EINVAL : kh_engine_compile(set, &opts, &engine, &err);
    if (rc == KH_OK) {
        kh_scratch *scratch = NULL;
        if (kh_scratch_alloc(engine, &scratch) != KH_OK)
            abort();
        const spec_detector *d = spec_from_info(info);
        size_t found = 0;
        for (size_t i = 0; i < d->test_count && i < 8; i++) {
            const char *t = d->tests[i].text;
            kh_chunk c = {.data = (const uint8_t *)t, .len = t ? strlen(t) : 0, .path = "t"};
            int s = kh_scan(engine, scratch, &c, count_finding, &found);
            if (s != KH_OK && s != KH_ELIMIT)
                abort();
        }
        kh_scratch_free(scratch);
        kh_engine_free(engine);
    } else if (rc != KH_EREGEX && rc != KH_EPARSE && rc != KH_ELIMIT && rc != KH_ENOMEM &&
               rc != KH_EINVAL) {
        fprintf(stderr, "fuzz_detectors: kh_engine_compile: %s: %s\n", kh_strerror(rc),
                err.message);
        abort();
    }

    /* Moving it into another set and out again. */
    kh_detectors *base = NULL;
    if (kh_detectors_parse((const char *)data, size, "again.toml", &base, &err) != KH_OK)
        abort(); /* parsing is deterministic */
    if (kh_detectors_merge(base, set, &err) != KH_OK || kh_detectors_count(base) != 1 ||
        kh_detectors_count(set) != 0)
        abort();
    if (kh_detectors_remove(base, kh_detectors_get(base, 0)->id) != KH_OK ||
        kh_detectors_count(base) != 0)
        abort();
    kh_detectors_free(base);
    kh_detectors_free(set);
    return 0;
}
