/*
 * test_image.c - container image source against images built at test time:
 * a `docker save` tarball (manifest.json written last, as docker does), an
 * OCI layout as a directory and the same layout as a tar.  Layers are tars
 * written with libarchive; digests are made-up hex, since the source does
 * not verify them.
 *
 * Both images have the same two layers:
 *   layer 1: etc/app.env (a secret), usr/bin/tool
 *   layer 2 (gzip): etc/.wh.app.env (deletes the secret), etc/.wh..wh..opq,
 *                   srv/new.txt, srv/app.jar (a zip holding creds.txt)
 * The deleted secret must still be found; whiteout markers must not be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources/sources.h"

#define HEX_L1 "1111111111111111111111111111111111111111111111111111111111111111"
#define HEX_L2 "2222222222222222222222222222222222222222222222222222222222222222"
#define HEX_CFG "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define HEX_MAN "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define HEX_IDX "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_GONE "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

typedef struct result {
    char *emitted, *skipped;
    size_t n_emitted, n_skipped;
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
    char line[1024];
    size_t n = it->len - (it->len && it->data[it->len - 1] == '\n');
    if (n > 200)
        snprintf(line, sizeof line, "%s=<%zu bytes>", it->path, it->len);
    else
        snprintf(line, sizeof line, "%s=%.*s", it->path, (int)n, (const char *)it->data);
    append(&r->emitted, line);
    r->n_emitted++;
    return 0;
}

static void on_skip(const char *path, const char *reason, void *ctx)
{
    result *r = ctx;
    char line[1024];
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

/* ---- writing tars ---- */

typedef struct member {
    const char *name;
    const void *data;
    size_t len;
} member;

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

#define TEXT(name, s) {name, s, sizeof s - 1}

static struct archive *writer(int zip, int gzip)
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    if (zip)
        assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    else
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (gzip) assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    return a;
}

