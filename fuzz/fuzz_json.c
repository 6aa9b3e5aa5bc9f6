/*
 * fuzz_json.c - libFuzzer target for the JSON reader (src/report/
 * json_read.c), which reads baselines and verification caches: files a
 * repository can carry, so hostile.  Checks the tree (strings NUL-ended at
 * their length, objects with a key per value, report_json_get finding each
 * key) and that an error message is NUL-terminated within the buffer; the
 * reader bounds nesting itself, which the walk here relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

static void check(const report_jvalue *v, int depth)
{
    if (!v || depth > 1000)
        abort();
    switch (v->type) {
    case REPORT_JNULL:
    case REPORT_JBOOL:
    case REPORT_JNUMBER:
        break;
    case REPORT_JSTRING:
        if (!v->str || v->str[v->len] != '\0')
            abort();
        break;
    case REPORT_JARRAY:
        for (size_t i = 0; i < v->n; i++)
            check(v->items[i], depth + 1);
        break;
    case REPORT_JOBJECT:
        for (size_t i = 0; i < v->n; i++) {
            if (!v->keys[i] || !report_json_get(v, v->keys[i]))
                abort();
            check(v->items[i], depth + 1);
        }
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    memset(err, 'x', sizeof err);
    report_jvalue *v = NULL;
    if (report_json_parse((const char *)data, size, &v, err, sizeof err) == 0) {
        check(v, 0);
        report_json_free(v);
    } else if (!memchr(err, 0, sizeof err) || !err[0]) {
        abort();
    }
    return 0;
}
