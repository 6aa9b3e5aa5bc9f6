/*
 * spec.c - detector files: TOML -> spec_detector, checked; detector sets.
 *
 * A detector file is read once into a toml_value tree and then walked by
 * small typed getters (spec_get_string, spec_get_int, ...) that all report
 * the same way: "origin:line:col: detector.path: message", where line:col is
 * the value at fault or, for a missing key, the table that should hold it.
 * Entries of arrays of tables are numbered from 1 in paths
 * ("detector.patterns[2].regex"), as a person reading the file counts them.
 *
 * Validation is strict about what would make a detector misbehave (missing
 * keys, wrong types, regexes that do not compile or that match the empty
 * string and would flood findings) and lenient about the rest: unknown keys
 * are warnings, collected in the set, so a file written for a newer keyhog
 * still loads.  Every regex is compiled here with PCRE2 exactly as the
 * engine compiles it (no options), so a bad pattern is reported with its
 * file and detector at load time instead of at scan time.
 *
 * A set is a plain array in load order; lookups by id are linear, which is
 * fine for the few hundred detectors a set holds and keeps merge order
 * stable (a replaced detector keeps its place).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec/spec.h"
#include "spec/toml.h"

#define SPEC_MAX_FILE_BYTES (1u << 20)
#define SPEC_MAX_WARNING_BYTES (256u << 10)
#define SPEC_MAX_DIR_ENTRIES 100000
#define SPEC_MAX_LENGTH (1 << 20) /* credential_shape lengths */
#define SPEC_MAX_WITHIN_LINES 1000

/* ------------------------------------------------------------------ */
/* Status codes, severities, errors                                     */
/* ------------------------------------------------------------------ */

const char *kh_strerror(int code)
{
    switch (code) {
    case KH_OK: return "success";
    case KH_ENOMEM: return "out of memory";
    case KH_EINVAL: return "invalid argument";
    case KH_EPARSE: return "malformed TOML or detector spec";
    case KH_EREGEX: return "a pattern did not compile";
    case KH_EIO: return "a file could not be read";
    case KH_ELIMIT: return "a size, depth or count limit was hit";
    case KH_ESTOPPED: return "stopped by the finding callback";
    case KH_EUNSUPPORTED: return "not supported in this build or on this machine";
    case KH_EINTERNAL: return "internal library failure";
    }
    return "unknown error";
}

static const char *const spec_severity_names[] = {"info", "low", "medium", "high", "critical"};

const char *kh_severity_name(kh_severity s)
{
    if ((int)s < 0 || (int)s > KH_SEVERITY_CRITICAL)
        return "unknown";
    return spec_severity_names[s];
}

int kh_severity_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i <= KH_SEVERITY_CRITICAL; i++)
        if (!strcasecmp(name, spec_severity_names[i]))
            return i;
    return -1;
}

int kh_error_set(kh_error *err, int code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ------------------------------------------------------------------ */
/* Sets                                                                 */
/* ------------------------------------------------------------------ */

kh_detectors *spec_set_new(void)
{
    kh_detectors *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->warnings = calloc(64, 1); /* capacity: see spec_set_warn */
    if (!set->warnings) {
        free(set);
        return NULL;
    }
    return set;
}

void spec_set_warn(kh_detectors *set, const char *fmt, ...)
{
    static const char omitted[] = "keyhog: further warnings omitted\n";
    if (!set || !set->warnings)
        return;
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    const char *add = line;
    if (set->warnings_len + len + 1 + sizeof omitted > SPEC_MAX_WARNING_BYTES) {
        /* A directory of broken files must not grow this without bound. */
        size_t ol = sizeof omitted - 1;
        if (set->warnings_len >= ol && !strcmp(set->warnings + set->warnings_len - ol, omitted))
            return;
        add = omitted;
        len = ol;
    }
    /* The buffer's capacity is implied: the power of two above its length,
     * so a file with 100k unknown keys costs log(n) reallocations, not n. */
    size_t need = set->warnings_len + len + 2, cap = 64;
    while (cap < set->warnings_len + 1)
        cap *= 2;
    if (need > cap) {
        while (cap < need)
            cap *= 2;
        char *w = realloc(set->warnings, cap);
        if (!w)
            return; /* a lost warning is better than a failed load */
        set->warnings = w;
    }
    char *w = set->warnings;
    memcpy(w + set->warnings_len, add, len);
    set->warnings_len += len;
    if (add == line)
        w[set->warnings_len++] = '\n';
    w[set->warnings_len] = 0;
}

static ssize_t spec_set_index(const kh_detectors *set, const char *id)
{
    for (size_t i = 0; i < set->count; i++)
        if (!strcmp(set->items[i]->id, id))
            return (ssize_t)i;
    return -1;
}

/* On success the set owns d; on failure the caller still does. */
int spec_set_add(kh_detectors *set, spec_detector *d, kh_error *err)
{
    if (!set || !d || !d->id)
        return kh_error_set(err, KH_EINVAL, "spec_set_add: NULL argument");
    ssize_t at = spec_set_index(set, d->id);
    if (at >= 0) {
        spec_detector_free(set->items[at]);
        set->items[at] = d;
        return KH_OK;
    }
    if (set->count == set->capacity) {
        size_t cap = set->capacity ? set->capacity * 2 : 16;
        spec_detector **items = realloc(set->items, cap * sizeof *items);
        if (!items)
            return kh_error_set(err, KH_ENOMEM, "out of memory adding detector %s", d->id);
        set->items = items;
        set->capacity = cap;
    }
    set->items[set->count++] = d;
    return KH_OK;
}

void kh_detectors_free(kh_detectors *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++)
        spec_detector_free(set->items[i]);
    free(set->items);
    free(set->warnings);
    free(set);
}

