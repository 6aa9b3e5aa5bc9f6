/*
 * cache.c - the --verify-cache file: outcomes of earlier runs, so CI does
 * not ask a service again about a secret it already knows.
 *
 * The file is one JSON object keyed by finding fingerprint (the same
 * fingerprint baselines use, so it names a (detector, secret) pair without
 * holding the secret):
 *
 *   { "<fingerprint>": { "status": "live", "reason": "HTTP 200", "time": 1700000000 } }
 *
 * Only "live" and "revoked" are kept: "unknown" means the question was not
 * answered (timeout, rate limit, outage), so the next run asks again.  Time
 * is Unix seconds; entries older than the TTL are dropped on load.  The file
 * is read with the report module's bounded JSON parser and written sorted,
 * through a temporary file and rename, so two runs over the same results
 * write the same bytes and a crash never leaves half a file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "verify/verify.h"

#define VERIFY_CACHE_MAX_BYTES (64u << 20)
#define VERIFY_REASON_MAX 200

static const char *cache_status(const char *s, size_t len)
{
    if (len == 4 && !memcmp(s, "live", 4))
        return "live";
    if (len == 7 && !memcmp(s, "revoked", 7))
        return "revoked";
    return NULL;
}

static int is_fingerprint(const char *s, size_t len)
{
    if (len != 64)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int verify_cache_put(verify_cache *c, const char *fingerprint, const char *status,
                     const char *reason, time_t when)
{
    const char *st = status ? cache_status(status, strlen(status)) : NULL;
    if (!st || !is_fingerprint(fingerprint, strlen(fingerprint)))
        return KH_EINVAL;
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        verify_cache_entry *items = realloc(c->items, cap * sizeof *items);
        if (!items)
            return KH_ENOMEM;
        c->items = items;
        c->cap = cap;
    }
    verify_cache_entry *e = &c->items[c->count];
    memcpy(e->fingerprint, fingerprint, 65);
    e->status = st;
    e->reason = strndup(reason ? reason : "", VERIFY_REASON_MAX);
    if (!e->reason)
        return KH_ENOMEM;
    e->time = when;
    c->count++;
    return KH_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    const verify_cache_entry *x = a, *y = b;
    int c = strcmp(x->fingerprint, y->fingerprint);
    if (c)
        return c;
    return (x->time < y->time) - (x->time > y->time); /* newest first */
}

void verify_cache_sort(verify_cache *c)
{
    if (c->count < 2)
        return;
    qsort(c->items, c->count, sizeof *c->items, cmp_entry);
    size_t w = 0;
    for (size_t i = 0; i < c->count; i++) {
        if (w && !strcmp(c->items[w - 1].fingerprint, c->items[i].fingerprint)) {
            free(c->items[i].reason);
            continue;
        }
        c->items[w++] = c->items[i];
    }
    c->count = w;
}

const verify_cache_entry *verify_cache_find(const verify_cache *c, const char *fingerprint)
{
    size_t lo = 0, hi = c->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->items[mid].fingerprint, fingerprint);
        if (!r)
            return &c->items[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void verify_cache_clear(verify_cache *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->items[i].reason);
    free(c->items);
    memset(c, 0, sizeof *c);
}

static int read_file(const char *path, char **out, size_t *len, kh_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return KH_OK; /* first run: nothing cached yet */
        return kh_error_set(err, KH_EIO, "%s: %s", path, strerror(errno));
    }
    size_t cap = 1 << 14, n = 0;
    char *buf = malloc(cap);
    int rc = KH_OK;
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= VERIFY_CACHE_MAX_BYTES) {
                rc = kh_error_set(err, KH_ELIMIT, "%s: verify cache over 64 MiB", path);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                rc = kh_error_set(err, KH_EIO, "%s: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!buf)
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    if (rc != KH_OK) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return KH_OK;
}

int verify_cache_load(verify_cache *c, const char *path, time_t now, double ttl,
                      kh_error *err)
{
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, err);
    if (rc != KH_OK || !text)
        return rc;
    report_jvalue *root = NULL;
    char perr[160];
    if (report_json_parse(text, len, &root, perr, sizeof perr) != 0) {
        free(text);
        return kh_error_set(err, KH_EPARSE, "%s:%s", path, perr);
    }
    free(text);
    if (root->type != REPORT_JOBJECT) {
        report_json_free(root);
        return kh_error_set(err, KH_EPARSE, "%s: verify cache is not a JSON object", path);
    }
    for (size_t i = 0; i < root->n && rc == KH_OK; i++) {
        const report_jvalue *e = root->items[i];
        const char *key = root->keys[i];
        if (!is_fingerprint(key, strlen(key)) || e->type != REPORT_JOBJECT) {
            rc = kh_error_set(err, KH_EPARSE, "%s: entry %zu is not fingerprint -> object",
                              path, i + 1);
            break;
        }
        const report_jvalue *st = report_json_get(e, "status");
        const report_jvalue *reason = report_json_get(e, "reason");
        const report_jvalue *t = report_json_get(e, "time");
        if (!st || st->type != REPORT_JSTRING || !t || t->type != REPORT_JNUMBER) {
            rc = kh_error_set(err, KH_EPARSE, "%s: entry %s lacks status or time", path,
                              key);
            break;
        }
        if (!cache_status(st->str, st->len))
            continue; /* unknown outcomes are asked again */
        if (t->number > (double)now + 300 || (double)now - t->number > ttl)
            continue; /* expired, or from a clock far in the future */
        if (verify_cache_put(c, key, st->str,
                             reason && reason->type == REPORT_JSTRING ? reason->str : "",
                             (time_t)t->number) != KH_OK)
            rc = kh_error_set(err, KH_ENOMEM, "out of memory");
    }
    report_json_free(root);
    verify_cache_sort(c);
    return rc;
}

int verify_cache_save(const verify_cache *c, const char *path, kh_error *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int rc = kh_error_set(err, KH_EIO, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    report_json j;
    report_json_init(&j, f, 1);
    report_json_begin_object(&j);
    for (size_t i = 0; i < c->count; i++) {
        const verify_cache_entry *e = &c->items[i];
        report_json_key(&j, e->fingerprint);
        report_json_begin_object(&j);
        report_json_kstr(&j, "status", e->status);
        report_json_kstr(&j, "reason", e->reason);
        report_json_ku64(&j, "time", e->time > 0 ? (uint64_t)e->time : 0);
        report_json_end_object(&j);
    }
    report_json_end_object(&j);
    fputc('\n', f);
    int ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    int rc = KH_OK;
    if (!ok) {
        rc = kh_error_set(err, KH_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}
