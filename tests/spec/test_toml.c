/*
 * test_toml.c - the TOML reader against documents a person can read.
 *
 * tests/data/toml/valid/NAME.toml is parsed and flattened to one line per
 * value ("path @line:col type value") and compared with NAME.out, so both
 * the values and the recorded key positions are checked.  The values in
 * those goldens were cross-checked against Python's tomllib when written;
 * KH_TEST_UPDATE=1 rewrites them after a deliberate change.
 *
 * tests/data/toml/invalid/NAME.toml must fail with exactly the message in
 * NAME.err ("line:col: message", the file name is prepended here).
 *
 * Data is read relative to the repository root, or KH_TEST_DATA.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "spec/toml.h"

static const char *data_dir(void)
{
    const char *d = getenv("KH_TEST_DATA");
    return d ? d : "tests/data";
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- flattening a tree into text ------------------------------------- */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
    }
    memcpy(t->p + t->len, tmp, (size_t)n + 1);
    t->len += (size_t)n;
}

static void put_string(text *t, const char *s, size_t n)
{
    put(t, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            put(t, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            put(t, "\\x%02x", c);
        else
            put(t, "%c", c);
    }
    put(t, "\"");
}

static int bare(const char *k)
{
    if (!*k)
        return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-'))
            return 0;
    return 1;
}

static void flatten(text *t, const toml_value *v, const char *path)
{
    if (*path)
        put(t, "%s @%d:%d ", path, v->line, v->col);
    switch (v->type) {
    case TOML_STRING:
        put(t, "string ");
        put_string(t, v->u.str.ptr, v->u.str.len);
        break;
    case TOML_DATETIME:
        put(t, "datetime %s", v->u.str.ptr);
        break;
    case TOML_INTEGER:
        put(t, "integer %lld", (long long)v->u.integer);
        break;
    case TOML_FLOAT:
        if (isnan(v->u.real))
            put(t, "float nan");
        else
            put(t, "float %.17g", v->u.real);
        break;
    case TOML_BOOL:
        put(t, "boolean %s", v->u.boolean ? "true" : "false");
        break;
    case TOML_ARRAY:
        if (*path)
            put(t, "array[%zu]\n", v->u.array.n);
        for (size_t i = 0; i < v->u.array.n; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            flatten(t, v->u.array.items[i], sub);
        }
        return;
    case TOML_TABLE:
        if (*path)
            put(t, "table\n");
        for (size_t i = 0; i < v->u.table.n; i++) {
            const char *k = v->u.table.keys[i];
            text key = {0};
            if (bare(k))
                put(&key, "%s", k);
            else
                put_string(&key, k, strlen(k));
            char sub[256];
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key.p);
            free(key.p);
            flatten(t, v->u.table.values[i], sub);
        }
        return;
    }
    put(t, "\n");
}

static char *parse_flat(const char *doc, size_t len)
{
    toml_value *root = NULL;
    char err[512];
    int rc = toml_parse(doc, len, "doc", &root, err, sizeof err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
    text t = {0};
    put(&t, "");
    flatten(&t, root, "");
    toml_free(root);
    return t.p;
}

/* ---- golden documents -------------------------------------------------- */

static void test_valid_documents(void **state)
{
    (void)state;
    static const char *const names[] = {"arrays", "crlf-bom", "datetimes", "detector",
                                        "keys",   "numbers",  "strings",   "tables"};
    int update = getenv("KH_TEST_UPDATE") != NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[512];
        size_t len, want_len;
        snprintf(path, sizeof path, "%s/toml/valid/%s.toml", data_dir(), names[i]);
        char *doc = read_file(path, &len);
        if (!doc)
            fail_msg("cannot read %s", path);
        char *got = parse_flat(doc, len);
        snprintf(path, sizeof path, "%s/toml/valid/%s.out", data_dir(), names[i]);
        if (update) {
            FILE *f = fopen(path, "wb");
            assert_non_null(f);
            fputs(got, f);
            fclose(f);
        }
        char *want = read_file(path, &want_len);
        if (!want)
            fail_msg("cannot read %s", path);
        if (strcmp(got, want))
            fail_msg("%s differs; got:\n%s", path, got);
        free(want);
        free(got);
        free(doc);
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_invalid_documents(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/toml/invalid", data_dir());
    DIR *dh = opendir(dir);
    if (!dh)
        fail_msg("cannot open %s", dir);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".toml")) {
            assert_true(n < 256);
            names[n++] = strndup(e->d_name, l - 5);
        }
    }
    closedir(dh);
    qsort(names, n, sizeof *names, name_cmp);
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        char path[600], name[300];
        size_t len, elen;
        snprintf(path, sizeof path, "%s/%s.toml", dir, names[i]);
        snprintf(name, sizeof name, "%s.toml", names[i]);
        char *doc = read_file(path, &len);
        assert_non_null(doc);
        snprintf(path, sizeof path, "%s/%s.err", dir, names[i]);
        char *want = read_file(path, &elen);
        if (!want)
            fail_msg("missing %s", path);
        while (elen && want[elen - 1] == '\n')
            want[--elen] = 0;
        toml_value *root = (toml_value *)&root; /* must be reset to NULL */
        char err[512];
        int rc = toml_parse(doc, len, name, &root, err, sizeof err);
        if (rc == 0)
            fail_msg("%s: parsed, but should fail with %s", name, want);
        assert_null(root);
        char expect[700];
        snprintf(expect, sizeof expect, "%s:%s", name, want);
        if (strcmp(err, expect))
            fail_msg("%s:\n  want %s\n  got  %s", name, expect, err);
        free(want);
        free(doc);
        free(names[i]);
    }
}

