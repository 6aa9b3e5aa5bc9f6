/*
 * test_archive.c - the archive source against archives written at test time
 * with libarchive's writer into memory, so no binary fixture is committed
 * and every case states its own contents.
 *
 * Emitted members are recorded as "path=content" lines and skips as
 * "path: reason" lines, so a failure prints what the reader saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources/sources.h"

typedef struct result {
    char *emitted, *skipped;
    size_t n_emitted, n_skipped;
    size_t stop_after;
} result;

static void append(char **s, const char *text)
{
    size_t old = *s ? strlen(*s) : 0, add = strlen(text);
    char *p = realloc(*s, old + add + 2);
    assert_non_null(p);
    memcpy(p + old, text, add);
    p[old + add] = '\n';
    p[old + add + 1] = '\0';
    *s = p;
}

static int on_emit(const source_item *it, void *ctx)
{
    result *r = ctx;
    assert_non_null(it->data);
    assert_null(it->fs_path);
    assert_null(it->commit);
    char line[512];
    /* Long members are shown by length only. */
    if (it->len > 64)
        snprintf(line, sizeof line, "%s=<%zu bytes>", it->path, it->len);
    else /* one line per member: its own final newline is dropped */
        snprintf(line, sizeof line, "%s=%.*s", it->path,
                 (int)(it->len - (it->len && it->data[it->len - 1] == '\n')),
                 (const char *)it->data);
    append(&r->emitted, line);
    r->n_emitted++;
    return r->stop_after && r->n_emitted >= r->stop_after;
}

static void on_skip(const char *path, const char *reason, void *ctx)
{
    result *r = ctx;
    char line[512];
    snprintf(line, sizeof line, "%s: %s", path, reason);
    append(&r->skipped, line);
    r->n_skipped++;
}

static void result_free(result *r)
{
    free(r->emitted);
    free(r->skipped);
}

