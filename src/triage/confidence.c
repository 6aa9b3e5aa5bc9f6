/*
 * confidence.c - how much to believe a candidate, as a number in [0, 1].
 *
 * A logistic regression over twenty features of the secret, its line, its
 * path and its detector.  Logistic rather than a hand-tuned score because
 * the weights then come from data (tools/train/gen_data.py makes labelled
 * examples, train.py fits them and writes model_weights.h) and a person
 * can read each weight as "how much this sign moves the odds".  Rather than
 * an MLP because twenty features with known directions do not need one,
 * and a linear model cannot learn a surprising interaction that nobody
 * reviewed.
 *
 * The features are defined in tools/train/features.py, which documents
 * each one; this file is its C twin.  The vectors test
 * (tests/triage/test_confidence.c) replays examples that train.py computed
 * in Python and checks every feature here to 1e-6, so the two cannot drift
 * apart silently.
 *
 * Work is bounded: the line context is at most TRIAGE_CONTEXT_MAX bytes on
 * each side of the secret, and every test on the secret is linear in its
 * length, so a hostile one-line file costs no more than a short one.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "triage/model_weights.h"
#include "triage/triage.h"

#define TRIAGE_CONTEXT_MAX 512

_Static_assert(TRIAGE_MODEL_FEATURES == TRIAGE_FEATURE_COUNT,
               "model_weights.h was trained on a different feature list");

const char *triage_feature_name(size_t i)
{
    return i < TRIAGE_FEATURE_COUNT ? triage_model_feature_names[i] : NULL;
}

double triage_min_confidence_default(void) { return TRIAGE_MODEL_MIN_CONFIDENCE; }

/* ---- byte-string helpers (ASCII case folding, as bytes.lower) --------- */

typedef struct triage_bytes {
    const uint8_t *p;
    size_t n;
} triage_bytes;

static int triage_starts_nocase(triage_bytes s, const char *w)
{
    size_t m = strlen(w);
    return m <= s.n && strncasecmp((const char *)s.p, w, m) == 0;
}

static int triage_ends_nocase(triage_bytes s, const char *w)
{
    size_t m = strlen(w);
    return m <= s.n && strncasecmp((const char *)s.p + s.n - m, w, m) == 0;
}

static int triage_contains_nocase(triage_bytes s, const char *w)
{
    size_t m = strlen(w);
    for (size_t i = 0; m <= s.n && i <= s.n - m; i++)
        if (strncasecmp((const char *)s.p + i, w, m) == 0)
            return 1;
    return 0;
}

static int triage_any(triage_bytes s, const char *const *words, size_t count,
                      int (*test)(triage_bytes, const char *))
{
    for (size_t i = 0; i < count; i++)
        if (test(s, words[i]))
            return 1;
    return 0;
}

#define TRIAGE_ANY(s, words, test) triage_any((s), (words), sizeof(words) / sizeof((words)[0]), (test))

/* strncasecmp on bytes that may hold NUL is still exact here: the words
 * never hold NUL, so a NUL in the text is a mismatch, as in Python. */

/* ---- paths: lowercase, '\' as '/', with a '/' in front ---------------- */

static uint8_t triage_path_at(const char *path, size_t i)
{
    /* Position 0 is the virtual leading '/'. */
    uint8_t c = i == 0 ? '/' : (uint8_t)path[i - 1];
    return c == '\\' ? '/' : (uint8_t)tolower(c);
}

static int triage_path_match(const char *path, size_t at, const char *w, size_t m)
{
    for (size_t k = 0; k < m; k++)
        if (triage_path_at(path, at + k) != (uint8_t)w[k])
            return 0;
    return 1;
}

static int triage_path_contains(const char *path, const char *w)
{
    size_t n = strlen(path) + 1, m = strlen(w);
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (triage_path_match(path, i, w, m))
            return 1;
    return 0;
}

static int triage_path_ends(const char *path, const char *w)
{
    size_t n = strlen(path) + 1, m = strlen(w);
    return m <= n && triage_path_match(path, n - m, w, m);
}

/* ---- word lists (keep in step with features.py) ----------------------- */

static const char *const triage_soft_words[] = {
    "test", "example", "sample", "demo", "dummy", "fake", "mock", "1234", "abcd",
    "xxx", "changeme", "your", "placeholder", "redacted", "secret", "password",
    "token", "here"};