size_t kh_detectors_count(const kh_detectors *set)
{
    return set ? set->count : 0;
}

const kh_detector_info *kh_detectors_get(const kh_detectors *set, size_t i)
{
    if (!set || i >= set->count)
        return NULL;
    return &set->items[i]->info;
}

const kh_detector_info *kh_detectors_find(const kh_detectors *set, const char *id)
{
    if (!set || !id)
        return NULL;
    ssize_t at = spec_set_index(set, id);
    return at < 0 ? NULL : &set->items[at]->info;
}

const char *kh_detectors_warnings(const kh_detectors *set)
{
    return set && set->warnings ? set->warnings : "";
}

int kh_detectors_merge(kh_detectors *base, kh_detectors *add, kh_error *err)
{
    if (!base || !add)
        return kh_error_set(err, KH_EINVAL, "kh_detectors_merge: NULL argument");
    size_t i = 0;
    int rc = KH_OK;
    for (; i < add->count; i++) {
        rc = spec_set_add(base, add->items[i], err);
        if (rc != KH_OK)
            break;
    }
    /* What was not moved stays in add, so nothing leaks or is freed twice. */
    memmove(add->items, add->items + i, (add->count - i) * sizeof *add->items);
    add->count -= i;
    return rc;
}

int kh_detectors_remove(kh_detectors *set, const char *id)
{
    if (!set || !id)
        return KH_EINVAL;
    ssize_t at = spec_set_index(set, id);
    if (at < 0)
        return KH_EINVAL;
    spec_detector_free(set->items[at]);
    memmove(set->items + at, set->items + at + 1,
            (set->count - (size_t)at - 1) * sizeof *set->items);
    set->count--;
    return KH_OK;
}

/* ------------------------------------------------------------------ */
/* Freeing a detector                                                   */
/* ------------------------------------------------------------------ */

static void spec_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void spec_verify_free(spec_verify *v)
{
    if (!v)
        return;
    free(v->method);
    free(v->url);
    free(v->body);
    spec_strv_free(v->allowed_domains, v->allowed_domain_count);
    free(v->auth_type);
    free(v->auth_name);
    free(v->auth_template);
    free(v->auth_username);
    free(v->auth_password);
    free(v->aws_region);
    free(v->aws_service);
    for (size_t i = 0; i < v->header_count; i++) {
        free(v->headers[i].name);
        free(v->headers[i].value);
    }
    free(v->headers);
    free(v->success_status);
    free(v->success_body_contains);
    free(v->success_json_field);
    free(v->success_json_value);
    free(v->revoked_status);
    free(v);
}

void spec_detector_free(spec_detector *d)
{
    if (!d)
        return;
    free(d->id);
    free(d->name);
    free(d->service);
    free(d->description);
    spec_strv_free(d->keywords, d->keyword_count);
    for (size_t i = 0; i < d->pattern_count; i++)
        free(d->patterns[i].regex);
    free(d->patterns);
    for (size_t i = 0; i < d->companion_count; i++) {
        free(d->companions[i].name);
        free(d->companions[i].regex);
    }
    free(d->companions);
    free(d->shape.charset);
    free(d->shape.prefix);
    free(d->validate.checksum);
    spec_verify_free(d->verify);
    for (size_t i = 0; i < d->test_count; i++) {
        free(d->tests[i].text);
        free(d->tests[i].expect);
    }
    free(d->tests);
    free(d->origin);
    free(d);
}

/* ------------------------------------------------------------------ */
/* Typed getters                                                        */
/* ------------------------------------------------------------------ */

typedef struct spec_ctx {
    const char *origin;
    kh_detectors *warn_to;
    kh_error *err;
    const char *id; /* once known, for regex messages */
} spec_ctx;

__attribute__((format(printf, 5, 6))) static int spec_fail(spec_ctx *c, int code,
                                                           const toml_value *at,
                                                           const char *path, const char *fmt,
                                                           ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kh_error_set(c->err, code, "%s:%d:%d: %s: %s", c->origin, at ? at->line : 1,
                        at ? at->col : 1, path, msg);
}

static int spec_oom(spec_ctx *c)
{
    return kh_error_set(c->err, KH_ENOMEM, "%s: out of memory", c->origin);
}

/* "prefix.key" into buf. */
static const char *spec_path(char *buf, size_t len, const char *prefix, const char *key)
{
    snprintf(buf, len, "%s.%s", prefix, key);
    return buf;
}

static int spec_type_error(spec_ctx *c, const toml_value *v, const char *path,
                           const char *expected)
{
    return spec_fail(c, KH_EPARSE, v, path, "expected %s, got %s", expected,
                     toml_type_name(v->type));
}

static void spec_check_keys(spec_ctx *c, const toml_value *table, const char *prefix,
                            const char *const *allowed)
{
    for (size_t i = 0; i < table->u.table.n; i++) {
        const char *key = table->u.table.keys[i];
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = !strcmp(*a, key);
        if (!known) {
            const toml_value *v = table->u.table.values[i];
            spec_set_warn(c->warn_to, "%s:%d:%d: unknown key '%s%s%s' (ignored)", c->origin,
                          v->line, v->col, prefix, *prefix ? "." : "", key);
        }
    }
}

/* A sub-table, or NULL if absent; *bad set when present but not a table. */
static const toml_value *spec_get_table(spec_ctx *c, const toml_value *parent, const char *key,
                                        const char *prefix, int *rc)
{
    const toml_value *v = toml_get(parent, key);
    if (v && v->type != TOML_TABLE) {
        char path[160];
        *rc = spec_type_error(c, v, spec_path(path, sizeof path, prefix, key), "a table");
        return NULL;
    }
    return v;
}