static int has(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

#define assert_has(hay, needle)                                                                   \
    do {                                                                                          \
        if (!has((hay), (needle))) fail_msg("missing \"%s\" in:\n%s", (needle), (hay) ? (hay) : ""); \
    } while (0)

/* ---- writing archives into memory ---- */

typedef struct member {
    const char *name;
    const void *data;
    size_t len;
    int is_dir;
} member;

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

enum { F_ZIP, F_TAR, F_7Z, F_RAW };
enum { C_NONE, C_GZIP, C_BZIP2, C_XZ, C_ZSTD };

static blob make(int format, int filter, const member *m, size_t n)
{
    size_t cap = 1 << 22;
    blob b = {malloc(cap), 0};
    assert_non_null(b.data);
    struct archive *a = archive_write_new();
    assert_non_null(a);
    switch (format) {
    case F_ZIP: assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK); break;
    case F_TAR: assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK); break;
    case F_7Z: assert_int_equal(archive_write_set_format_7zip(a), ARCHIVE_OK); break;
    default: assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK); break;
    }
    switch (filter) {
    case C_GZIP: assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK); break;
    case C_BZIP2: assert_int_equal(archive_write_add_filter_bzip2(a), ARCHIVE_OK); break;
    case C_XZ: assert_int_equal(archive_write_add_filter_xz(a), ARCHIVE_OK); break;
    case C_ZSTD: assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK); break;
    default: break;
    }
    assert_int_equal(archive_write_open_memory(a, b.data, cap, &b.len), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_filetype(e, m[i].is_dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, m[i].is_dir ? 0 : (la_int64_t)m[i].len);
        archive_entry_set_mtime(e, 1000000000, 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (!m[i].is_dir && m[i].len)
            assert_int_equal(archive_write_data(a, m[i].data, m[i].len), (la_ssize_t)m[i].len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return b;
}

#define TEXT(name, s) {name, s, sizeof s - 1, 0}

static void scan(blob b, const char *origin, const archive_opts *o, result *r, int want_rc)
{
    assert_int_equal(sources_archive(b.data, b.len, origin, o, on_emit, on_skip, r), want_rc);
}

/* ---- tests ---- */

static void test_is_archive(void **state)
{
    (void)state;
    static const member one[] = {TEXT("a.txt", "alpha\n")};
    blob zip = make(F_ZIP, C_NONE, one, 1), tar = make(F_TAR, C_NONE, one, 1);
    blob sz = make(F_7Z, C_NONE, one, 1);
    assert_true(sources_is_archive("x.bin", zip.data, zip.len));
    assert_true(sources_is_archive(NULL, tar.data, tar.len));
    assert_true(sources_is_archive(NULL, sz.data, sz.len));
    assert_true(sources_is_archive(NULL, (const uint8_t *)"\x1f\x8b\x08", 3));
    assert_true(sources_is_archive(NULL, (const uint8_t *)"BZh91AY", 7));
    assert_true(sources_is_archive(NULL, (const uint8_t *)"\xfd\x37\x7a\x58\x5a\x00\x00", 7));
    assert_true(sources_is_archive(NULL, (const uint8_t *)"\x28\xb5\x2f\xfd\x00", 5));
    /* The name does not decide. */
    assert_false(sources_is_archive("x.zip", (const uint8_t *)"PK\x05\x06", 4));
    assert_false(sources_is_archive("x.tar.gz", (const uint8_t *)"hello world", 11));
    assert_false(sources_is_archive(NULL, (const uint8_t *)"\x1f", 1));
    assert_false(sources_is_archive(NULL, NULL, 0));
    free(zip.data);
    free(tar.data);
    free(sz.data);
}

static void test_zip_paths(void **state)
{
    (void)state;
    static const member m[] = {
        {"conf/", NULL, 0, 1},
        TEXT("./conf/app.env", "TOKEN=zip-one\n"),
        TEXT("/etc/abs.txt", "absolute\n"),
        TEXT("../../up.txt", "up\n"),
        TEXT("empty.txt", ""),
    };
    blob b = make(F_ZIP, C_NONE, m, 5);
    result r = {0};
    scan(b, "app.jar", NULL, &r, 0);
    assert_string_equal(r.emitted, "app.jar!conf/app.env=TOKEN=zip-one\n"
                                   "app.jar!etc/abs.txt=absolute\n"
                                   "app.jar!../../up.txt=up\n"
                                   "app.jar!empty.txt=\n");
    assert_int_equal(r.n_skipped, 0);
    result_free(&r);
    free(b.data);
}

static void test_compressed_tars(void **state)
{
    (void)state;
    static const member m[] = {TEXT("src/a.py", "KEY='tar-secret'\n"), TEXT("b.txt", "bee\n")};
    static const int filters[] = {C_NONE, C_GZIP, C_BZIP2, C_XZ, C_ZSTD};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        blob b = make(F_TAR, filters[i], m, 2);
        result r = {0};
        scan(b, "dist/pkg.tar.x", NULL, &r, 0);
        assert_string_equal(r.emitted, "dist/pkg.tar.x!src/a.py=KEY='tar-secret'\n"
                                       "dist/pkg.tar.x!b.txt=bee\n");
        result_free(&r);
        free(b.data);
    }
}

static void test_single_compressed_file(void **state)
{
    (void)state;
    static const member m[] = {TEXT("data", "password=gz-only\n")};
    static const int filters[] = {C_GZIP, C_BZIP2, C_XZ, C_ZSTD};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        blob b = make(F_RAW, filters[i], m, 1);
        result r = {0};
        scan(b, "logs/notes.txt.gz", NULL, &r, 0);
        assert_string_equal(r.emitted, "logs/notes.txt.gz!notes.txt=password=gz-only\n");
        result_free(&r);
        free(b.data);
    }
}

static void test_7z(void **state)
{
    (void)state;
    static const member m[] = {TEXT("deep/k.txt", "seven\n")};
    blob b = make(F_7Z, C_NONE, m, 1);
    result r = {0};
    scan(b, "k.7z", NULL, &r, 0);
    assert_string_equal(r.emitted, "k.7z!deep/k.txt=seven\n");
    result_free(&r);
    free(b.data);
}

