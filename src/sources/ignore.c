/*
 * ignore.c - gitignore-syntax rules: parsing one ignore file and matching a
 * path against it.
 *
 * The walker keeps one parsed file per directory on its stack and asks the
 * deepest first, so this file only has to answer "what does the last
 * matching rule of THIS file say about this path".  Paths are matched
 * relative to the directory holding the file.
 *
 * Shape of the matcher.  A rule containing a '/' (other than a trailing one)
 * is anchored: it is split into '/'-separated segments, each matching exactly
 * one path component, with "**" segments matching any number of components.
 * A rule without a slash matches the last component only.  Because every
 * segment consumes exactly one component and every non-star glob atom
 * consumes exactly one byte, both levels can use the greedy "remember the
 * last star and retry from one further" algorithm, which is O(pattern x text)
 * with no recursion: a hostile .gitignore cannot make matching exponential.
 *
 * Rules are kept as offsets into one private copy of the file's text, so a
 * parsed file is three allocations whatever its size.
 */
#include "sources/sources.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define IGNORE_NONE SIZE_MAX

typedef struct ignore_segment {
    size_t off, len;
    int starstar; /* the whole segment is "**": zero or more components */
} ignore_segment;

typedef struct ignore_rule {
    size_t seg_first, seg_count;
    unsigned negate : 1;   /* "!pattern" */
    unsigned dir_only : 1; /* "pattern/" */
    unsigned anchored : 1; /* matched against the whole relative path */
} ignore_rule;

struct sources_ignore {
    char *text;
    ignore_rule *rules;
    size_t nrules;
    ignore_segment *segs;
    size_t nsegs;
};

/* POSIX bracket classes, as git's wildmatch accepts them.  Returns -1 for
 * an unknown name so the caller can treat the bracket as malformed. */
static int ignore_posix_class(const char *name, size_t n, unsigned char c)
{
    int digit = c >= '0' && c <= '9';
    int lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
#define IGNORE_IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
    if (IGNORE_IS("alnum")) return digit || lower || upper;
    if (IGNORE_IS("alpha")) return lower || upper;
    if (IGNORE_IS("digit")) return digit;
    if (IGNORE_IS("xdigit")) return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (IGNORE_IS("lower")) return lower;
    if (IGNORE_IS("upper")) return upper;
    if (IGNORE_IS("space")) return c == ' ' || (c >= '\t' && c <= '\r');
    if (IGNORE_IS("blank")) return c == ' ' || c == '\t';
    if (IGNORE_IS("cntrl")) return c < 32 || c == 127;
    if (IGNORE_IS("print")) return c >= 32 && c < 127;
    if (IGNORE_IS("graph")) return c > 32 && c < 127;
    if (IGNORE_IS("punct")) return c > 32 && c < 127 && !(digit || lower || upper);
#undef IGNORE_IS
    return -1;
}

/* Matches byte c against the bracket expression starting at p[i] == '['.
 * Returns 1/0 and sets *next past the ']', or -1 when the bracket is not
 * closed (the caller then takes '[' literally, as fnmatch does). */
static int ignore_class(const char *p, size_t pn, size_t i, unsigned char c, size_t *next)
{
    int negate = 0, hit = 0, first = 1;
    i++;
    if (i < pn && (p[i] == '!' || p[i] == '^')) {
        negate = 1;
        i++;
    }
    for (;;) {
        if (i >= pn) return -1;
        unsigned char lo = (unsigned char)p[i];
        if (lo == ']' && !first) break;
        first = 0;
        if (lo == '[' && i + 1 < pn && p[i + 1] == ':') {
            const char *end = NULL;
            for (size_t k = i + 2; k + 1 < pn; k++) {
                if (p[k] == ':' && p[k + 1] == ']') {
                    end = p + k;
                    break;
                }
            }
            if (end) {
                int r = ignore_posix_class(p + i + 2, (size_t)(end - (p + i + 2)), c);
                if (r < 0) return -1;
                hit |= r;
                i = (size_t)(end - p) + 2;
                continue;
            }
        }
        if (lo == '\\') {
            if (i + 1 >= pn) return -1;
            lo = (unsigned char)p[++i];
        }
        i++;
        if (i + 1 < pn && p[i] == '-' && p[i + 1] != ']') {
            size_t j = i + 1;
            unsigned char hi = (unsigned char)p[j];
            if (hi == '\\') {
                if (j + 1 >= pn) return -1;
                hi = (unsigned char)p[++j];
            }
            i = j + 1;
            if (lo <= c && c <= hi) hit = 1;
        } else if (c == lo) {
            hit = 1;
        }
    }
    *next = i + 1;
    return hit ^ negate;
}

