/*
 * suppress.c - deciding that a finding is silenced: an inline
 * `keyhog:ignore` comment, the config file's allowlist (paths, exact
 * secrets, secret regexes), or a baseline of known fingerprints.  No I/O:
 * the CLI reads the files and hands the contents over.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources/sources.h"
#include "triage/triage.h"

static int id_char(uint8_t c)
{
    return c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int triage_inline_ignored(const uint8_t *d, size_t len, size_t at, const char *id)
{
    if (at > len)
        return 0;
    size_t ls = at;
    while (ls > 0 && d[ls - 1] != '\n')
        ls--;
    size_t from = ls;
    if (from > 0) { /* the line above counts too */
        from--;
        while (from > 0 && d[from - 1] != '\n')
            from--;
    }
    const uint8_t *nl = memchr(d + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - d) : len;
    static const char tag[] = "keyhog:ignore";
    const size_t tl = sizeof tag - 1;
    size_t idl = strlen(id);
    for (size_t i = from; i + tl <= end; i++) {
        if (d[i] != 'k' || memcmp(d + i, tag, tl) != 0)
            continue;
        size_t j = i + tl;
        if (j >= end || d[j] != '=')
            return 1;
        if (j + 1 + idl <= end && !memcmp(d + j + 1, id, idl) &&
            (j + 1 + idl == end || !id_char(d[j + 1 + idl])))
            return 1;
    }
    return 0;
}

struct triage_allowlist {
    sources_ignore *paths;
    char **secrets;
    size_t secret_count;
    pcre2_code **regexes;
    size_t regex_count;
    pcre2_match_data *md;
};

triage_allowlist *triage_allowlist_new(void)
{
    triage_allowlist *a = calloc(1, sizeof *a);
    if (a && !(a->md = pcre2_match_data_create(1, NULL))) {
        free(a);
        return NULL;
    }
    return a;
}

int triage_allowlist_paths(triage_allowlist *a, const char *globs, size_t len)
{
    sources_ignore_free(a->paths);
    a->paths = NULL;
    return sources_ignore_parse(globs, len, &a->paths) ? -1 : 0;
}

int triage_allowlist_secret(triage_allowlist *a, const char *secret)
{
    char **s = realloc(a->secrets, (a->secret_count + 1) * sizeof *s);
    if (!s)
        return -1;
    a->secrets = s;
    if (!(s[a->secret_count] = strdup(secret)))
        return -1;
    a->secret_count++;
    return 0;
}

int triage_allowlist_regex(triage_allowlist *a, const char *regex, char *err, size_t errlen)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "at offset %zu: %s", (size_t)at, (const char *)msg);
        return -1;
    }
    pcre2_code **r = realloc(a->regexes, (a->regex_count + 1) * sizeof *r);
    if (!r) {
        pcre2_code_free(re);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->regexes = r;
    r[a->regex_count++] = re;
    return 0;
}

int triage_allowlist_match(const triage_allowlist *a, const char *path, const uint8_t *secret,
                           size_t len)
{
    if (!a)
        return 0;
    if (a->paths && path) {
        /* Match the path and each of its parent directories, as git does. */
        const char *p = path;
        while (p[0] == '.' && p[1] == '/')
            p += 2;
        size_t pl = strlen(p);
        if (sources_ignore_match(a->paths, p, pl, 0) == 1)
            return 1;
        for (size_t i = 0; i < pl; i++)
            if (p[i] == '/' && sources_ignore_match(a->paths, p, i, 1) == 1)
                return 1;
    }
    for (size_t i = 0; i < a->secret_count; i++)
        if (strlen(a->secrets[i]) == len && !memcmp(a->secrets[i], secret, len))
            return 1;
    for (size_t i = 0; i < a->regex_count; i++)
        if (pcre2_match(a->regexes[i], secret, len, 0, 0, a->md, NULL) >= 0)
            return 1;
    return 0;
}

void triage_allowlist_free(triage_allowlist *a)
{
    if (!a)
        return;
    sources_ignore_free(a->paths);
    for (size_t i = 0; i < a->secret_count; i++)
        free(a->secrets[i]);
    free(a->secrets);
    for (size_t i = 0; i < a->regex_count; i++)
        pcre2_code_free(a->regexes[i]);
    free(a->regexes);
    pcre2_match_data_free(a->md);
    free(a);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int triage_baseline_add(triage_baseline *b, const char *fingerprint)
{
    char **f = realloc(b->fingerprints, (b->count + 1) * sizeof *f);
    if (!f)
        return -1;
    b->fingerprints = f;
    if (!(f[b->count] = strdup(fingerprint)))
        return -1;
    b->count++;
    b->sorted = 0;
    return 0;
}

int triage_baseline_contains(triage_baseline *b, const char *fingerprint)
{
    if (!b || !b->count)
        return 0;
    if (!b->sorted) {
        qsort(b->fingerprints, b->count, sizeof *b->fingerprints, cmp_str);
        b->sorted = 1;
    }
    return bsearch(&fingerprint, b->fingerprints, b->count, sizeof *b->fingerprints, cmp_str) !=
           NULL;
}

void triage_baseline_clear(triage_baseline *b)
{
    for (size_t i = 0; i < b->count; i++)
        free(b->fingerprints[i]);
    free(b->fingerprints);
    memset(b, 0, sizeof *b);
}