static void test_nested(void **state)
{
    (void)state;
    static const member inner_m[] = {TEXT("secret.txt", "inner-secret\n")};
    blob inner = make(F_ZIP, C_NONE, inner_m, 1);
    member mid_m[] = {TEXT("readme", "top\n"), {"lib/inner.zip", inner.data, inner.len, 0}};
    blob outer = make(F_TAR, C_GZIP, mid_m, 2);
    result r = {0};
    scan(outer, "rel.tgz", NULL, &r, 0);
    assert_string_equal(r.emitted, "rel.tgz!readme=top\n"
                                   "rel.tgz!lib/inner.zip!secret.txt=inner-secret\n");
    result_free(&r);
    free(outer.data);
    free(inner.data);
}

static void test_depth_limit(void **state)
{
    (void)state;
    static const member l3[] = {TEXT("deepest.txt", "three\n")};
    blob b3 = make(F_ZIP, C_NONE, l3, 1);
    member l2[] = {TEXT("two.txt", "two\n"), {"c.zip", b3.data, b3.len, 0}};
    blob b2 = make(F_ZIP, C_NONE, l2, 2);
    member l1[] = {{"b.zip", b2.data, b2.len, 0}, TEXT("one.txt", "one\n")};
    blob b1 = make(F_ZIP, C_NONE, l1, 2);

    archive_opts o = {.max_depth = 1};
    result r = {0};
    scan(b1, "a.zip", &o, &r, 0);
    assert_string_equal(r.emitted, "a.zip!b.zip!two.txt=two\n"
                                   "a.zip!one.txt=one\n");
    assert_string_equal(r.skipped, "a.zip!b.zip!c.zip: archive limit: nested deeper than 1\n");
    result_free(&r);

    result all = {0}; /* the default depth (3) reaches it */
    scan(b1, "a.zip", NULL, &all, 0);
    assert_has(all.emitted, "a.zip!b.zip!c.zip!deepest.txt=three\n");
    assert_int_equal(all.n_skipped, 0);
    result_free(&all);
    free(b1.data);
    free(b2.data);
    free(b3.data);
}

static void test_ratio_limit(void **state)
{
    (void)state;
    size_t big = 4u << 20;
    char *zeros = calloc(1, big);
    assert_non_null(zeros);
    member m[] = {TEXT("before.txt", "kept\n"), {"bomb.bin", zeros, big, 0},
                  TEXT("after.txt", "dropped\n")};
    blob b = make(F_ZIP, C_NONE, m, 3);
    assert_true(b.len < big / 100); /* deflate makes it a small bomb */

    result r = {0};
    scan(b, "bomb.zip", NULL, &r, 0);
    assert_string_equal(r.emitted, "bomb.zip!before.txt=kept\n");
    assert_int_equal(r.n_skipped, 1);
    assert_has(r.skipped, "bomb.zip!bomb.bin: archive limit: expands more than 100:1");

    /* With a looser ratio the same archive is read whole. */
    archive_opts o = {.max_ratio = 100000};
    result ok = {0};
    scan(b, "bomb.zip", &o, &ok, 0);
    assert_int_equal(ok.n_emitted, 3);
    assert_int_equal(ok.n_skipped, 0);
    result_free(&ok);
    result_free(&r);
    free(b.data);
    free(zeros);
}

static void test_total_member_count_and_size_limits(void **state)
{
    (void)state;
    char fill[600];
    memset(fill, 'x', sizeof fill);
    member m[] = {{"one", fill, 600, 0}, {"two", fill, 600, 0}, TEXT("three", "3\n")};
    blob b = make(F_TAR, C_NONE, m, 3);

    archive_opts total = {.max_total = 1000};
    result r = {0};
    scan(b, "t.tar", &total, &r, 0);
    assert_string_equal(r.emitted, "t.tar!one=<600 bytes>\n");
    assert_has(r.skipped, "t.tar!two: archive limit: more than 1000 bytes expanded");
    result_free(&r);

    archive_opts count = {.max_members = 2};
    result c = {0};
    scan(b, "t.tar", &count, &c, 0);
    assert_int_equal(c.n_emitted, 2);
    assert_string_equal(c.skipped, "t.tar: archive limit: more than 2 members; rest of the "
                                   "archive not scanned\n");
    result_free(&c);

    /* Member size only costs the member. */
    archive_opts size = {.max_member_size = 100};
    result s = {0};
    scan(b, "t.tar", &size, &s, 0);
    assert_string_equal(s.emitted, "t.tar!three=3\n");
    assert_int_equal(s.n_skipped, 2);
    assert_has(s.skipped, "t.tar!one: larger than the member size limit (100 bytes)");
    result_free(&s);

    /* Same, when the header does not announce the size (zip streams it). */
    blob z = make(F_ZIP, C_GZIP, m, 3);
    result zs = {0};
    assert_int_equal(sources_archive(z.data, z.len, "t.zip.gz", &size, on_emit, on_skip, &zs), 0);
    assert_string_equal(zs.emitted, "t.zip.gz!three=3\n");
    assert_int_equal(zs.n_skipped, 2);
    result_free(&zs);
    free(z.data);
    free(b.data);
}