/* ---- individual behaviours --------------------------------------------- */

static toml_value *parse_ok(const char *doc)
{
    toml_value *root = NULL;
    char err[512];
    if (toml_parse(doc, strlen(doc), "t.toml", &root, err, sizeof err) != 0)
        fail_msg("%s", err);
    return root;
}

static const char *parse_err(const char *doc, size_t len, char *err, size_t errlen)
{
    toml_value *root = NULL;
    assert_int_equal(toml_parse(doc, len, "t.toml", &root, err, errlen), -1);
    assert_null(root);
    return err;
}

static void test_string_escapes(void **state)
{
    (void)state;
    toml_value *r = parse_ok("a = \"\\u00e9\\U0001F600\"\n"
                             "b = \"x\\u0000y\"\n"
                             "c = \"\"\"\\\n   \n  joined \\\n  here\"\"\"\n"
                             "d = '''\n\\n stays'''\n");
    const toml_value *a = toml_get(r, "a");
    assert_int_equal(a->type, TOML_STRING);
    assert_int_equal(a->u.str.len, 6);
    assert_memory_equal(a->u.str.ptr, "\xc3\xa9\xf0\x9f\x98\x80", 7);
    const toml_value *b = toml_get(r, "b");
    assert_int_equal(b->u.str.len, 3);
    assert_memory_equal(b->u.str.ptr, "x\0y", 4);
    assert_string_equal(toml_get(r, "c")->u.str.ptr, "joined here");
    assert_string_equal(toml_get(r, "d")->u.str.ptr, "\\n stays");
    toml_free(r);
}

static void test_numbers(void **state)
{
    (void)state;
    toml_value *r = parse_ok("max = 9223372036854775807\nmin = -9223372036854775808\n"
                             "h = 0x7FFF_FFFF_FFFF_FFFF\nb = 0b1010\no = 0o17\n"
                             "f = 1_0.2_5e-0_1\npi = inf\nni = -inf\nn = -nan\nz = -0.0\n");
    assert_true(toml_get(r, "max")->u.integer == INT64_MAX);
    assert_true(toml_get(r, "min")->u.integer == INT64_MIN);
    assert_true(toml_get(r, "h")->u.integer == INT64_MAX);
    assert_int_equal(toml_get(r, "b")->u.integer, 10);
    assert_int_equal(toml_get(r, "o")->u.integer, 15);
    assert_int_equal(toml_get(r, "f")->type, TOML_FLOAT);
    assert_true(fabs(toml_get(r, "f")->u.real - 1.025) < 1e-12);
    assert_true(isinf(toml_get(r, "pi")->u.real) && toml_get(r, "pi")->u.real > 0);
    assert_true(isinf(toml_get(r, "ni")->u.real) && toml_get(r, "ni")->u.real < 0);
    assert_true(isnan(toml_get(r, "n")->u.real));
    assert_true(signbit(toml_get(r, "z")->u.real));
    toml_free(r);
}