static const char *const triage_assign_words[] = {"bearer", "basic", "token"};
static const char *const triage_key_words[] = {
    "key", "token", "secret", "pass", "pwd", "auth", "bearer", "cred", "api",
    "private", "signing", "access"};
static const char *const triage_env_words[] = {
    "environ", "process.env", "getenv", "env[", "env(", "${", "$env:", "secrets."};
static const char *const triage_hash_words[] = {
    "sha1", "sha256", "sha384", "sha512", "md5", "hash", "digest", "integrity",
    "checksum", "commit", "etag", "uuid", "guid", "nonce", "fingerprint"};
static const char *const triage_comment_marks[] = {"#", "//", "/*", "*", "<!--", "--", ";"};
static const char *const triage_path_test[] = {
    "/test/", "/tests/", "/__tests__/", "/spec/", "/specs/", "/fixtures/", "/fixture/",
    "/testdata/", "/test_", "_test.", ".test.", ".spec.", "_spec.", "mock", "/e2e/",
    "/testing/", "conftest"};
static const char *const triage_path_docs[] = {
    "/docs/", "/doc/", "/examples/", "/example/", "/samples/", "/sample/", "/demo/",
    "readme", "changelog"};
static const char *const triage_path_docs_end[] = {".md", ".rst", ".adoc"};
static const char *const triage_path_vendor[] = {
    "/vendor/", "/node_modules/", "/third_party/", "/third-party/", "/site-packages/",
    "/bower_components/", ".min.js"};
static const char *const triage_path_lock_end[] = {
    ".lock", "-lock.json", "-lock.yaml", "go.sum", "shrinkwrap.json"};

static int triage_path_any(const char *path, const char *const *words, size_t count,
                           int (*test)(const char *, const char *))
{
    for (size_t i = 0; i < count; i++)
        if (test(path, words[i]))
            return 1;
    return 0;
}

#define TRIAGE_PATH_ANY(p, words, test) \
    triage_path_any((p), (words), sizeof(words) / sizeof((words)[0]), (test))

/* ---- the secret itself ------------------------------------------------ */

static int triage_is_hex_byte(uint8_t c) { return isxdigit(c) != 0; }

/* Size of the smallest usual alphabet holding every byte of s. */
static double triage_alphabet(triage_bytes s)
{
    int digits = 1, hex = 1, alnum = 1, b64 = 1;
    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        int d = c >= '0' && c <= '9';
        int a = isalnum(c) != 0;
        digits &= d;
        hex &= triage_is_hex_byte(c);
        alnum &= a;
        b64 &= a || c == '+' || c == '/' || c == '=' || c == '-' || c == '_';
    }
    return digits ? 10 : hex ? 16 : alnum ? 62 : b64 ? 64 : 95;
}

static int triage_starts_with_keyword(const spec_detector *d, triage_bytes s)
{
    for (size_t i = 0; d && i < d->keyword_count; i++) {
        const char *k = d->keywords[i];
        if (k && strlen(k) >= 3 && triage_starts_nocase(s, k))
            return 1;
    }
    return 0;
}

/* triage_is_placeholder, unless the secret stops looking like one once the
 * detector's own keywords are taken out: a Dropbox token's fixed run of ten
 * A's is its format, not a placeholder.  Secrets longer than
 * TRIAGE_STRIP_MAX are judged whole (no allocation here). */
#define TRIAGE_STRIP_MAX 1024
static int triage_placeholder_outside_keywords(const spec_detector *d, triage_bytes s)
{
    if (!triage_is_placeholder(s.p, s.n))
        return 0;
    if (!d || s.n > TRIAGE_STRIP_MAX)
        return 1;
    uint8_t mark[TRIAGE_STRIP_MAX], rest[TRIAGE_STRIP_MAX];
    memset(mark, 0, s.n);
    int any = 0;
    for (size_t k = 0; k < d->keyword_count; k++) {
        const char *w = d->keywords[k];
        size_t wl = w ? strlen(w) : 0;
        if (wl < 3 || wl > s.n)
            continue;
        for (size_t j = 0; j + wl <= s.n; j++) {
            size_t c = 0;
            while (c < wl && tolower(s.p[j + c]) == tolower((unsigned char)w[c]))
                c++;
            if (c == wl) {
                memset(mark + j, 1, wl);
                any = 1;
            }
        }
    }
    if (!any)
        return 1;
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++)
        if (!mark[i])
            rest[n++] = s.p[i];
    return triage_is_placeholder(rest, n);
}