static void write_members(struct archive *a, const member *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)m[i].len);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (m[i].len)
            assert_int_equal(archive_write_data(a, m[i].data, m[i].len), (la_ssize_t)m[i].len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static blob make_mem(int zip, int gzip, const member *m, size_t n)
{
    size_t cap = 1 << 20;
    blob b = {malloc(cap), 0};
    assert_non_null(b.data);
    struct archive *a = writer(zip, gzip);
    assert_int_equal(archive_write_open_memory(a, b.data, cap, &b.len), ARCHIVE_OK);
    write_members(a, m, n);
    return b;
}

static void make_file(const char *path, int gzip, const member *m, size_t n)
{
    struct archive *a = writer(0, gzip);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    write_members(a, m, n);
}

static void write_plain(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* ---- the images ---- */

typedef struct fixture {
    char dir[64];
    char docker_tar[128], oci_dir[128], oci_tar[128], plain_tar[128], hostile[128];
    blob l1, l2;
} fixture;

static const char config_json[] =
    "{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/usr/bin\","
    "\"DB_PASSWORD=hunter2-config\"]},"
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" HEX_L1 "\",\"sha256:" HEX_L2 "\"]},"
    "\"history\":[{\"created_by\":\"/bin/sh -c #(nop) ADD file:abc in / \"},"
    "{\"created_by\":\"RUN curl -H 'X-Token: run-step-token' https://example.invalid\"},"
    "{\"empty_layer\":true}]}";

static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" HEX_CFG "\"},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:" HEX_L1 "\"},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" HEX_L2 "\"}]}";

/* The top index points at a nested index and at a platform never pulled. */
static const char oci_index[] =
    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"digest\":\"sha256:" HEX_IDX "\"},{\"digest\":\"sha256:" HEX_GONE "\"}]}";
static const char oci_index2[] = "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:" HEX_MAN "\"}]}";
static const char oci_layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/kh_test_image_XXXXXX");
    assert_non_null(mkdtemp(f->dir));

    static const member jar_m[] = {TEXT("creds.txt", "aws_secret=in-a-jar\n")};
    blob jar = make_mem(1, 0, jar_m, 1);
    static const member l1_m[] = {TEXT("etc/app.env", "API_KEY=layer-one-secret\n"),
                                  TEXT("./usr/bin/tool", "#!/bin/sh\n")};
    member l2_m[] = {TEXT("etc/.wh.app.env", ""), TEXT("etc/.wh..wh..opq", ""),
                     TEXT("srv/new.txt", "new file\n"), {"srv/app.jar", jar.data, jar.len}};
    f->l1 = make_mem(0, 0, l1_m, 2);
    f->l2 = make_mem(0, 1, l2_m, 4);
    free(jar.data);

    /* docker save, classic layout: <id>/layer.tar, <hex>.json, manifest last. */
    static const char manifest[] = "[{\"Config\":\"" HEX_CFG ".json\",\"RepoTags\":[\"app:1\"],"
                                   "\"Layers\":[\"" HEX_A "/layer.tar\",\"" HEX_B "/layer.tar\"]}]";
    snprintf(f->docker_tar, sizeof f->docker_tar, "%s/docker.tar", f->dir);
    member d[] = {{HEX_A "/layer.tar", f->l1.data, f->l1.len},
                  {HEX_B "/layer.tar", f->l2.data, f->l2.len},
                  TEXT(HEX_CFG ".json", config_json),
                  TEXT("manifest.json", manifest),
                  TEXT("repositories", "{}")};
    make_file(f->docker_tar, 0, d, 5);

    /* OCI layout as a directory, and the same as a gzip'd tar. */
    member o[] = {TEXT("oci-layout", oci_layout),
                  TEXT("index.json", oci_index),
                  TEXT("blobs/sha256/" HEX_IDX, oci_index2),
                  TEXT("blobs/sha256/" HEX_MAN, oci_manifest),
                  TEXT("blobs/sha256/" HEX_CFG, config_json),
                  {"blobs/sha256/" HEX_L1, f->l1.data, f->l1.len},
                  {"blobs/sha256/" HEX_L2, f->l2.data, f->l2.len}};
    snprintf(f->oci_dir, sizeof f->oci_dir, "%s/oci", f->dir);
    assert_int_equal(mkdir(f->oci_dir, 0755), 0);
    for (size_t i = 0; i < 7; i++) write_plain(f->oci_dir, o[i].name, o[i].data, o[i].len);
    snprintf(f->oci_tar, sizeof f->oci_tar, "%s/oci.tar.gz", f->dir);
    member ot[7];
    for (size_t i = 0; i < 7; i++) ot[i] = o[6 - i]; /* blobs first, as a tar of the dir */
    make_file(f->oci_tar, 1, ot, 7);

    /* A tar that is not an image although it has a manifest.json. */
    snprintf(f->plain_tar, sizeof f->plain_tar, "%s/site.tar", f->dir);
    static const member p[] = {TEXT("manifest.json", "{\"name\":\"web app\"}"),
                               TEXT("index.html", "<html></html>")};
    make_file(f->plain_tar, 0, p, 2);

    /* A layout whose manifest points outside the image. */
    snprintf(f->hostile, sizeof f->hostile, "%s/hostile", f->dir);
    assert_int_equal(mkdir(f->hostile, 0755), 0);
    static const char bad[] = "[{\"Config\":\"../docker.tar\",\"Layers\":[\"../docker.tar\","
                              "\"/etc/passwd\",\"ok/../../x\"]}]";
    write_plain(f->hostile, "manifest.json", bad, sizeof bad - 1);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f->l1.data);
    free(f->l2.data);
    free(f);
    return 0;
}

static void expect_image(const char *origin, const result *r, const char *id1, const char *id2)
{
    char want[512];
    snprintf(want, sizeof want,
             "%s!config=PATH=/usr/bin\nDB_PASSWORD=hunter2-config\n"
             "/bin/sh -c #(nop) ADD file:abc in / \n"
             "RUN curl -H 'X-Token: run-step-token' https://example.invalid\n",
             origin);
    assert_has(r->emitted, want);
    snprintf(want, sizeof want, "%s!layer %s!etc/app.env=API_KEY=layer-one-secret\n", origin, id1);
    assert_has(r->emitted, want);
    snprintf(want, sizeof want, "%s!layer %s!usr/bin/tool=#!/bin/sh\n", origin, id1);
    assert_has(r->emitted, want);
    snprintf(want, sizeof want, "%s!layer %s!srv/new.txt=new file\n", origin, id2);
    assert_has(r->emitted, want);
    snprintf(want, sizeof want, "%s!layer %s!srv/app.jar!creds.txt=aws_secret=in-a-jar\n", origin, id2);
    assert_has(r->emitted, want);
    assert_false(has(r->emitted, ".wh."));
    assert_int_equal(r->n_emitted, 5);
}