static void test_positions(void **state)
{
    (void)state;
    toml_value *r = parse_ok("# comment\n"
                             "  key = 1\n"
                             "\"é\" = 2 # quoted key after a two-byte character\n"
                             "arr = [\n  10,\n     20 ]\n"
                             "[[t]]\n"
                             "[[t]]\n"
                             "  [ tab . sub ]\n"
                             "x.y = true\n");
    const toml_value *v = toml_get(r, "key");
    assert_int_equal(v->line, 2);
    assert_int_equal(v->col, 3);
    v = toml_get(r, "é");
    assert_int_equal(v->line, 3);
    assert_int_equal(v->col, 1);
    v = toml_get(r, "arr");
    assert_int_equal(v->line, 4);
    assert_int_equal(v->u.array.items[0]->line, 5);
    assert_int_equal(v->u.array.items[0]->col, 3);
    assert_int_equal(v->u.array.items[1]->line, 6);
    assert_int_equal(v->u.array.items[1]->col, 6);
    v = toml_get(r, "t");
    assert_int_equal(v->u.array.n, 2);
    assert_int_equal(v->u.array.items[1]->line, 8);
    assert_int_equal(v->u.array.items[1]->col, 3);
    const toml_value *sub = toml_get(toml_get(r, "tab"), "sub");
    assert_int_equal(sub->line, 9);
    assert_int_equal(sub->col, 11);
    const toml_value *y = toml_get(toml_get(sub, "x"), "y");
    assert_int_equal(y->line, 10);
    assert_int_equal(y->col, 3);
    toml_free(r);

    /* Column counts characters: the 'x' follows three two-byte ones. */
    char err[256];
    parse_err("k = \"ééé\" x\n", strlen("k = \"ééé\" x\n"), err, sizeof err);
    assert_string_equal(err, "t.toml:1:11: expected a newline or comment after the value");
}

static char *repeat(const char *open, int n, const char *mid, const char *close)
{
    size_t lo = strlen(open), lc = strlen(close), lm = strlen(mid);
    char *s = malloc((size_t)n * (lo + lc) + lm + 8);
    assert_non_null(s);
    size_t k = 0;
    memcpy(s, "a = ", 4), k = 4;
    for (int i = 0; i < n; i++)
        memcpy(s + k, open, lo), k += lo;
    memcpy(s + k, mid, lm), k += lm;
    for (int i = 0; i < n; i++)
        memcpy(s + k, close, lc), k += lc;
    s[k++] = '\n';
    s[k] = 0;
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char err[256];
    /* 64 levels are fine: root table 0, arrays 1..64. */
    char *doc = repeat("[", 64, "1", "]");
    toml_free(parse_ok(doc));
    free(doc);
    doc = repeat("[", 65, "1", "]");
    parse_err(doc, strlen(doc), err, sizeof err);
    assert_string_equal(err, "t.toml:1:69: nesting deeper than 64 levels");
    free(doc);
    /* Hostile depth: stops at the limit, no stack exhaustion. */
    doc = repeat("[", 200000, "", "]");
    parse_err(doc, strlen(doc), err, sizeof err);
    assert_non_null(strstr(err, "nesting deeper than 64 levels"));
    free(doc);
    doc = repeat("{x=", 100000, "1", "}");
    parse_err(doc, strlen(doc), err, sizeof err);
    assert_non_null(strstr(err, "nesting deeper than 64 levels"));
    free(doc);
    /* Long dotted keys and headers count too. */
    text t = {0};
    put(&t, "[k");
    for (int i = 1; i < 64; i++)
        put(&t, ".k");
    put(&t, "]\n");
    toml_free(parse_ok(t.p));
    t.len = 0;
    put(&t, "k");
    for (int i = 1; i < 65; i++)
        put(&t, ".k");
    put(&t, " = 1\n");
    parse_err(t.p, t.len, err, sizeof err);
    assert_string_equal(err, "t.toml:1:129: nesting deeper than 64 levels");
    free(t.p);
}

