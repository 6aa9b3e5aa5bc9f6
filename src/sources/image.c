/*
 * image.c - container images as a source: `docker save` tarballs and OCI
 * image layouts, as a directory or as a (possibly compressed) tar.
 *
 * Every regular file of every layer is emitted, including files that a
 * later layer deletes or replaces: whoever pulls the image gets every layer,
 * so a secret removed in layer 5 is still published by layer 2.  Whiteout
 * markers (.wh.name, .wh..wh..opq) are bookkeeping, not content, and are
 * dropped.  The image config is emitted as one synthetic text item (Env
 * entries and the history's created_by commands), because `ENV TOKEN=...`
 * and `RUN curl -H "Authorization: ..."` leave their secrets there and in
 * no layer file.
 *
 * Shape: an image tar can be many gigabytes and must not be held in memory
 * or unpacked to disk, and the small JSON files that say which entry is a
 * layer may come after the layers (docker writes manifest.json last).  So a
 * tar is read twice, streaming: pass one keeps only small JSON-looking
 * entries; pass two opens each layer entry as a nested libarchive reader
 * fed straight from the outer one (layers are tars, usually gzip or zstd
 * compressed).  A directory layout is simpler: layers are files, opened in
 * manifest order.  Paths named by manifests are checked before use, so a
 * hostile manifest cannot make a directory scan read outside the image.
 *
 * JSON is parsed with report's small strict reader (bounded nesting) rather
 * than a second parser here.
 */
#include "sources/sources.h"

#include "report/report.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_BLOCK 65536
#define IMAGE_JSON_MAX (16u << 20)   /* one manifest, index or config */
#define IMAGE_STASH_MAX (64u << 20)  /* all of them together */
#define IMAGE_DEFAULT_TOTAL (64ull << 30)
#define IMAGE_INDEX_DEPTH 4
#define IMAGE_SHORT 12

typedef struct image_file {
    char *name;
    uint8_t *data;
    size_t len;
} image_file;

typedef struct image_layer {
    char *name; /* entry inside the image */
    char short_id[IMAGE_SHORT + 1];
    int seen;
} image_layer;

typedef struct image_scan {
    const char *origin;
    image_opts o;
    source_emit_fn emit;
    source_skip_fn skip;
    void *ctx;
    int is_dir;
    image_file *stash; /* tar only: small JSON entries from pass one */
    size_t n_stash, stash_bytes;
    image_layer *layers;
    size_t n_layers;
    char **configs; /* config entry names, in order */
    size_t n_configs;
    uint64_t total;
    uint8_t *buf;
    size_t cap;
    uint8_t io[IMAGE_BLOCK];
    struct archive *outer; /* tar pass two: feeds the nested layer reader */
    int stopped, failed, limit_hit;
} image_scan;

static void image_skip(image_scan *s, const char *path, const char *fmt, const char *arg)
{
    char msg[320];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    if (s->skip) s->skip(path, msg, s->ctx);
}

/* Index of the first byte that is not JSON white space (len if none). */
static size_t image_skip_space(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) i++;
    return i;
}

static const char *image_clean(const char *name)
{
    while (name[0] == '/' || (name[0] == '.' && name[1] == '/')) name += name[0] == '/' ? 1 : 2;
    return name;
}

/* A path a manifest names: relative, no "..", nothing odd. */
static int image_safe_name(const char *name)
{
    if (!name || !name[0] || name[0] == '/') return 0;
    for (const char *p = name; *p; p++) {
        if ((p == name || p[-1] == '/') && p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
            return 0;
        if ((unsigned char)*p < 0x20) return 0;
    }
    return 1;
}

/* "sha256:abcd..." -> "blobs/sha256/abcd..." (and its short id). */
static char *image_blob_name(const char *digest, char *short_id)
{
    const char *colon = digest ? strchr(digest, ':') : NULL;
    if (!colon || colon == digest || !colon[1]) return NULL;
    for (const char *p = digest; *p; p++) {
        if (p == colon) continue;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '.' ||
              *p == '_' || *p == '-'))
            return NULL;
    }
    size_t alg = (size_t)(colon - digest);
    char *out = malloc(strlen(digest) + 8);
    if (!out) return NULL;
    sprintf(out, "blobs/%.*s/%s", (int)alg, digest, colon + 1);
    if (short_id) snprintf(short_id, IMAGE_SHORT + 1, "%s", colon + 1);
    return out;
}

/* ---- small files: the stash (tar) or the directory ---- */