static void test_corrupt(void **state)
{
    (void)state;
    static const member m[] = {TEXT("a.txt", "alpha\n"), TEXT("b.txt", "beta\n")};
    blob tgz = make(F_TAR, C_GZIP, m, 2);
    blob zip = make(F_ZIP, C_NONE, m, 2);

    /* Truncated gzip: the first member may survive, nothing crashes. */
    result r = {0};
    assert_int_equal(sources_archive(tgz.data, tgz.len / 2, "cut.tgz", NULL, on_emit, on_skip, &r), 0);
    assert_true(r.n_skipped >= 1);
    assert_has(r.skipped, "cut.tgz");
    result_free(&r);

    /* Garbage after a zip magic. */
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 11);
    memcpy(junk, "PK\x03\x04", 4);
    result j = {0};
    assert_int_equal(sources_archive(junk, sizeof junk, "junk.zip", NULL, on_emit, on_skip, &j), 0);
    assert_int_equal(j.n_emitted, 0);
    assert_has(j.skipped, "junk.zip: corrupt archive");
    result_free(&j);

    /* Every truncation of a zip and a tgz: never a crash, never a hang. */
    for (size_t n = 0; n < zip.len; n += 7) {
        result t = {0};
        sources_archive(zip.data, n, "t.zip", NULL, on_emit, on_skip, &t);
        result_free(&t);
    }
    for (size_t n = 0; n < tgz.len; n += 5) {
        result t = {0};
        sources_archive(tgz.data, n, "t.tgz", NULL, on_emit, on_skip, &t);
        result_free(&t);
    }

    /* A corrupt nested archive costs only itself. */
    member outer_m[] = {{"bad.zip", junk, sizeof junk, 0}, TEXT("ok.txt", "fine\n")};
    blob outer = make(F_TAR, C_NONE, outer_m, 2);
    result o = {0};
    scan(outer, "o.tar", NULL, &o, 0);
    assert_string_equal(o.emitted, "o.tar!ok.txt=fine\n");
    assert_has(o.skipped, "o.tar!bad.zip: corrupt archive");
    result_free(&o);

    free(outer.data);
    free(tgz.data);
    free(zip.data);
}

static void test_not_archive_and_stop(void **state)
{
    (void)state;
    result r = {0};
    assert_int_equal(
        sources_archive((const uint8_t *)"plain text", 10, "a.zip", NULL, on_emit, on_skip, &r), -1);
    assert_string_equal(r.skipped, "a.zip: not an archive\n");
    result_free(&r);

    static const member m[] = {TEXT("a", "1\n"), TEXT("b", "2\n"), TEXT("c", "3\n")};
    blob b = make(F_ZIP, C_NONE, m, 3);
    result s = {.stop_after = 2};
    scan(b, "s.zip", NULL, &s, 0);
    assert_int_equal(s.n_emitted, 2);
    result_free(&s);
    free(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_archive),
        cmocka_unit_test(test_zip_paths),
        cmocka_unit_test(test_compressed_tars),
        cmocka_unit_test(test_single_compressed_file),
        cmocka_unit_test(test_7z),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_ratio_limit),
        cmocka_unit_test(test_total_member_count_and_size_limits),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_not_archive_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