static int spec_missing(spec_ctx *c, const toml_value *table, const char *path)
{
    return spec_fail(c, KH_EPARSE, table, path, "missing required key");
}

/* A string copy into *out; NULL if absent and not required. */
static int spec_get_string(spec_ctx *c, const toml_value *table, const char *key,
                           const char *prefix, int required, char **out)
{
    char path[160];
    spec_path(path, sizeof path, prefix, key);
    const toml_value *v = toml_get(table, key);
    if (!v)
        return required ? spec_missing(c, table, path) : KH_OK;
    if (v->type != TOML_STRING)
        return spec_type_error(c, v, path, "a string");
    if (strlen(v->u.str.ptr) != v->u.str.len)
        return spec_fail(c, KH_EPARSE, v, path, "must not contain NUL characters");
    if (required && v->u.str.len == 0)
        return spec_fail(c, KH_EPARSE, v, path, "must not be empty");
    char *s = strdup(v->u.str.ptr);
    if (!s)
        return spec_oom(c);
    free(*out);
    *out = s;
    return KH_OK;
}

static int spec_get_int(spec_ctx *c, const toml_value *table, const char *key,
                        const char *prefix, int min, int max, int *out)
{
    char path[160];
    spec_path(path, sizeof path, prefix, key);
    const toml_value *v = toml_get(table, key);
    if (!v)
        return KH_OK;
    if (v->type != TOML_INTEGER)
        return spec_type_error(c, v, path, "an integer");
    if (v->u.integer < min || v->u.integer > max)
        return spec_fail(c, KH_EPARSE, v, path, "%lld is out of range [%d, %d]",
                         (long long)v->u.integer, min, max);
    *out = (int)v->u.integer;
    return KH_OK;
}

static int spec_get_bool(spec_ctx *c, const toml_value *table, const char *key,
                         const char *prefix, int *out)
{
    char path[160];
    const toml_value *v = toml_get(table, key);
    if (!v)
        return KH_OK;
    if (v->type != TOML_BOOL)
        return spec_type_error(c, v, spec_path(path, sizeof path, prefix, key), "a boolean");
    *out = v->u.boolean != 0;
    return KH_OK;
}

static int spec_get_string_array(spec_ctx *c, const toml_value *table, const char *key,
                                 const char *prefix, char ***out, size_t *n)
{
    char path[160];
    spec_path(path, sizeof path, prefix, key);
    const toml_value *v = toml_get(table, key);
    if (!v)
        return KH_OK;
    if (v->type != TOML_ARRAY)
        return spec_type_error(c, v, path, "an array of strings");
    char **vec = calloc(v->u.array.n + 1, sizeof *vec);
    if (!vec)
        return spec_oom(c);
    for (size_t i = 0; i < v->u.array.n; i++) {
        const toml_value *s = v->u.array.items[i];
        int rc = KH_OK;
        if (s->type != TOML_STRING)
            rc = spec_fail(c, KH_EPARSE, s, path, "element %zu: expected a string, got %s", i + 1,
                           toml_type_name(s->type));
        else if (s->u.str.len == 0 || strlen(s->u.str.ptr) != s->u.str.len)
            rc = spec_fail(c, KH_EPARSE, s, path, "element %zu: must be a non-empty string "
                                                  "without NUL characters", i + 1);
        else if (!(vec[i] = strdup(s->u.str.ptr)))
            rc = spec_oom(c);
        if (rc != KH_OK) {
            spec_strv_free(vec, i);
            return rc;
        }
    }
    spec_strv_free(*out, *n);
    *out = vec;
    *n = v->u.array.n;
    return KH_OK;
}

/* An HTTP status or an array of them. */
static int spec_get_status(spec_ctx *c, const toml_value *table, const char *prefix,
                           int **out, size_t *n)
{
    char path[160];
    spec_path(path, sizeof path, prefix, "status");
    const toml_value *v = toml_get(table, "status");
    if (!v)
        return KH_OK;
    size_t count = v->type == TOML_ARRAY ? v->u.array.n : 1;
    if (v->type != TOML_ARRAY && v->type != TOML_INTEGER)
        return spec_type_error(c, v, path, "an integer or an array of integers");
    if (count == 0)
        return spec_fail(c, KH_EPARSE, v, path, "must not be empty");
    int *codes = calloc(count, sizeof *codes);
    if (!codes)
        return spec_oom(c);
    for (size_t i = 0; i < count; i++) {
        const toml_value *s = v->type == TOML_ARRAY ? v->u.array.items[i] : v;
        if (s->type != TOML_INTEGER || s->u.integer < 100 || s->u.integer > 599) {
            free(codes);
            return spec_fail(c, KH_EPARSE, s, path, "expected HTTP status codes (100-599)");
        }
        codes[i] = (int)s->u.integer;
    }
    free(*out);
    *out = codes;
    *n = count;
    return KH_OK;
}

/* ------------------------------------------------------------------ */
/* Regexes                                                              */
/* ------------------------------------------------------------------ */

/* Compiles as the engine will; *captures gets the capture group count. */
static int spec_regex(spec_ctx *c, const toml_value *at, const char *path, const char *what,
                      const char *regex, uint32_t *captures)
{
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &offset,
                                   NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", code);
        return spec_fail(c, KH_EREGEX, at, path,
                         "detector %s: %s does not compile: %s at offset %zu", c->id, what,
                         (const char *)msg, (size_t)offset);
    }
    uint32_t caps = 0, minlen = 0;
    int rc = KH_OK;
    if (pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &caps) != 0 ||
        pcre2_pattern_info(re, PCRE2_INFO_MINLENGTH, &minlen) != 0)
        rc = kh_error_set(c->err, KH_EINTERNAL, "%s: pcre2_pattern_info failed", c->origin);
    else if (minlen == 0)
        rc = spec_fail(c, KH_EREGEX, at, path,
                       "detector %s: %s can match the empty string, which would flood "
                       "findings",
                       c->id, what);
    pcre2_code_free(re);
    *captures = caps;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Sections                                                             */