static int image_wants(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "oci-layout") == 0 || (n > 5 && strcmp(name + n - 5, ".json") == 0) ||
           strncmp(name, "blobs/", 6) == 0;
}

static const image_file *image_stash_find(const image_scan *s, const char *name)
{
    for (size_t i = 0; i < s->n_stash; i++)
        if (strcmp(s->stash[i].name, name) == 0) return &s->stash[i];
    return NULL;
}

/* Reads a small file of the image.  Returns 0 with a malloc'd buffer, or an
 * errno value. */
static int image_load(image_scan *s, const char *name, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!image_safe_name(name)) return EINVAL;
    if (!s->is_dir) {
        const image_file *f = image_stash_find(s, name);
        if (!f) return ENOENT;
        *data = malloc(f->len + 1);
        if (!*data) return ENOMEM;
        memcpy(*data, f->data, f->len);
        *len = f->len;
        return 0;
    }
    char *path = malloc(strlen(s->origin) + strlen(name) + 2);
    if (!path) return ENOMEM;
    sprintf(path, "%s/%s", s->origin, name);
    size_t cap = 0;
    int rc = sources_read_file(path, IMAGE_JSON_MAX, data, &cap, len);
    free(path);
    if (rc != 0) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

static report_jvalue *image_load_json(image_scan *s, const char *name, int report_missing)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = image_load(s, name, &data, &len);
    char where[512];
    snprintf(where, sizeof where, "%s!%s", s->origin, name ? name : "");
    if (rc != 0) {
        if (rc == ENOMEM) s->failed = 1;
        if (report_missing || rc != ENOENT)
            image_skip(s, where, "unreadable image metadata: %s", strerror(rc));
        return NULL;
    }
    report_jvalue *v = NULL;
    char err[128];
    if (report_json_parse((const char *)data, len, &v, err, sizeof err) != 0) {
        image_skip(s, where, "bad image metadata: %s", err);
        v = NULL;
    }
    free(data);
    return v;
}

static const char *image_str(const report_jvalue *v)
{
    return v && v->type == REPORT_JSTRING ? v->str : NULL;
}

static const report_jvalue *image_arr(const report_jvalue *v)
{
    return v && v->type == REPORT_JARRAY ? v : NULL;
}

/* ---- what the manifests say ---- */

static void image_add_layer(image_scan *s, const char *name, const char *short_id)
{
    if (!image_safe_name(name)) {
        image_skip(s, s->origin, "unsafe layer name in manifest: %s", name);
        return;
    }
    for (size_t i = 0; i < s->n_layers; i++)
        if (strcmp(s->layers[i].name, name) == 0) return;
    image_layer *l = realloc(s->layers, (s->n_layers + 1) * sizeof *l);
    if (!l) {
        s->failed = 1;
        return;
    }
    s->layers = l;
    image_layer *n = &l[s->n_layers];
    memset(n, 0, sizeof *n);
    if (!(n->name = strdup(name))) {
        s->failed = 1;
        return;
    }
    snprintf(n->short_id, sizeof n->short_id, "%s", short_id);
    s->n_layers++;
}

static void image_add_config(image_scan *s, const char *name)
{
    if (!name || !image_safe_name(name)) return;
    for (size_t i = 0; i < s->n_configs; i++)
        if (strcmp(s->configs[i], name) == 0) return;
    char **c = realloc(s->configs, (s->n_configs + 1) * sizeof *c);
    if (!c) {
        s->failed = 1;
        return;
    }
    s->configs = c;
    if (!(c[s->n_configs] = strdup(name))) {
        s->failed = 1;
        return;
    }
    s->n_configs++;
}

/* A short id for a layer named "<id>/layer.tar", "<hex>.tar" or
 * "blobs/sha256/<hex>": the layer's diff id when the config gives one. */
static void image_short_for(const char *name, const char *diff_id, char *out)
{
    const char *colon = diff_id ? strchr(diff_id, ':') : NULL;
    const char *slash = strrchr(name, '/');
    const char *src;
    if (strncmp(name, "blobs/", 6) == 0 && slash) {
        src = slash + 1;
    } else if (colon) {
        src = colon + 1;
    } else {
        src = name;
    }
    size_t n = 0;
    while (n < IMAGE_SHORT && src[n] && src[n] != '/' && src[n] != '.') n++;
    memcpy(out, src, n);
    out[n] = '\0';
}