/* The value repeats, in any case, text that stands before it on its line:
 * [DCCP_PASSIVE_CLOSE] = "PASSIVE_CLOSE" is a label table, not a password
 * (the only findings make eval's untouched Linux tree still had).  Byte by
 * byte, so a NUL compares like any byte, as in Python. */
static int triage_echoes_key(triage_bytes before, triage_bytes s)
{
    if (s.n < 6 || s.n > before.n)
        return 0;
    for (size_t i = 0; i + s.n <= before.n; i++) {
        size_t k = 0;
        while (k < s.n && tolower(before.p[i + k]) == tolower(s.p[k]))
            k++;
        if (k == s.n)
            return 1;
    }
    return 0;
}

/* Whether s[i, i+m) overlaps an occurrence (any case) of one of the
 * detector's keywords of >= 3 characters. */
static int triage_in_keyword(const spec_detector *d, triage_bytes s, size_t i, size_t m)
{
    for (size_t k = 0; d && k < d->keyword_count; k++) {
        const char *w = d->keywords[k];
        size_t wl = w ? strlen(w) : 0;
        if (wl < 3 || wl > s.n)
            continue;
        size_t lo = i + 1 > wl ? i + 1 - wl : 0, hi = i + m - 1;
        for (size_t j = lo; j <= hi && j <= s.n - wl; j++)
            if (strncasecmp((const char *)s.p + j, w, wl) == 0)
                return 1;
    }
    return 0;
}

/* A soft word ("test", "example", "xxx", "1234"...) in the secret, written
 * as people write it (lower, UPPER or Capitalized; random text spells
 * "xXx" far more often than "xxx") and not inside the detector's own
 * keyword: "AGE-SECRET-KEY-1..." is not a placeholder for holding SECRET. */
static int triage_soft_placeholder(const spec_detector *d, triage_bytes s)
{
    for (size_t w = 0; w < sizeof triage_soft_words / sizeof triage_soft_words[0]; w++) {
        const char *word = triage_soft_words[w];
        size_t m = strlen(word);
        char forms[3][16];
        for (size_t c = 0; c < m; c++) {
            forms[0][c] = word[c];
            forms[1][c] = (char)toupper((unsigned char)word[c]);
            forms[2][c] = c == 0 ? forms[1][c] : word[c];
        }
        for (size_t i = 0; m <= s.n && i <= s.n - m; i++) {
            for (int f = 0; f < 3; f++) {
                if (memcmp(s.p + i, forms[f], m) == 0) {
                    if (!triage_in_keyword(d, s, i, m))
                        return 1;
                    break;
                }
            }
        }
    }
    return 0;
}

/* A keyword of the detector (>= 3 chars) on the secret's line, outside the
 * secret: "AGORA_APP_CERTIFICATE=<hex>" names its service as surely as
 * "api_key=" names a key, and the regex demanded it. */
static int triage_keyword_near(const spec_detector *d, triage_bytes before, triage_bytes after)
{
    for (size_t i = 0; d && i < d->keyword_count; i++) {
        const char *k = d->keywords[i];
        if (k && strlen(k) >= 3 &&
            (triage_contains_nocase(before, k) || triage_contains_nocase(after, k)))
            return 1;
    }
    return 0;
}

/* ---- features --------------------------------------------------------- */

/* f[0..3]: the path's test, docs, vendor and lock-file features.  Every
 * candidate of a file asks about the same path, and the word lists cost a
 * pass over the path per word: the last answer is kept per thread. */
static void triage_path_features(const char *p, double f[4])
{
    static _Thread_local struct {
        char path[512];
        double f[4];
    } memo;
    if (memo.path[0] && !strcmp(memo.path, p)) {
        memcpy(f, memo.f, sizeof memo.f);
        return;
    }
    f[0] = TRIAGE_PATH_ANY(p, triage_path_test, triage_path_contains);
    f[1] = TRIAGE_PATH_ANY(p, triage_path_docs, triage_path_contains) ||
           TRIAGE_PATH_ANY(p, triage_path_docs_end, triage_path_ends);
    f[2] = TRIAGE_PATH_ANY(p, triage_path_vendor, triage_path_contains);
    f[3] = TRIAGE_PATH_ANY(p, triage_path_lock_end, triage_path_ends);
    size_t n = strlen(p);
    if (n > 0 && n < sizeof memo.path) {
        memcpy(memo.path, p, n + 1);
        memcpy(memo.f, f, sizeof memo.f);
    }
}