/* One glob atom that consumes exactly one byte: literal, '\x', '?', '[..]'. */
static int ignore_atom(const char *p, size_t pn, size_t pi, unsigned char c, size_t *next)
{
    switch (p[pi]) {
    case '?':
        *next = pi + 1;
        return 1;
    case '\\': /* parse made sure a backslash is never last */
        *next = pi + 2;
        return (unsigned char)p[pi + 1] == c;
    case '[': {
        int r = ignore_class(p, pn, pi, c, next);
        if (r >= 0) return r;
        *next = pi + 1;
        return c == '[';
    }
    default:
        *next = pi + 1;
        return (unsigned char)p[pi] == c;
    }
}

/* Glob within one path component: '*' never has a '/' to cross here. */
static int ignore_glob(const char *p, size_t pn, const char *t, size_t tn)
{
    size_t pi = 0, ti = 0, star_pi = IGNORE_NONE, star_ti = 0;
    while (ti < tn) {
        if (pi < pn && p[pi] == '*') {
            while (pi < pn && p[pi] == '*') pi++;
            star_pi = pi;
            star_ti = ti;
            continue;
        }
        size_t next;
        if (pi < pn && ignore_atom(p, pn, pi, (unsigned char)t[ti], &next)) {
            pi = next;
            ti++;
            continue;
        }
        if (star_pi == IGNORE_NONE) return 0;
        pi = star_pi;
        ti = ++star_ti;
    }
    while (pi < pn && p[pi] == '*') pi++;
    return pi == pn;
}

static size_t ignore_component_end(const char *s, size_t n, size_t from)
{
    const char *slash = memchr(s + from, '/', n - from);
    return slash ? (size_t)(slash - s) : n;
}

static size_t ignore_component_next(size_t end, size_t n)
{
    return end < n ? end + 1 : n;
}

/* Segments against components; a "**" segment plays the role '*' plays in
 * ignore_glob, one level up. */
static int ignore_path(const sources_ignore *ig, const ignore_rule *r, const char *s, size_t n)
{
    const ignore_segment *seg = ig->segs + r->seg_first;
    size_t nseg = r->seg_count;
    size_t si = 0, ci = 0, star_si = IGNORE_NONE, star_ci = 0;
    while (ci < n) {
        size_t ce = ignore_component_end(s, n, ci);
        if (si < nseg && seg[si].starstar) {
            star_si = si++;
            star_ci = ci;
            continue;
        }
        if (si < nseg && ignore_glob(ig->text + seg[si].off, seg[si].len, s + ci, ce - ci)) {
            si++;
            ci = ignore_component_next(ce, n);
            continue;
        }
        if (star_si == IGNORE_NONE) return 0;
        si = star_si + 1;
        star_ci = ignore_component_next(ignore_component_end(s, n, star_ci), n);
        ci = star_ci;
    }
    while (si < nseg && seg[si].starstar) si++;
    return si == nseg;
}

int sources_ignore_match(const sources_ignore *ig, const char *relpath, size_t len, int is_dir)
{
    if (!ig || len == 0) return 0;
    const char *slash = memrchr(relpath, '/', len);
    const char *base = slash ? slash + 1 : relpath;
    size_t base_len = len - (size_t)(base - relpath);
    for (size_t k = ig->nrules; k-- > 0;) {
        const ignore_rule *r = &ig->rules[k];
        if (r->dir_only && !is_dir) continue;
        int hit;
        if (r->anchored) {
            hit = ignore_path(ig, r, relpath, len);
        } else {
            const ignore_segment *seg = &ig->segs[r->seg_first];
            hit = ignore_glob(ig->text + seg->off, seg->len, base, base_len);
        }
        if (hit) return r->negate ? -1 : 1;
    }
    return 0;
}