/* docker save: [{"Config": "x.json", "Layers": ["a/layer.tar", ...]}]. */
static void image_read_docker_manifest(image_scan *s, const report_jvalue *m)
{
    if (!image_arr(m)) {
        image_skip(s, s->origin, "bad image metadata: %s", "manifest.json is not an array");
        return;
    }
    for (size_t i = 0; i < m->n && !s->failed; i++) {
        const char *config = image_str(report_json_get(m->items[i], "Config"));
        const report_jvalue *layers = image_arr(report_json_get(m->items[i], "Layers"));
        report_jvalue *cfg = config ? image_load_json(s, config, 1) : NULL;
        const report_jvalue *diff_ids =
            image_arr(report_json_get(report_json_get(cfg, "rootfs"), "diff_ids"));
        image_add_config(s, config);
        for (size_t j = 0; layers && j < layers->n; j++) {
            const char *name = image_str(layers->items[j]);
            if (!name) continue;
            char short_id[IMAGE_SHORT + 1];
            const char *diff_id =
                diff_ids && j < diff_ids->n ? image_str(diff_ids->items[j]) : NULL;
            image_short_for(name, diff_id, short_id);
            image_add_layer(s, name, short_id);
        }
        report_json_free(cfg);
    }
}

/* OCI: an index lists manifests (or more indexes); a manifest lists a
 * config and layers by digest. */
static void image_read_oci_index(image_scan *s, const report_jvalue *index, int depth)
{
    const report_jvalue *ms = image_arr(report_json_get(index, "manifests"));
    for (size_t i = 0; ms && i < ms->n && !s->failed; i++) {
        char *name = image_blob_name(image_str(report_json_get(ms->items[i], "digest")), NULL);
        if (!name) continue;
        report_jvalue *m = image_load_json(s, name, 0);
        free(name);
        if (!m) continue; /* multi-platform indexes name blobs never pulled */
        if (report_json_get(m, "manifests")) {
            if (depth < IMAGE_INDEX_DEPTH) image_read_oci_index(s, m, depth + 1);
        } else {
            const report_jvalue *config = report_json_get(m, "config");
            char *cfg = image_blob_name(image_str(report_json_get(config, "digest")), NULL);
            image_add_config(s, cfg);
            free(cfg);
            const report_jvalue *layers = image_arr(report_json_get(m, "layers"));
            for (size_t j = 0; layers && j < layers->n; j++) {
                char short_id[IMAGE_SHORT + 1];
                const char *digest = image_str(report_json_get(layers->items[j], "digest"));
                char *l = image_blob_name(digest, short_id);
                if (l) image_add_layer(s, l, short_id);
                free(l);
            }
        }
        report_json_free(m);
    }
}

/* ---- emitting ---- */

static int image_append(image_scan *s, size_t *len, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < *len + n + 2) cap *= 2;
        uint8_t *p = realloc(s->buf, cap);
        if (!p) {
            s->failed = 1;
            return -1;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + *len, text, n);
    s->buf[*len + n] = '\n';
    *len += n + 1;
    return 0;
}

static void image_emit_config(image_scan *s, const char *name, int numbered)
{
    report_jvalue *cfg = image_load_json(s, name, 1);
    if (!cfg) return;
    size_t len = 0;
    const report_jvalue *env = image_arr(report_json_get(report_json_get(cfg, "config"), "Env"));
    for (size_t i = 0; env && i < env->n; i++)
        if (image_str(env->items[i]) && image_append(s, &len, env->items[i]->str) != 0) break;
    const report_jvalue *hist = image_arr(report_json_get(cfg, "history"));
    for (size_t i = 0; hist && i < hist->n && !s->failed; i++) {
        const char *cmd = image_str(report_json_get(hist->items[i], "created_by"));
        if (cmd && image_append(s, &len, cmd) != 0) break;
    }
    report_json_free(cfg);
    if (s->failed || len == 0) return;

    char short_id[IMAGE_SHORT + 1];
    image_short_for(name, NULL, short_id);
    char *path = malloc(strlen(s->origin) + sizeof "!config " + IMAGE_SHORT);
    if (!path) {
        s->failed = 1;
        return;
    }
    sprintf(path, numbered ? "%s!config %s" : "%s!config", s->origin, short_id);
    source_item it = {.path = path, .data = s->buf, .len = len};
    if (s->emit && s->emit(&it, s->ctx) != 0) s->stopped = 1;
    free(path);
}