/* ------------------------------------------------------------------ */

static int spec_is_kebab(const char *s)
{
    /* [a-z0-9]+(-[a-z0-9]+)* */
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++) {
        int alnum = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!alnum && !(*p == '-' && p != s && p[-1] != '-' && p[1]))
            return 0;
    }
    return 1;
}

/* An array of tables (or of inline tables); NULL if absent. */
static const toml_value *spec_get_table_array(spec_ctx *c, const toml_value *parent,
                                              const char *key, int *rc)
{
    char path[160];
    spec_path(path, sizeof path, "detector", key);
    const toml_value *v = toml_get(parent, key);
    if (!v)
        return NULL;
    if (v->type != TOML_ARRAY) {
        *rc = spec_fail(c, KH_EPARSE, v, path, "expected [[%s]] tables, got %s", path,
                        toml_type_name(v->type));
        return NULL;
    }
    for (size_t i = 0; i < v->u.array.n; i++) {
        const toml_value *t = v->u.array.items[i];
        if (t->type != TOML_TABLE) {
            *rc = spec_fail(c, KH_EPARSE, t, path, "expected [[%s]] tables, got %s", path,
                            toml_type_name(t->type));
            return NULL;
        }
    }
    return v;
}

static int spec_patterns(spec_ctx *c, const toml_value *det, spec_detector *d)
{
    static const char *const keys[] = {"regex", "group", NULL};
    int rc = KH_OK;
    const toml_value *arr = spec_get_table_array(c, det, "patterns", &rc);
    if (rc != KH_OK)
        return rc;
    if (!arr || arr->u.array.n == 0)
        return spec_fail(c, KH_EPARSE, arr ? arr : det, "detector.patterns",
                         "at least one [[detector.patterns]] is required");
    d->patterns = calloc(arr->u.array.n, sizeof *d->patterns);
    if (!d->patterns)
        return spec_oom(c);
    for (size_t i = 0; i < arr->u.array.n; i++) {
        const toml_value *t = arr->u.array.items[i];
        spec_pattern *p = &d->patterns[d->pattern_count++];
        char prefix[64], path[160], what[32];
        snprintf(prefix, sizeof prefix, "detector.patterns[%zu]", i + 1);
        snprintf(what, sizeof what, "pattern %zu", i + 1);
        spec_check_keys(c, t, prefix, keys);
        if ((rc = spec_get_string(c, t, "regex", prefix, 1, &p->regex)) != KH_OK)
            return rc;
        uint32_t caps;
        spec_path(path, sizeof path, prefix, "regex");
        if ((rc = spec_regex(c, toml_get(t, "regex"), path, what, p->regex, &caps)) != KH_OK)
            return rc;
        if ((rc = spec_get_int(c, t, "group", prefix, 0, 65535, &p->group)) != KH_OK)
            return rc;
        if ((uint32_t)p->group > caps)
            return spec_fail(c, KH_EPARSE, toml_get(t, "group"),
                             spec_path(path, sizeof path, prefix, "group"),
                             "group %d but the regex has %u capture group%s", p->group, caps,
                             caps == 1 ? "" : "s");
    }
    return KH_OK;
}

static int spec_shape_section(spec_ctx *c, const toml_value *det, spec_detector *d)
{
    static const char *const keys[] = {"exact_length", "min_length", "max_length", "charset",
                                       "prefix", NULL};
    /* The names triage_shape_ok knows (base32 and digits included). */
    static const char *const charsets[] = {"hex",       "base62", "base64", "base64url", "alnum",
                                           "printable", "base32", "digits", NULL};
    const char *prefix = "detector.credential_shape";
    int rc = KH_OK;
    const toml_value *t = spec_get_table(c, det, "credential_shape", "detector", &rc);
    if (!t)
        return rc;
    spec_check_keys(c, t, prefix, keys);
    spec_shape *s = &d->shape;
    if ((rc = spec_get_int(c, t, "exact_length", prefix, 1, SPEC_MAX_LENGTH, &s->exact_length)) ||
        (rc = spec_get_int(c, t, "min_length", prefix, 1, SPEC_MAX_LENGTH, &s->min_length)) ||
        (rc = spec_get_int(c, t, "max_length", prefix, 1, SPEC_MAX_LENGTH, &s->max_length)) ||
        (rc = spec_get_string(c, t, "charset", prefix, 0, &s->charset)) ||
        (rc = spec_get_string(c, t, "prefix", prefix, 0, &s->prefix)))
        return rc;
    if (s->min_length && s->max_length && s->min_length > s->max_length)
        return spec_fail(c, KH_EPARSE, toml_get(t, "min_length"), "detector.credential_shape",
                         "min_length %d is greater than max_length %d", s->min_length,
                         s->max_length);
    if (s->charset) {
        int known = 0;
        for (const char *const *cs = charsets; *cs && !known; cs++)
            known = !strcmp(*cs, s->charset);
        if (!known)
            return spec_fail(c, KH_EPARSE, toml_get(t, "charset"),
                             "detector.credential_shape.charset",
                             "'%s' is not one of hex, base62, base64, base64url, alnum, "
                             "printable, base32, digits",
                             s->charset);
    }
    if (s->prefix && !*s->prefix)
        return spec_fail(c, KH_EPARSE, toml_get(t, "prefix"), "detector.credential_shape.prefix",
                         "must not be empty");
    return KH_OK;
}