/* Length of the line once trailing spaces are dropped, keeping a space
 * that a backslash escapes ("foo\ " names "foo "). */
static size_t ignore_trim(const char *s, size_t n)
{
    size_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            end = ++i + 1;
        } else if (s[i] != ' ') {
            end = i + 1;
        }
    }
    return end;
}

static int ignore_grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, ncap * size);
    if (!p) return ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Adds one line (start s, n bytes, inside ig->text).  Lines that cannot be
 * patterns are dropped silently, as git does. */
static int ignore_add_line(sources_ignore *ig, size_t *rcap, size_t *scap, size_t s, size_t n)
{
    const char *t = ig->text;
    if (n > 0 && t[s + n - 1] == '\r') n--;
    n = ignore_trim(t + s, n);
    if (n == 0 || t[s] == '#') return 0;

    ignore_rule r = {0};
    if (t[s] == '!') {
        r.negate = 1;
        s++;
        n--;
    }
    if (n > 0 && t[s + n - 1] == '/') {
        r.dir_only = 1;
        n--;
    }
    /* A backslash must escape something, and a '/' other than a trailing
     * one anchors the rule to this directory. */
    for (size_t i = 0; i < n; i++) {
        if (t[s + i] == '\\') {
            if (i + 1 == n) return 0;
            i++;
        } else if (t[s + i] == '/') {
            r.anchored = 1;
        }
    }
    if (r.anchored && n > 0 && t[s] == '/') {
        s++;
        n--;
    }
    if (n == 0) return 0;

    r.seg_first = ig->nsegs;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        if (r.anchored) {
            while (j < n && t[s + j] != '/') j += (t[s + j] == '\\') ? 2 : 1;
        } else {
            j = n;
        }
        if (j > n) j = n;
        if (j > i) {
            int starstar = r.anchored && j - i == 2 && t[s + i] == '*' && t[s + i + 1] == '*';
            // A trailing "**" segment needs at least one component ("abc"
            // followed by "/" and "**" matches inside abc, not abc itself):
            // emit "*" then "**".
            int trailing = starstar && j == n;
            if (ignore_grow((void **)&ig->segs, scap, ig->nsegs + 2, sizeof *ig->segs))
                return ENOMEM;
            if (trailing) ig->segs[ig->nsegs++] = (ignore_segment){s + i, 1, 0};
            ig->segs[ig->nsegs++] = (ignore_segment){s + i, j - i, starstar};
        }
        i = j + 1;
    }
    r.seg_count = ig->nsegs - r.seg_first;
    if (r.seg_count == 0) return 0;
    if (ignore_grow((void **)&ig->rules, rcap, ig->nrules + 1, sizeof *ig->rules)) return ENOMEM;
    ig->rules[ig->nrules++] = r;
    return 0;
}

int sources_ignore_parse(const char *text, size_t len, sources_ignore **out)
{
    *out = NULL;
    sources_ignore *ig = calloc(1, sizeof *ig);
    if (!ig) return ENOMEM;
    ig->text = malloc(len + 1);
    if (!ig->text) {
        free(ig);
        return ENOMEM;
    }
    if (len) memcpy(ig->text, text, len);
    ig->text[len] = '\0';

    size_t pos = 0, rcap = 0, scap = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    while (pos < len) {
        const char *nl = memchr(ig->text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - ig->text) : len;
        if (ignore_add_line(ig, &rcap, &scap, pos, end - pos)) {
            sources_ignore_free(ig);
            return ENOMEM;
        }
        pos = end + 1;
    }
    *out = ig;
    return 0;
}

void sources_ignore_free(sources_ignore *ig)
{
    if (!ig) return;
    free(ig->text);
    free(ig->rules);
    free(ig->segs);
    free(ig);
}