static int image_count(image_scan *s, uint64_t n)
{
    s->total += n;
    if (s->total <= s->o.max_total) return 0;
    char lim[64];
    snprintf(lim, sizeof lim, "%llu", (unsigned long long)s->o.max_total);
    image_skip(s, s->origin, "image limit: more than %s bytes in layers; rest not scanned", lim);
    s->limit_hit = 1;
    return -1;
}

/* Reads the current layer member into s->buf.  0 = read, 1 = skipped,
 * -1 = stop this layer. */
static int image_read_member(image_scan *s, struct archive *a, struct archive_entry *e,
                             const char *path, size_t *len)
{
    uint64_t max = s->o.max_file_size;
    *len = 0;
    if (max && archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > max) {
        char lim[64];
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)max);
        image_skip(s, path, "larger than the file size limit (%s bytes)", lim);
        return image_count(s, (uint64_t)archive_entry_size(e)) ? -1 : 1;
    }
    for (;;) {
        if (*len + IMAGE_BLOCK > s->cap) {
            size_t cap = s->cap ? s->cap * 2 : IMAGE_BLOCK * 4;
            while (cap < *len + IMAGE_BLOCK) cap *= 2;
            uint8_t *p = realloc(s->buf, cap);
            if (!p) {
                s->failed = 1;
                return -1;
            }
            s->buf = p;
            s->cap = cap;
        }
        la_ssize_t n = archive_read_data(a, s->buf + *len, IMAGE_BLOCK);
        if (n == 0) return 0;
        if (n < 0) {
            image_skip(s, path, "unreadable layer member: %s", archive_error_string(a));
            return n == ARCHIVE_FATAL ? -1 : 1;
        }
        *len += (size_t)n;
        if (image_count(s, (uint64_t)n) != 0) return -1;
        if (max && *len > max) {
            char lim[64];
            snprintf(lim, sizeof lim, "%llu", (unsigned long long)max);
            image_skip(s, path, "larger than the file size limit (%s bytes)", lim);
            return 1;
        }
    }
}

static void image_walk_layer(image_scan *s, struct archive *a, const image_layer *l)
{
    char *prefix = malloc(strlen(s->origin) + sizeof "!layer " + IMAGE_SHORT);
    char *path = NULL;
    if (!prefix) {
        s->failed = 1;
        return;
    }
    sprintf(prefix, "%s!layer %s", s->origin, l->short_id);
    size_t plen = strlen(prefix);
    while (!s->stopped && !s->failed && !s->limit_hit) {
        struct archive_entry *e = NULL;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            image_skip(s, prefix, "corrupt layer: %s", archive_error_string(a));
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) continue;
        const char *name = image_clean(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        if (strncmp(base, ".wh.", 4) == 0) continue; /* whiteout marker */
        char *p = realloc(path, plen + strlen(name) + 2);
        if (!p) {
            s->failed = 1;
            break;
        }
        path = p;
        sprintf(path, "%s!%s", prefix, name);
        size_t len = 0;
        int m = image_read_member(s, a, e, path, &len);
        if (m < 0) break;
        if (m > 0) continue;
        if (s->o.archives && sources_is_archive(path, s->buf, len)) {
            sources_archive(s->buf, len, path, s->o.archives, s->emit, s->skip, s->ctx);
            continue; /* a stop request inside is not visible here; harmless */
        }
        source_item it = {.path = path, .data = s->buf, .len = len};
        if (s->emit && s->emit(&it, s->ctx) != 0) s->stopped = 1;
    }
    free(path);
    free(prefix);
}

static struct archive *image_layer_reader(void)
{
    struct archive *a = archive_read_new();
    if (!a) return NULL;
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    return a;
}