static int spec_validate_section(spec_ctx *c, const toml_value *det, spec_detector *d)
{
    static const char *const keys[] = {"checksum", "min_entropy", "reject_placeholders", NULL};
    const char *prefix = "detector.validate";
    int rc = KH_OK;
    d->validate.reject_placeholders = 1;
    const toml_value *t = spec_get_table(c, det, "validate", "detector", &rc);
    if (!t)
        return rc;
    spec_check_keys(c, t, prefix, keys);
    if ((rc = spec_get_string(c, t, "checksum", prefix, 0, &d->validate.checksum)) ||
        (rc = spec_get_bool(c, t, "reject_placeholders", prefix,
                            &d->validate.reject_placeholders)))
        return rc;
    const toml_value *e = toml_get(t, "min_entropy");
    if (e) {
        if (e->type != TOML_FLOAT && e->type != TOML_INTEGER)
            return spec_type_error(c, e, "detector.validate.min_entropy", "a number");
        double x = e->type == TOML_FLOAT ? e->u.real : (double)e->u.integer;
        if (!(x >= 0 && x <= 8))
            return spec_fail(c, KH_EPARSE, e, "detector.validate.min_entropy",
                             "must be between 0 and 8 bits per byte");
        d->validate.min_entropy = x;
    }
    return KH_OK;
}

static int spec_companions(spec_ctx *c, const toml_value *det, spec_detector *d)
{
    static const char *const keys[] = {"name", "regex", "group", "within_lines", "required",
                                       NULL};
    int rc = KH_OK;
    const toml_value *arr = spec_get_table_array(c, det, "companions", &rc);
    if (!arr || arr->u.array.n == 0)
        return rc;
    d->companions = calloc(arr->u.array.n, sizeof *d->companions);
    if (!d->companions)
        return spec_oom(c);
    for (size_t i = 0; i < arr->u.array.n; i++) {
        const toml_value *t = arr->u.array.items[i];
        spec_companion *m = &d->companions[d->companion_count++];
        char prefix[64], path[160], what[48];
        snprintf(prefix, sizeof prefix, "detector.companions[%zu]", i + 1);
        spec_check_keys(c, t, prefix, keys);
        m->within_lines = 5;
        if ((rc = spec_get_string(c, t, "name", prefix, 1, &m->name)) ||
            (rc = spec_get_string(c, t, "regex", prefix, 1, &m->regex)))
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(d->companions[j].name, m->name))
                return spec_fail(c, KH_EPARSE, toml_get(t, "name"),
                                 spec_path(path, sizeof path, prefix, "name"),
                                 "duplicate companion name '%s'", m->name);
        snprintf(what, sizeof what, "companion %zu (%s)", i + 1, m->name);
        uint32_t caps;
        spec_path(path, sizeof path, prefix, "regex");
        if ((rc = spec_regex(c, toml_get(t, "regex"), path, what, m->regex, &caps)))
            return rc;
        m->group = caps > 0 ? 1 : 0;
        if ((rc = spec_get_int(c, t, "group", prefix, 0, 65535, &m->group)) ||
            (rc = spec_get_int(c, t, "within_lines", prefix, 0, SPEC_MAX_WITHIN_LINES,
                               &m->within_lines)) ||
            (rc = spec_get_bool(c, t, "required", prefix, &m->required)))
            return rc;
        if ((uint32_t)m->group > caps)
            return spec_fail(c, KH_EPARSE, toml_get(t, "group"),
                             spec_path(path, sizeof path, prefix, "group"),
                             "group %d but the regex has %u capture group%s", m->group, caps,
                             caps == 1 ? "" : "s");
    }
    return KH_OK;
}

static int spec_verify_auth(spec_ctx *c, const toml_value *vt, spec_verify *v)
{
    static const char *const keys[] = {"type", "name", "template", "username", "password",
                                       "region", "service", NULL};
    static const char *const types[] = {"header", "bearer", "basic", "query", "aws-sigv4",
                                        "none", NULL};
    const char *prefix = "detector.verify.auth";
    int rc = KH_OK;
    const toml_value *t = spec_get_table(c, vt, "auth", "detector.verify", &rc);
    if (!t)
        return rc;
    spec_check_keys(c, t, prefix, keys);
    if ((rc = spec_get_string(c, t, "type", prefix, 1, &v->auth_type)) ||
        (rc = spec_get_string(c, t, "name", prefix, 0, &v->auth_name)) ||
        (rc = spec_get_string(c, t, "template", prefix, 0, &v->auth_template)) ||
        (rc = spec_get_string(c, t, "username", prefix, 0, &v->auth_username)) ||
        (rc = spec_get_string(c, t, "password", prefix, 0, &v->auth_password)) ||
        (rc = spec_get_string(c, t, "region", prefix, 0, &v->aws_region)) ||
        (rc = spec_get_string(c, t, "service", prefix, 0, &v->aws_service)))
        return rc;
    int known = 0;
    for (const char *const *ty = types; *ty && !known; ty++)
        known = !strcmp(*ty, v->auth_type);
    if (!known)
        return spec_fail(c, KH_EPARSE, toml_get(t, "type"), "detector.verify.auth.type",
                         "'%s' is not one of header, bearer, basic, query, aws-sigv4, none",
                         v->auth_type);
    if ((!strcmp(v->auth_type, "header") || !strcmp(v->auth_type, "query")) && !v->auth_name)
        return spec_fail(c, KH_EPARSE, t, "detector.verify.auth.name",
                         "required when type is '%s'", v->auth_type);
    return KH_OK;
}

