/*
 * shape.c - the cheap, certain gates on a secret's own bytes: Shannon
 * entropy, the [detector.credential_shape] gates (length, charset, prefix)
 * and the obvious-placeholder test.
 *
 * The placeholder test is a hard reject (detectors drop the candidate when
 * it says yes), so it is tuned for almost no false rejects on real random
 * tokens: literal marker words are matched only in the spellings people
 * write them in, runs of one character need four x/X/asterisk/dot or eight
 * of anything else, and sequence tests need long runs.  tests/triage checks
 * that 10,000 random tokens of each common alphabet never trip it.  Softer
 * signs ("test", "1234", an env reference nearby) are left to the
 * confidence model, which weighs them instead of vetoing.
 *
 * tools/train/features.py carries a Python twin of triage_is_placeholder and
 * triage_entropy; keep the two in step (the vectors test catches drift).
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "triage/triage.h"

double triage_entropy(const uint8_t *s, size_t len)
{
    if (!s || len == 0)
        return 0.0;
    size_t count[256] = {0};
    for (size_t i = 0; i < len; i++)
        count[s[i]]++;
    double h = 0.0;
    for (int c = 0; c < 256; c++) {
        if (!count[c])
            continue;
        double p = (double)count[c] / (double)len;
        h -= p * log2(p);
    }
    return h;
}

/* ---- charsets --------------------------------------------------------- */

static int triage_cs_hex(uint8_t c) { return isxdigit(c) != 0; }
static int triage_cs_base62(uint8_t c) { return isalnum(c) != 0; }
static int triage_cs_base64(uint8_t c) { return isalnum(c) || c == '+' || c == '/' || c == '='; }
static int triage_cs_base64url(uint8_t c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '=';
}
static int triage_cs_base32(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7') || c == '='; }
static int triage_cs_digits(uint8_t c) { return c >= '0' && c <= '9'; }
static int triage_cs_printable(uint8_t c) { return c >= 0x21 && c <= 0x7e; }

typedef struct triage_charset {
    const char *name;
    int (*member)(uint8_t c);
} triage_charset;

/* isalnum and friends are safe here: the library never calls setlocale,
 * so the "C" locale and its ASCII classes apply. */
static const triage_charset triage_charsets[] = {
    {"hex", triage_cs_hex},           {"base62", triage_cs_base62},
    {"alnum", triage_cs_base62},      {"base64", triage_cs_base64},
    {"base64url", triage_cs_base64url}, {"base32", triage_cs_base32},
    {"digits", triage_cs_digits},     {"printable", triage_cs_printable},
};

static const triage_charset *triage_charset_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof triage_charsets / sizeof triage_charsets[0]; i++)
        if (strcmp(triage_charsets[i].name, name) == 0)
            return &triage_charsets[i];
    return NULL;
}

int triage_charset_known(const char *name) { return triage_charset_find(name) != NULL; }

int triage_shape_ok(const spec_shape *shape, const uint8_t *secret, size_t len)
{
    if (!shape)
        return 1;
    if (!secret && len)
        return 0;
    if (shape->exact_length > 0 && len != (size_t)shape->exact_length)
        return 0;
    if (shape->min_length > 0 && len < (size_t)shape->min_length)
        return 0;
    if (shape->max_length > 0 && len > (size_t)shape->max_length)
        return 0;
    if (shape->prefix) {
        size_t pl = strlen(shape->prefix);
        if (len < pl || memcmp(secret, shape->prefix, pl) != 0)
            return 0;
    }
    if (shape->charset) {
        /* An unknown name fails closed: a typo in a detector file then
         * shows up in that detector's own tests instead of silently
         * letting everything through. */
        const triage_charset *cs = triage_charset_find(shape->charset);
        if (!cs)
            return 0;
        size_t from = shape->prefix ? strlen(shape->prefix) : 0;
        for (size_t i = from; i < len; i++)
            if (!cs->member(secret[i]))
                return 0;
    }
    return 1;
}

/* ---- placeholders ----------------------------------------------------- */

static int triage_has(const uint8_t *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    return m <= n && memmem(s, n, needle, m) != NULL;
}

/* Template markers: `open`, then at least `min` bytes that `inner`
 * accepts, then `close` ("${TOKEN}", "{{ .token }}", "%(key)s").  `inner`
 * never accepts the first byte of `open`, so a scan that fails restarts
 * past it and the whole test stays linear. */
static int triage_has_template(const uint8_t *s, size_t n, const char *open,
                               int (*inner)(uint8_t), size_t min, const char *close)
{
    size_t ol = strlen(open), cl = strlen(close);
    for (size_t i = 0; i + ol <= n; i++) {
        if (memcmp(s + i, open, ol) != 0)
            continue;
        size_t j = i + ol;
        while (j < n && inner(s[j]))
            j++;
        if (j - (i + ol) >= min && j + cl <= n && memcmp(s + j, close, cl) == 0)
            return 1;
    }
    return 0;
}

static int triage_in_angle(uint8_t c)
{
    return isalpha(c) || c == ' ' || c == '_' || c == '-';
}

/* "<your-api-key>", "sk_live_<token>", ".../<team>/<bot>/<secret>": an
 * angle template ends the value, and its '<' starts the value or follows a
 * separator.  A '<' and a later '>' anywhere in the middle are common in
 * random printable passwords (about one in a hundred of 20 characters), so
 * they are not enough on their own. */
static int triage_has_angle_template(const uint8_t *s, size_t n)
{
    if (n < 5 || s[n - 1] != '>')
        return 0;
    size_t j = n - 1;
    while (j > 0 && triage_in_angle(s[j - 1]))
        j--;
    if (j == 0 || s[j - 1] != '<' || (n - 1) - j < 3)
        return 0;
    size_t lt = j - 1;
    return lt == 0 || (s[lt - 1] != '\0' && strchr("_-/: =", s[lt - 1]) != NULL);
}