static struct archive *image_outer_reader(const char *path)
{
    struct archive *a = image_layer_reader();
    if (a && archive_read_open_filename(a, path, IMAGE_BLOCK) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Feeds a nested layer reader from the outer tar's current entry. */
static la_ssize_t image_outer_read(struct archive *inner, void *data, const void **buf)
{
    image_scan *s = data;
    la_ssize_t n = archive_read_data(s->outer, s->io, sizeof s->io);
    if (n < 0) {
        archive_set_error(inner, EIO, "%s", archive_error_string(s->outer));
        return -1;
    }
    *buf = s->io;
    return n;
}

static void image_scan_layer_dir(image_scan *s, image_layer *l)
{
    char *path = malloc(strlen(s->origin) + strlen(l->name) + 2);
    if (!path) {
        s->failed = 1;
        return;
    }
    sprintf(path, "%s/%s", s->origin, l->name);
    struct archive *a = image_layer_reader();
    if (!a) {
        s->failed = 1;
    } else if (archive_read_open_filename(a, path, IMAGE_BLOCK) != ARCHIVE_OK) {
        char where[512];
        snprintf(where, sizeof where, "%s!layer %s", s->origin, l->short_id);
        image_skip(s, where, "unreadable layer: %s", archive_error_string(a));
    } else {
        image_walk_layer(s, a, l);
    }
    l->seen = 1;
    archive_read_free(a);
    free(path);
}

/* Tar pass two: each layer entry read in place as a nested archive. */
static void image_scan_layers_tar(image_scan *s)
{
    struct archive *outer = image_outer_reader(s->origin);
    if (!outer) {
        image_skip(s, s->origin, "unreadable image: %s", strerror(EIO));
        return;
    }
    s->outer = outer;
    struct archive_entry *e = NULL;
    while (!s->stopped && !s->failed && !s->limit_hit) {
        int r = archive_read_next_header(outer, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            image_skip(s, s->origin, "corrupt image: %s", archive_error_string(outer));
            break;
        }
        const char *name = image_clean(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        image_layer *l = NULL;
        for (size_t i = 0; i < s->n_layers && !l; i++)
            if (!s->layers[i].seen && strcmp(s->layers[i].name, name) == 0) l = &s->layers[i];
        if (!l) continue;
        l->seen = 1;
        struct archive *inner = image_layer_reader();
        if (!inner) {
            s->failed = 1;
            break;
        }
        if (archive_read_open(inner, s, NULL, image_outer_read, NULL) != ARCHIVE_OK) {
            char where[512];
            snprintf(where, sizeof where, "%s!layer %s", s->origin, l->short_id);
            image_skip(s, where, "unreadable layer: %s", archive_error_string(inner));
        } else {
            image_walk_layer(s, inner, l);
        }
        archive_read_free(inner);
    }
    s->outer = NULL;
    archive_read_free(outer);
}

/* Tar pass one: keep the small entries that may be JSON metadata. */
static int image_stash_tar(image_scan *s)
{
    struct archive *a = image_outer_reader(s->origin);
    if (!a) {
        image_skip(s, s->origin, "not an image: %s", "unreadable tar");
        return -1;
    }
    struct archive_entry *e = NULL;
    int rc = 0;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            image_skip(s, s->origin, "corrupt image: %s", archive_error_string(a));
            rc = s->n_stash ? 0 : -1;
            break;
        }
        const char *name = image_clean(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        la_int64_t size = archive_entry_size(e);
        if (archive_entry_filetype(e) != AE_IFREG || !image_wants(name) || size < 0 ||
            (uint64_t)size > IMAGE_JSON_MAX || s->stash_bytes + (size_t)size > IMAGE_STASH_MAX)
            continue;
        uint8_t *data = malloc((size_t)size + 1);
        char *copy = strdup(name);
        image_file *st = realloc(s->stash, (s->n_stash + 1) * sizeof *st);
        if (st) s->stash = st;
        if (!data || !copy || !st) {
            free(data);
            free(copy);
            s->failed = 1;
            rc = -1;
            break;
        }
        la_ssize_t got = archive_read_data(a, data, (size_t)size);
        size_t i = got > 0 ? image_skip_space(data, (size_t)got) : 0;
        /* Layers stored as blobs are big or binary; only JSON is kept. */
        if (got < 0 || (i < (size_t)got && data[i] != '{' && data[i] != '[' &&
                        strcmp(name, "oci-layout") != 0)) {
            free(data);
            free(copy);
            continue;
        }
        s->stash[s->n_stash++] = (image_file){copy, data, (size_t)got};
        s->stash_bytes += (size_t)got;
    }
    archive_read_free(a);
    return rc;
}

static int image_has(image_scan *s, const char *name)
{
    if (!s->is_dir) return image_stash_find(s, name) != NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->origin, name);
    return access(path, R_OK) == 0;
}

int sources_image(const char *path, const image_opts *opts, source_emit_fn emit,
                  source_skip_fn skip, void *ctx)
{
    image_scan *s = calloc(1, sizeof *s);
    if (!s) {
        if (skip) skip(path, strerror(ENOMEM), ctx);
        return -1;
    }
    s->origin = path;
    if (opts) s->o = *opts;
    if (!s->o.max_total) s->o.max_total = IMAGE_DEFAULT_TOTAL;
    s->emit = emit;
    s->skip = skip;
    s->ctx = ctx;

    int rc = -1;
    struct stat st;
    if (stat(path, &st) != 0) {
        image_skip(s, path, "%s", strerror(errno));
        goto out;
    }
    s->is_dir = S_ISDIR(st.st_mode);
    if (!s->is_dir && image_stash_tar(s) != 0) goto out;

    if (image_has(s, "manifest.json")) {
        report_jvalue *m = image_load_json(s, "manifest.json", 1);
        if (m) image_read_docker_manifest(s, m);
        report_json_free(m);
    } else if (image_has(s, "index.json") && image_has(s, "oci-layout")) {
        report_jvalue *idx = image_load_json(s, "index.json", 1);
        if (idx) image_read_oci_index(s, idx, 0);
        report_json_free(idx);
    } else {
        image_skip(s, path, "not an image: %s", "no manifest.json or index.json + oci-layout");
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < s->n_configs && !s->stopped && !s->failed; i++)
        image_emit_config(s, s->configs[i], s->n_configs > 1);
    if (s->is_dir) {
        for (size_t i = 0; i < s->n_layers && !s->stopped && !s->failed && !s->limit_hit; i++)
            image_scan_layer_dir(s, &s->layers[i]);
    } else if (!s->stopped && !s->failed) {
        image_scan_layers_tar(s);
    }
    for (size_t i = 0; i < s->n_layers && !s->stopped && !s->failed && !s->limit_hit; i++) {
        if (s->layers[i].seen) continue;
        char where[512];
        snprintf(where, sizeof where, "%s!%s", path, s->layers[i].name);
        image_skip(s, where, "layer missing from image%s", NULL);
    }
out:
    if (s->failed) {
        image_skip(s, path, "%s", strerror(ENOMEM));
        rc = -1;
    }
    for (size_t i = 0; i < s->n_stash; i++) {
        free(s->stash[i].name);
        free(s->stash[i].data);
    }
    for (size_t i = 0; i < s->n_layers; i++) free(s->layers[i].name);
    for (size_t i = 0; i < s->n_configs; i++) free(s->configs[i]);
    free(s->stash);
    free(s->layers);
    free(s->configs);
    free(s->buf);
    free(s);
    return rc;
}

/* ---- detection ---- */

/* Image tars start with a layer or blob entry or a metadata file; a tar
 * that does not is not read to its end just to be sure. */
static int image_plausible_first(const char *name)
{
    static const char *const known[] = {"manifest.json", "index.json", "oci-layout",
                                        "repositories", "blobs"};
    size_t n = strcspn(name, "/");
    if (n == 0) return 1; /* "./" of a tar made from inside the layout */
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strlen(known[i]) == n && strncmp(name, known[i], n) == 0) return 1;
    size_t hex = strspn(name, "0123456789abcdef");
    return hex >= 64;
}