static int spec_verify_section(spec_ctx *c, const toml_value *det, spec_detector *d)
{
    static const char *const keys[] = {"method", "url", "body", "allowed_domains", "auth",
                                       "headers", "success", "revoked", NULL};
    static const char *const success_keys[] = {"status", "body_contains", "json_field",
                                               "json_value", NULL};
    static const char *const revoked_keys[] = {"status", NULL};
    const char *prefix = "detector.verify";
    int rc = KH_OK;
    const toml_value *t = spec_get_table(c, det, "verify", "detector", &rc);
    if (!t)
        return rc;
    spec_check_keys(c, t, prefix, keys);
    spec_verify *v = d->verify = calloc(1, sizeof *v);
    if (!v)
        return spec_oom(c);
    if ((rc = spec_get_string(c, t, "method", prefix, 0, &v->method)) ||
        (rc = spec_get_string(c, t, "url", prefix, 1, &v->url)) ||
        (rc = spec_get_string(c, t, "body", prefix, 0, &v->body)) ||
        (rc = spec_get_string_array(c, t, "allowed_domains", prefix, &v->allowed_domains,
                                    &v->allowed_domain_count)))
        return rc;
    if (!v->method && !(v->method = strdup("GET")))
        return spec_oom(c);
    size_t mlen = strlen(v->method);
    if (mlen == 0 || strspn(v->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != mlen)
            return spec_fail(c, KH_EPARSE, toml_get(t, "method"), "detector.verify.method",
                             "'%s' is not an HTTP method in capitals", v->method);
    if (!v->allowed_domain_count)
        return spec_fail(c, KH_EPARSE, toml_get(t, "allowed_domains") ? toml_get(t, "allowed_domains") : t,
                         "detector.verify.allowed_domains",
                         toml_get(t, "allowed_domains") ? "must not be empty"
                                                        : "missing required key");
    if ((rc = spec_verify_auth(c, t, v)))
        return rc;
    const toml_value *h = spec_get_table(c, t, "headers", prefix, &rc);
    if (rc)
        return rc;
    if (h && h->u.table.n) {
        v->headers = calloc(h->u.table.n, sizeof *v->headers);
        if (!v->headers)
            return spec_oom(c);
        for (size_t i = 0; i < h->u.table.n; i++) {
            spec_header *hd = &v->headers[v->header_count++];
            if (!(hd->name = strdup(h->u.table.keys[i])))
                return spec_oom(c);
            if ((rc = spec_get_string(c, h, hd->name, "detector.verify.headers", 1, &hd->value)))
                return rc;
        }
    }
    const toml_value *s = spec_get_table(c, t, "success", prefix, &rc);
    if (rc)
        return rc;
    if (s) {
        const char *sp = "detector.verify.success";
        spec_check_keys(c, s, sp, success_keys);
        if ((rc = spec_get_status(c, s, sp, &v->success_status, &v->success_status_count)) ||
            (rc = spec_get_string(c, s, "body_contains", sp, 0, &v->success_body_contains)) ||
            (rc = spec_get_string(c, s, "json_field", sp, 0, &v->success_json_field)))
            return rc;
        const toml_value *jv = toml_get(s, "json_value");
        if (jv && (jv->type == TOML_INTEGER || jv->type == TOML_BOOL)) {
            char num[32];
            if (jv->type == TOML_INTEGER)
                snprintf(num, sizeof num, "%lld", (long long)jv->u.integer);
            else
                snprintf(num, sizeof num, "%s", jv->u.boolean ? "true" : "false");
            if (!(v->success_json_value = strdup(num)))
                return spec_oom(c);
        } else if ((rc = spec_get_string(c, s, "json_value", sp, 0, &v->success_json_value))) {
            return rc;
        }
    }
    if (!v->success_status_count) {
        /* A plain 200 is what nearly every service answers a good key with. */
        if (!(v->success_status = malloc(sizeof *v->success_status)))
            return spec_oom(c);
        v->success_status[0] = 200;
        v->success_status_count = 1;
    }
    const toml_value *r = spec_get_table(c, t, "revoked", prefix, &rc);
    if (rc)
        return rc;
    if (r) {
        spec_check_keys(c, r, "detector.verify.revoked", revoked_keys);
        if ((rc = spec_get_status(c, r, "detector.verify.revoked", &v->revoked_status,
                                  &v->revoked_status_count)))
            return rc;
    }
    if (!v->revoked_status_count) {
        if (!(v->revoked_status = malloc(2 * sizeof *v->revoked_status)))
            return spec_oom(c);
        v->revoked_status[0] = 401;
        v->revoked_status[1] = 403;
        v->revoked_status_count = 2;
    }
    return KH_OK;
}

static int spec_tests(spec_ctx *c, const toml_value *det, spec_detector *d)
{
    static const char *const keys[] = {"test_positive", "test_negative", "expect", NULL};
    int rc = KH_OK;
    const toml_value *arr = spec_get_table_array(c, det, "tests", &rc);
    if (!arr || arr->u.array.n == 0)
        return rc;
    /* Each entry gives at most two tests. */
    d->tests = calloc(arr->u.array.n * 2, sizeof *d->tests);
    if (!d->tests)
        return spec_oom(c);
    for (size_t i = 0; i < arr->u.array.n; i++) {
        const toml_value *t = arr->u.array.items[i];
        char prefix[64], path[160];
        snprintf(prefix, sizeof prefix, "detector.tests[%zu]", i + 1);
        spec_check_keys(c, t, prefix, keys);
        char *pos = NULL, *neg = NULL, *expect = NULL;
        if ((rc = spec_get_string(c, t, "test_positive", prefix, 0, &pos)) ||
            (rc = spec_get_string(c, t, "test_negative", prefix, 0, &neg)) ||
            (rc = spec_get_string(c, t, "expect", prefix, 0, &expect)) ||
            (expect && !pos &&
             (rc = spec_fail(c, KH_EPARSE, toml_get(t, "expect"),
                             spec_path(path, sizeof path, prefix, "expect"),
                             "needs a test_positive to apply to"))) ||
            (!pos && !neg &&
             (rc = spec_fail(c, KH_EPARSE, t, prefix,
                             "needs test_positive or test_negative")))) {
            free(pos);
            free(neg);
            free(expect);
            return rc;
        }
        if (pos)
            d->tests[d->test_count++] = (spec_test){.text = pos, .positive = 1, .expect = expect};
        if (neg)
            d->tests[d->test_count++] = (spec_test){.text = neg, .positive = 0};
    }
    return KH_OK;
}

/* ------------------------------------------------------------------ */
/* One detector                                                         */
/* ------------------------------------------------------------------ */

static int spec_detector_fill(spec_ctx *c, const toml_value *root, spec_detector *d)
{
    static const char *const root_keys[] = {"detector", NULL};
    static const char *const keys[] = {"id", "name", "service", "severity", "keywords",
                                       "description", "patterns", "credential_shape",
                                       "validate", "companions", "verify", "tests", NULL};
    spec_check_keys(c, root, "", root_keys);
    const toml_value *det = toml_get(root, "detector");
    if (!det)
        return spec_fail(c, KH_EPARSE, root, "detector", "missing [detector] table");
    if (det->type != TOML_TABLE)
        return spec_type_error(c, det, "detector", "a table");
    spec_check_keys(c, det, "detector", keys);
    int rc;
    if ((rc = spec_get_string(c, det, "id", "detector", 1, &d->id)))
        return rc;
    if (!spec_is_kebab(d->id))
        return spec_fail(c, KH_EPARSE, toml_get(det, "id"), "detector.id",
                         "'%s' is not kebab-case (lower-case letters and digits in words "
                         "joined by single dashes)",
                         d->id);
    c->id = d->id;
    char *severity = NULL;
    if ((rc = spec_get_string(c, det, "name", "detector", 1, &d->name)) ||
        (rc = spec_get_string(c, det, "service", "detector", 1, &d->service)) ||
        (rc = spec_get_string(c, det, "severity", "detector", 1, &severity)))
        return rc;
    int sev = kh_severity_parse(severity);
    free(severity);
    if (sev < 0)
        return spec_fail(c, KH_EPARSE, toml_get(det, "severity"), "detector.severity",
                         "'%s' is not one of critical, high, medium, low, info",
                         toml_get(det, "severity")->u.str.ptr);
    d->severity = (kh_severity)sev;
    if ((rc = spec_get_string(c, det, "description", "detector", 0, &d->description)) ||
        (rc = spec_get_string_array(c, det, "keywords", "detector", &d->keywords,
                                    &d->keyword_count)) ||
        (rc = spec_patterns(c, det, d)) || (rc = spec_shape_section(c, det, d)) ||
        (rc = spec_validate_section(c, det, d)) || (rc = spec_companions(c, det, d)) ||
        (rc = spec_verify_section(c, det, d)) || (rc = spec_tests(c, det, d)))
        return rc;
    if (!(d->origin = strdup(c->origin)))
        return spec_oom(c);
    d->info = (kh_detector_info){
        .id = d->id,
        .name = d->name,
        .service = d->service,
        .severity = d->severity,
        .keywords = (const char *const *)d->keywords,
        .keyword_count = d->keyword_count,
        .pattern_count = d->pattern_count,
        .test_count = d->test_count,
        .has_verify = d->verify != NULL,
        .origin = d->origin,
    };
    return KH_OK;
}

int spec_detector_parse(const char *text, size_t len, const char *origin,
                        kh_detectors *warn_to, spec_detector **out, kh_error *err)
{
    if (!out)
        return kh_error_set(err, KH_EINVAL, "spec_detector_parse: NULL argument");
    *out = NULL;
    if (!text && len)
        return kh_error_set(err, KH_EINVAL, "spec_detector_parse: NULL text");
    spec_ctx c = {.origin = origin ? origin : "<detector>", .warn_to = warn_to, .err = err,
                  .id = "?"};
    toml_value *root = NULL;
    char terr[sizeof err->message];
    if (toml_parse(text ? text : "", len, c.origin, &root, terr, sizeof terr) != 0) {
        int code = strstr(terr, ": out of memory") ? KH_ENOMEM
                   : strstr(terr, ": nesting deeper than ") ? KH_ELIMIT
                                                   : KH_EPARSE;
        return kh_error_set(err, code, "%s", terr);
    }
    spec_detector *d = calloc(1, sizeof *d);
    int rc = d ? spec_detector_fill(&c, root, d) : spec_oom(&c);
    toml_free(root);
    if (rc != KH_OK) {
        spec_detector_free(d);
        return rc;
    }
    *out = d;
    return KH_OK;
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */
/* ------------------------------------------------------------------ */

/* Parses one file's text into the set; `stem` is the name the id should
 * have (file name without .toml), or NULL for no check. */
static int spec_add_text(kh_detectors *set, const char *text, size_t len, const char *origin,
                         const char *stem, size_t stem_len, kh_error *err)
{
    spec_detector *d = NULL;
    int rc = spec_detector_parse(text, len, origin, set, &d, err);
    if (rc != KH_OK)
        return rc;
    if (stem && (strlen(d->id) != stem_len || memcmp(d->id, stem, stem_len)))
        spec_set_warn(set, "%s: detector.id '%s' does not match the file name '%.*s.toml'",
                      origin, d->id, (int)stem_len, stem);
    const kh_detector_info *prev = kh_detectors_find(set, d->id);
    if (prev)
        spec_set_warn(set, "%s: detector '%s' is also defined in %s; this one replaces it",
                      origin, d->id, prev->origin);
    rc = spec_set_add(set, d, err);
    if (rc != KH_OK)
        spec_detector_free(d);
    return rc;
}

static void spec_stem(const char *path, const char **stem, size_t *len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".toml"))
        n -= 5;
    *stem = base;
    *len = n;
}