static void test_many_keys(void **state)
{
    (void)state;
    /* 50k keys in one table must stay fast (hash index, not a list). */
    text t = {0};
    put(&t, "[big]\n");
    for (int i = 0; i < 50000; i++)
        put(&t, "key%d = %d\n", i, i);
    clock_t start = clock();
    toml_value *r = parse_ok(t.p);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    assert_true(secs < 2.0);
    const toml_value *big = toml_get(r, "big");
    assert_int_equal(big->u.table.n, 50000);
    assert_int_equal(toml_get(big, "key12345")->u.integer, 12345);
    assert_null(toml_get(big, "key50000"));
    toml_free(r);
    put(&t, "key7777 = 0\n");
    char err[256];
    parse_err(t.p, t.len, err, sizeof err);
    assert_string_equal(err, "t.toml:50002:1: duplicate key 'key7777'");
    free(t.p);
}

static void test_api_edges(void **state)
{
    (void)state;
    toml_value *r = NULL;
    assert_int_equal(toml_parse("", 0, "e.toml", &r, NULL, 0), 0);
    assert_int_equal(r->type, TOML_TABLE);
    assert_int_equal(r->u.table.n, 0);
    assert_null(toml_get(r, "x"));
    assert_null(toml_get(r, NULL));
    toml_free(r);
    toml_free(NULL);
    assert_null(toml_get(NULL, "x"));
    /* No error buffer, and a tiny one, must both be safe. */
    assert_int_equal(toml_parse("a = ", 4, "e.toml", &r, NULL, 0), -1);
    char tiny[8];
    assert_int_equal(toml_parse("a = ", 4, "e.toml", &r, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "e.toml:");
    /* Only len bytes are read: the text need not be NUL-terminated. */
    const char doc[] = {'a', ' ', '=', ' ', '1', '2'};
    r = NULL;
    assert_int_equal(toml_parse(doc, 5, "e.toml", &r, NULL, 0), 0);
    assert_int_equal(toml_get(r, "a")->u.integer, 1);
    assert_null(toml_get(toml_get(r, "a"), "x"));
    toml_free(r);
    /* A NUL byte in the document is a control character. */
    char err[128];
    parse_err("a = 1\n\0", 7, err, sizeof err);
    assert_string_equal(err, "t.toml:2:1: unexpected control character U+0000");
    assert_string_equal(toml_type_name(TOML_STRING), "string");
    assert_string_equal(toml_type_name(TOML_INTEGER), "integer");
    assert_string_equal(toml_type_name(TOML_FLOAT), "float");
    assert_string_equal(toml_type_name(TOML_BOOL), "boolean");
    assert_string_equal(toml_type_name(TOML_DATETIME), "date-time");
    assert_string_equal(toml_type_name(TOML_ARRAY), "array");
    assert_string_equal(toml_type_name(TOML_TABLE), "table");
}

/* Random documents from TOML-ish pieces: every outcome must be a tree or a
 * well-formed "name:line:col: message", never a crash (run under ASan). */
static void test_hostile_input(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "[", "]", "[[", "]]", "{", "}", "\"", "'", "\"\"\"", "'''", "=", ".", ",", "\n",
        "\r\n", "\r", " ", "\t", "#", "\\", "\\u", "a", "b", "1", "0x", "_", "-", "+", "e",
        "inf", "nan", "true", "1979-05-27", "T07:32:00", "\xc3\xa9", "\xff", "\xed\xa0\x80",
        "\x00", "\x7f", "a = ", "[a.b]\n", "x.y = 1\n"};
    uint32_t seed = 12345;
    char doc[256];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        int parts = (int)(seed >> 16) % 40;
        for (int p = 0; p < parts; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *s = pieces[(seed >> 16) % (sizeof pieces / sizeof *pieces)];
            size_t n = *s ? strlen(s) : 1;
            if (len + n >= sizeof doc)
                break;
            memcpy(doc + len, s, n);
            len += n;
        }
        toml_value *r = NULL;
        char err[256];
        if (toml_parse(doc, len, "h", &r, err, sizeof err) == 0) {
            assert_non_null(r);
            toml_free(r);
        } else {
            int line, col;
            assert_null(r);
            assert_int_equal(sscanf(err, "h:%d:%d: ", &line, &col), 2);
            assert_true(line >= 1 && col >= 1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_documents), cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_string_escapes),  cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_positions),       cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_many_keys),       cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_hostile_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