int sources_is_image(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) return 0;
    char buf[4096];
    if (S_ISDIR(st.st_mode)) {
        snprintf(buf, sizeof buf, "%s/manifest.json", path);
        if (access(buf, R_OK) == 0) return 1;
        snprintf(buf, sizeof buf, "%s/index.json", path);
        int idx = access(buf, R_OK) == 0;
        snprintf(buf, sizeof buf, "%s/oci-layout", path);
        return idx && access(buf, R_OK) == 0;
    }
    if (!S_ISREG(st.st_mode)) return 0;
    struct archive *a = image_outer_reader(path);
    if (!a) return 0;
    int manifest = 0, index = 0, layout = 0, first = 1;
    struct archive_entry *e = NULL;
    while (!manifest && !(index && layout) && archive_read_next_header(a, &e) >= ARCHIVE_WARN) {
        const char *name = image_clean(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        if (first && !image_plausible_first(name)) break;
        first = 0;
        index |= strcmp(name, "index.json") == 0;
        layout |= strcmp(name, "oci-layout") == 0;
        if (strcmp(name, "manifest.json") == 0) {
            /* docker's manifest is an array; other tools' manifest.json
             * files (web app manifests, ...) are objects. */
            la_ssize_t n = archive_read_data(a, buf, sizeof buf - 1);
            size_t i = n > 0 ? image_skip_space((const uint8_t *)buf, (size_t)n) : 0;
            manifest = n > 0 && i < (size_t)n && buf[i] == '[';
        }
    }
    archive_read_free(a);
    return manifest || (index && layout);
}