static int spec_load_file(kh_detectors *set, const char *path, kh_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kh_error_set(err, KH_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kh_error_set(err, KH_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > (off_t)SPEC_MAX_FILE_BYTES) {
        close(fd);
        return kh_error_set(err, KH_ELIMIT, "%s: detector file is larger than %u bytes", path,
                            SPEC_MAX_FILE_BYTES);
    }
    /* Read up to one byte past the limit: the size may change under us. */
    char *buf = malloc(SPEC_MAX_FILE_BYTES + 1);
    if (!buf) {
        close(fd);
        return kh_error_set(err, KH_ENOMEM, "%s: out of memory", path);
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, SPEC_MAX_FILE_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return kh_error_set(err, KH_EIO, "%s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > SPEC_MAX_FILE_BYTES) {
            close(fd);
            free(buf);
            return kh_error_set(err, KH_ELIMIT, "%s: detector file is larger than %u bytes",
                                path, SPEC_MAX_FILE_BYTES);
        }
    }
    close(fd);
    const char *stem;
    size_t stem_len;
    spec_stem(path, &stem, &stem_len);
    int rc = spec_add_text(set, buf, len, path, stem, stem_len, err);
    free(buf);
    return rc;
}

static int spec_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int spec_load_dir(kh_detectors *set, const char *dir, kh_error *err)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return kh_error_set(err, KH_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = KH_OK;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dh))) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".toml"))
            continue;
        if (n == SPEC_MAX_DIR_ENTRIES) {
            rc = kh_error_set(err, KH_ELIMIT, "%s: more than %d detector files", dir,
                              SPEC_MAX_DIR_ENTRIES);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = kh_error_set(err, KH_ENOMEM, "%s: out of memory", dir);
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = kh_error_set(err, KH_ENOMEM, "%s: out of memory", dir);
            break;
        }
        n++;
    }
    if (rc == KH_OK && errno)
        rc = kh_error_set(err, KH_EIO, "%s: %s", dir, strerror(errno));
    closedir(dh);
    if (rc == KH_OK && n)
        qsort(names, n, sizeof *names, spec_name_cmp);
    for (size_t i = 0; i < n && rc == KH_OK; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        if (!path) {
            rc = kh_error_set(err, KH_ENOMEM, "%s: out of memory", dir);
            break;
        }
        int slash = dir[0] && dir[strlen(dir) - 1] == '/';
        snprintf(path, plen, "%s%s%s", dir, slash ? "" : "/", names[i]);
        struct stat st;
        /* Sockets, fifos, subdirectories and dangling links are not detectors. */
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = spec_load_file(set, path, err);
        free(path);
    }
    spec_strv_free(names, n);
    return rc;
}