void triage_features(const triage_input *in, double f[TRIAGE_FEATURE_COUNT])
{
    for (size_t i = 0; i < TRIAGE_FEATURE_COUNT; i++)
        f[i] = 0.0;
    if (!in)
        return;
    const uint8_t *data = in->data ? in->data : (const uint8_t *)"";
    size_t n = in->data ? in->data_len : 0;
    size_t so = in->secret_offset < n ? in->secret_offset : n;
    size_t sl = in->secret_len < n - so ? in->secret_len : n - so;

    size_t lo = so > TRIAGE_CONTEXT_MAX ? so - TRIAGE_CONTEXT_MAX : 0, start = so;
    while (start > lo && data[start - 1] != '\n')
        start--;
    size_t e = so + sl, hi = n - e > TRIAGE_CONTEXT_MAX ? e + TRIAGE_CONTEXT_MAX : n, end = e;
    while (end < hi && data[end] != '\n')
        end++;
    triage_bytes before = {data + start, so - start}, after = {data + e, end - e};
    triage_bytes s = {data + so, sl};

    f[0] = in->checksum == 1;
    f[1] = in->checksum == -1 || (in->checksum == 0 && triage_checksum_implied(s.p, sl) == -1);
    f[2] = triage_starts_with_keyword(in->detector, s);
    if (sl >= 2) {
        double alphabet = triage_alphabet(s);
        double cap = log2(alphabet < (double)sl ? alphabet : (double)sl);
        double r = triage_entropy(s.p, sl) / cap;
        f[3] = r < 1.0 ? r : 1.0;
    }
    double ll = log2((double)sl + 1.0);
    f[4] = (ll < 8.0 ? ll : 8.0) / 8.0;

    int lower = 0, upper = 0, digit = 0, hex = 1;
    size_t count[256] = {0}, max_count = 0;
    for (size_t i = 0; i < sl; i++) {
        uint8_t c = s.p[i];
        lower |= c >= 'a' && c <= 'z';
        upper |= c >= 'A' && c <= 'Z';
        digit |= c >= '0' && c <= '9';
        hex &= triage_is_hex_byte(c);
        if (++count[c] > max_count)
            max_count = count[c];
    }
    f[5] = (double)(lower + upper + digit) / 3.0;
    f[6] = sl ? (double)max_count / (double)sl : 0.0;
    f[7] = triage_placeholder_outside_keywords(in->detector, s) || triage_echoes_key(before, s);
    f[8] = triage_soft_placeholder(in->detector, s);

    triage_bytes t = before;
    while (t.n > 0 && strchr(" \t\"'`", t.p[t.n - 1]) && t.p[t.n - 1] != '\0')
        t.n--;
    f[9] = (t.n > 0 && (t.p[t.n - 1] == '=' || t.p[t.n - 1] == ':' || t.p[t.n - 1] == '>')) ||
           TRIAGE_ANY(t, triage_assign_words, triage_ends_nocase);
    f[10] = TRIAGE_ANY(before, triage_key_words, triage_contains_nocase) ||
            triage_keyword_near(in->detector, before, after);
    f[11] = TRIAGE_ANY(before, triage_env_words, triage_contains_nocase) ||
            TRIAGE_ANY(after, triage_env_words, triage_contains_nocase);
    f[12] = TRIAGE_ANY(before, triage_hash_words, triage_contains_nocase) ||
            TRIAGE_ANY(after, triage_hash_words, triage_contains_nocase);
    triage_bytes lead = before;
    while (lead.n > 0 && (lead.p[0] == ' ' || lead.p[0] == '\t')) {
        lead.p++;
        lead.n--;
    }
    f[13] = TRIAGE_ANY(lead, triage_comment_marks, triage_starts_nocase);

    if (in->path)
        triage_path_features(in->path, f + 14);
    f[18] = in->decoded != 0;
    f[19] = sl >= 16 && hex;
}

double triage_confidence(const triage_input *in)
{
    double f[TRIAGE_FEATURE_COUNT];
    triage_features(in, f);
    double acc = 0.0;
    for (size_t i = 0; i < TRIAGE_FEATURE_COUNT; i++)
        acc += triage_model_weights[i] * f[i];
    double z = triage_model_bias + acc;
    z = z < -40.0 ? -40.0 : z > 40.0 ? 40.0 : z;
    return 1.0 / (1.0 + exp(-z));
}