static void test_docker_save(void **state)
{
    fixture *f = *state;
    assert_true(sources_is_image(f->docker_tar));
    archive_opts ao = {0};
    image_opts o = {.archives = &ao};
    result r = {0};
    assert_int_equal(sources_image(f->docker_tar, &o, on_emit, on_skip, &r), 0);
    /* Short ids come from the config's diff_ids. */
    expect_image(f->docker_tar, &r, "111111111111", "222222222222");
    assert_int_equal(r.n_skipped, 0);
    result_free(&r);

    /* Without archive options the jar is emitted as it is. */
    result j = {0};
    assert_int_equal(sources_image(f->docker_tar, NULL, on_emit, on_skip, &j), 0);
    assert_has(j.emitted, "!layer 222222222222!srv/app.jar=");
    result_free(&j);
}

static void test_oci_dir_and_tar(void **state)
{
    fixture *f = *state;
    archive_opts ao = {0};
    image_opts o = {.archives = &ao};
    const char *paths[] = {f->oci_dir, f->oci_tar};
    for (size_t i = 0; i < 2; i++) {
        assert_true(sources_is_image(paths[i]));
        result r = {0};
        assert_int_equal(sources_image(paths[i], &o, on_emit, on_skip, &r), 0);
        expect_image(paths[i], &r, "111111111111", "222222222222");
        assert_int_equal(r.n_skipped, 0); /* the platform never pulled is not an error */
        result_free(&r);
    }
}

static void test_limits(void **state)
{
    fixture *f = *state;
    image_opts o = {.max_file_size = 12};
    result r = {0};
    assert_int_equal(sources_image(f->oci_dir, &o, on_emit, on_skip, &r), 0);
    assert_has(r.skipped, "!layer 111111111111!etc/app.env: larger than the file size limit (12 bytes)");
    assert_has(r.emitted, "!layer 111111111111!usr/bin/tool=");
    assert_false(has(r.emitted, "app.env"));
    result_free(&r);

    image_opts t = {.max_total = 20};
    result l = {0};
    assert_int_equal(sources_image(f->docker_tar, &t, on_emit, on_skip, &l), 0);
    assert_has(l.skipped, "image limit: more than 20 bytes");
    assert_int_equal(l.n_emitted, 1); /* the config only */
    result_free(&l);
}

static void test_not_images(void **state)
{
    fixture *f = *state;
    assert_false(sources_is_image(f->plain_tar));
    assert_false(sources_is_image(f->dir)); /* a directory without a layout */
    char path[256];
    snprintf(path, sizeof path, "%s/oci/oci-layout", f->dir);
    assert_false(sources_is_image(path)); /* a JSON file, not a tar */
    assert_false(sources_is_image("/nonexistent/kh-image"));

    result r = {0};
    assert_int_equal(sources_image(f->dir, NULL, on_emit, on_skip, &r), -1);
    assert_has(r.skipped, "not an image");
    result_free(&r);

    result p = {0};
    assert_int_equal(sources_image(f->plain_tar, NULL, on_emit, on_skip, &p), 0);
    assert_has(p.skipped, "manifest.json is not an array");
    assert_int_equal(p.n_emitted, 0);
    result_free(&p);

    /* Names that leave the layout are refused, never opened. */
    result h = {0};
    assert_int_equal(sources_image(f->hostile, NULL, on_emit, on_skip, &h), 0);
    assert_int_equal(h.n_emitted, 0);
    assert_has(h.skipped, "unsafe layer name in manifest: ../docker.tar");
    assert_has(h.skipped, "unsafe layer name in manifest: /etc/passwd");
    assert_has(h.skipped, "unsafe layer name in manifest: ok/../../x");
    result_free(&h);

    /* A truncated image tar: reported, no crash. */
    snprintf(path, sizeof path, "%s/cut.tar", f->dir);
    FILE *in = fopen(f->docker_tar, "rb"), *out = fopen(path, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n / 2, out);
    fclose(in);
    fclose(out);
    result c = {0};
    sources_image(path, NULL, on_emit, on_skip, &c);
    assert_true(c.n_skipped >= 1);
    result_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_save),
        cmocka_unit_test(test_oci_dir_and_tar),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_not_images),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