static int triage_in_braces(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e && c != '{' && c != '}' && c != '$';
}
static int triage_in_percent(uint8_t c) { return isalnum(c) || c == '_' || c == '.'; }

static int triage_equals_nocase(const uint8_t *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp((const char *)s, word, n) == 0;
}

/* Marker words, in the spellings people write them in.  Case-sensitive on
 * purpose: "fAkE" turns up in random base62 about once per few hundred
 * thousand tokens, "fake" or "FAKE" far less often. */
static const char *const triage_marker_words[] = {
    "EXAMPLE", "example", "Example", "SAMPLE", "sample", "Sample",
    "PLACEHOLDER", "placeholder", "Placeholder", "dummy", "DUMMY", "Dummy",
    "fake", "FAKE", "Fake", "your_", "YOUR_", "your-", "YOUR-", "Your_", "Your-",
    "yourkey", "YOURKEY", "YourKey", "INSERT_", "insert_", "insert-", "REPLACE_",
    "replace_", "replace-", "replace_me", "REPLACEME",
};

/* The whole value is one of these (any case). */
static const char *const triage_whole_words[] = {
    "changeme", "change_me", "change-me", "password", "passwd", "secret", "redacted",
    "null", "nil", "undefined", "none", "true", "false", "todo", "tbd", "xxx",
    "test", "testing", "admin", "letmein", "qwerty", "foobar", "foo", "bar", "token",
    "apikey", "api_key", "api-key", "mysecret", "my_secret", "secretkey", "secret_key",
    "default", "empty", "unset", "n/a", "hidden", "removed", "masked", "example",
};

/* Longest run of one character, and the count of the most common one. */
static void triage_runs(const uint8_t *s, size_t n, size_t *max_run_xdot, size_t *max_run,
                        size_t *max_count, size_t *distinct)
{
    size_t count[256] = {0};
    size_t run = 0;
    *max_run_xdot = *max_run = *max_count = *distinct = 0;
    for (size_t i = 0; i < n; i++) {
        run = (i > 0 && s[i] == s[i - 1]) ? run + 1 : 1;
        if (run > *max_run)
            *max_run = run;
        if ((s[i] == 'x' || s[i] == 'X' || s[i] == '*' || s[i] == '.') && run > *max_run_xdot)
            *max_run_xdot = run;
        if (count[s[i]]++ == 0)
            (*distinct)++;
        if (count[s[i]] > *max_count)
            *max_count = count[s[i]];
    }
}

/* Longest run of alphanumerics each one more (or each one less) than the
 * last: "abcdefgh", "12345678", "987654".  "0123456789" counts as one run
 * although ASCII '9' + 1 is ':', and "1234567890" likewise wraps.  The
 * separators of grouped formats ('-', '_', '.') are looked through, so
 * "A3-123456-789ABC" is the run "123456789" (make eval's sequential
 * decoys in dashed key formats passed as random without this). */
static int triage_is_group_sep(uint8_t c) { return c == '-' || c == '_' || c == '.'; }

static size_t triage_sequence_run(const uint8_t *s, size_t n)
{
    size_t best = n ? 1 : 0, up = 1, down = 1;
    size_t prev = 0;
    while (prev < n && triage_is_group_sep(s[prev]))
        prev++;
    for (size_t i = prev + 1; i < n; i++) {
        if (triage_is_group_sep(s[i]))
            continue;
        uint8_t a = s[prev], b = s[i];
        prev = i;
        int alnum = isalnum(a) && isalnum(b);
        int step_up = alnum && (b == a + 1 || (a == '9' && b == '0'));
        int step_down = alnum && (a == b + 1 || (a == '0' && b == '9'));
        up = step_up ? up + 1 : 1;
        down = step_down ? down + 1 : 1;
        if (up > best)
            best = up;
        if (down > best)
            best = down;
    }
    return best;
}

/* A value whose whole body is "$NAME" / "$name": a variable, not a secret. */
static int triage_is_variable(const uint8_t *s, size_t n)
{
    if (n < 2 || s[0] != '$' || !(isalpha(s[1]) || s[1] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum(s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

int triage_is_placeholder(const uint8_t *s, size_t n)
{
    if (!s || n == 0)
        return 1;
    for (size_t i = 0; i < sizeof triage_whole_words / sizeof triage_whole_words[0]; i++)
        if (triage_equals_nocase(s, n, triage_whole_words[i]))
            return 1;
    for (size_t i = 0; i < sizeof triage_marker_words / sizeof triage_marker_words[0]; i++)
        if (triage_has(s, n, triage_marker_words[i]))
            return 1;
    if (triage_has_angle_template(s, n) ||
        triage_has_template(s, n, "${", triage_in_braces, 1, "}") ||
        triage_has_template(s, n, "{{", triage_in_braces, 1, "}}") ||
        triage_has_template(s, n, "%(", triage_in_percent, 1, ")s") ||
        triage_is_variable(s, n))
        return 1;

    size_t run_xdot, run, max_count, distinct;
    triage_runs(s, n, &run_xdot, &run, &max_count, &distinct);
    if (run_xdot >= 4 || run >= 8)
        return 1;
    if (max_count * 10 >= n * 6) /* one character is >= 60% of the value */
        return 1;
    if (n >= 8 && distinct <= 3) /* "abababab", "00110011" */
        return 1;
    size_t seq = triage_sequence_run(s, n);
    if (seq >= 8 || (seq >= 4 && seq * 2 >= n))
        return 1;
    return 0;
}