int kh_detectors_load(const char *dir_or_file, kh_detectors **out, kh_error *err)
{
    if (!out)
        return kh_error_set(err, KH_EINVAL, "kh_detectors_load: NULL argument");
    *out = NULL;
    if (!dir_or_file)
        return kh_error_set(err, KH_EINVAL, "kh_detectors_load: NULL path");
    struct stat st;
    if (stat(dir_or_file, &st) != 0)
        return kh_error_set(err, KH_EIO, "%s: %s", dir_or_file, strerror(errno));
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return kh_error_set(err, KH_EINVAL, "%s: not a file or directory", dir_or_file);
    kh_detectors *set = spec_set_new();
    if (!set)
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    int rc = S_ISDIR(st.st_mode) ? spec_load_dir(set, dir_or_file, err)
                                 : spec_load_file(set, dir_or_file, err);
    if (rc != KH_OK) {
        kh_detectors_free(set);
        return rc;
    }
    *out = set;
    return KH_OK;
}

int kh_detectors_parse(const char *text, size_t len, const char *origin, kh_detectors **out,
                       kh_error *err)
{
    if (!out)
        return kh_error_set(err, KH_EINVAL, "kh_detectors_parse: NULL argument");
    *out = NULL;
    kh_detectors *set = spec_set_new();
    if (!set)
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    int rc = spec_add_text(set, text, len, origin ? origin : "<detector>", NULL, 0, err);
    if (rc != KH_OK) {
        kh_detectors_free(set);
        return rc;
    }
    *out = set;
    return KH_OK;
}

kh_detectors *kh_detectors_embedded(void)
{
    kh_detectors *set = spec_set_new();
    if (!set)
        return NULL;
    for (size_t i = 0; i < spec_embedded_count; i++) {
        const spec_embedded_file *f = &spec_embedded_files[i];
        char origin[256];
        snprintf(origin, sizeof origin, "embedded:%s", f->name);
        const char *stem;
        size_t stem_len;
        spec_stem(f->name, &stem, &stem_len);
        kh_error err;
        /* A broken embedded file is a build bug that the test suite catches;
         * the library itself prints nothing. */
        if (spec_add_text(set, f->text, f->len, origin, stem, stem_len, &err) != KH_OK) {
            kh_detectors_free(set);
            return NULL;
        }
    }
    return set;
}
