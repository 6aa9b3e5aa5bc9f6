/*
 * checksum.c - named validators that a detector asks for with
 * [detector.validate] checksum = "<name>".
 *
 * A validator answers one question about a candidate secret: does it carry
 * the internal structure that only a real token of that service has (a
 * CRC, a Luhn digit, a decodable header)?  A validator that passes turns a
 * lookalike into a near-certain finding; one that fails usually means test
 * data or a mangled copy.  The names are a contract with the detector files,
 * so they live in one table (triage_validators) and spec validation asks
 * triage_checksum_known() at load time.
 *
 * Every validator works on untrusted bytes of any length in O(len) time and
 * without allocating: base64 payloads are decoded as a stream and inspected
 * on the fly, so a megabyte "JWT" costs a megabyte of reading and nothing
 * else.
 */
#include <stdint.h>
#include <string.h>

#include "triage/triage.h"

/* ---- small character classes ------------------------------------------ */

static int triage_is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int triage_is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static int triage_is_lower(uint8_t c) { return c >= 'a' && c <= 'z'; }
static int triage_is_base62(uint8_t c)
{
    return triage_is_digit(c) || triage_is_upper(c) || triage_is_lower(c);
}

static int triage_all(const uint8_t *s, size_t n, int (*pred)(uint8_t))
{
    for (size_t i = 0; i < n; i++)
        if (!pred(s[i]))
            return 0;
    return 1;
}

/* ---- github-crc32 / npm-crc32 ---------------------------------------- */

/* zlib's CRC-32 (reflected 0xEDB88320).  Bitwise rather than a table: it
 * only ever runs over 30 bytes, and a table would be global state. */
static uint32_t triage_crc32(const uint8_t *s, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= s[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

static const char triage_base62_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* 36 chars of payload: 30 random + 6 base62 digits of CRC32(random). */
static int triage_crc32_body(const uint8_t *b)
{
    if (!triage_all(b, 36, triage_is_base62))
        return 0;
    uint32_t crc = triage_crc32(b, 30);
    char want[6];
    for (int i = 5; i >= 0; i--) {
        want[i] = triage_base62_alphabet[crc % 62u];
        crc /= 62u;
    }
    return memcmp(want, b + 30, 6) == 0;
}

/* "<prefix>_<36>" for any prefix (ghp, gho, ghu, ghs, ghr, npm), or the
 * bare 36 characters when a pattern captured only the payload. */
static int triage_v_github_crc32(const uint8_t *s, size_t n)
{
    if (n == 36)
        return triage_crc32_body(s);
    if (n < 38 || s[n - 37] != '_')
        return 0;
    return triage_crc32_body(s + n - 36);
}

/* ---- github-fine-grained --------------------------------------------- */

/* github_pat_ + 22 base62 + '_' + 59 base62.  No public checksum, so only
 * the layout is checked; that still rejects truncated or padded copies. */
static int triage_v_github_fine_grained(const uint8_t *s, size_t n)
{
    static const char prefix[] = "github_pat_";
    const size_t plen = sizeof prefix - 1;
    if (n == plen + 82 && memcmp(s, prefix, plen) == 0) {
        s += plen;
        n -= plen;
    }
    if (n != 82 || s[22] != '_')
        return 0;
    return triage_all(s, 22, triage_is_base62) &&
           triage_all(s + 23, 59, triage_is_base62);
}

/* ---- streaming base64 ------------------------------------------------- */

/* Value of one base64 character, or -1.  `url` selects -_ over +/. */
static int triage_b64_value(uint8_t c, int url)
{
    if (triage_is_upper(c))
        return c - 'A';
    if (triage_is_lower(c))
        return c - 'a' + 26;
    if (triage_is_digit(c))
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

typedef void (*triage_byte_fn)(uint8_t byte, void *ctx);

/* Decodes base64 (or base64url) and hands each byte to fn.  Trailing '='
 * padding is accepted but not required, since JWT and PyPI drop it.
 * Returns the decoded length, or -1 if the text is not base64. */
static long triage_b64_stream(const uint8_t *s, size_t n, int url, triage_byte_fn fn,
                              void *ctx)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    long out = 0;
    for (size_t i = 0; i < n; i++) {
        int v = triage_b64_value(s[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            fn((uint8_t)(acc >> bits), ctx);
            acc &= (1u << bits) - 1u;
            out++;
        }
    }
    return out;
}

/* ---- jwt -------------------------------------------------------------- */

/* What the light JSON check keeps while bytes stream past. */
typedef struct triage_json_scan {
    uint8_t first, last; /* first and last non-blank byte, 0 if none */
    int printable;       /* no control bytes other than blanks */
    uint8_t tail[5];     /* the last five bytes, to spot "alg" */
    size_t seen;
    int has_alg;
} triage_json_scan;

static int triage_is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void triage_json_byte(uint8_t c, void *ctx)
{
    triage_json_scan *j = ctx;
    if ((c < 0x20 && !triage_is_blank(c)) || c == 0x7f)
        j->printable = 0;
    if (!triage_is_blank(c)) {
        if (!j->first)
            j->first = c;
        j->last = c;
    }
    memmove(j->tail, j->tail + 1, 4);
    j->tail[4] = c;
    if (++j->seen >= 5 && memcmp(j->tail, "\"alg\"", 5) == 0)
        j->has_alg = 1;
}

static int triage_json_part(const uint8_t *s, size_t n, int need_alg)
{
    triage_json_scan j = {.printable = 1};
    if (n == 0 || triage_b64_stream(s, n, 1, triage_json_byte, &j) < 2)
        return 0;
    return j.printable && j.first == '{' && j.last == '}' && (!need_alg || j.has_alg);
}

/* header.payload.signature, each base64url; the signature may be empty
 * (alg "none") but must still be base64url. */
static int triage_v_jwt(const uint8_t *s, size_t n)
{
    const uint8_t *d1 = memchr(s, '.', n);
    if (!d1)
        return 0;
    size_t off1 = (size_t)(d1 - s);
    const uint8_t *d2 = memchr(d1 + 1, '.', n - off1 - 1);
    if (!d2)
        return 0;
    size_t off2 = (size_t)(d2 - s);
    const uint8_t *sig = d2 + 1;
    size_t sig_len = n - off2 - 1;
    if (memchr(sig, '.', sig_len))
        return 0;
    if (!triage_json_part(s, off1, 1) || !triage_json_part(d1 + 1, off2 - off1 - 1, 0))
        return 0;
    for (size_t i = 0; i < sig_len; i++)
        if (triage_b64_value(sig[i], 1) < 0 && sig[i] != '=')
            return 0;
    return 1;
}

/* ---- pypi-macaroon ---------------------------------------------------- */

/* Keeps the first bytes of a decoded macaroon; the rest is only checked
 * for being valid base64url. */
typedef struct triage_head {
    uint8_t b[24];
    size_t n;
} triage_head;

static void triage_head_byte(uint8_t c, void *ctx)
{
    triage_head *h = ctx;
    if (h->n < sizeof h->b)
        h->b[h->n] = c;
    h->n++;
}

/* A v2 macaroon starts with version byte 2, then the location field
 * (type 1, one-byte varint length, bytes).  PyPI issues tokens whose
 * location is "pypi.org" or "test.pypi.org". */
static int triage_v_pypi_macaroon(const uint8_t *s, size_t n)
{
    if (n < 5 || memcmp(s, "pypi-", 5) != 0)
        return 0;
    triage_head h = {0};
    if (triage_b64_stream(s + 5, n - 5, 1, triage_head_byte, &h) < 16)
        return 0;
    if (h.b[0] != 2 || h.b[1] != 1)
        return 0;
    size_t loc = h.b[2];
    if ((loc == 8 && memcmp(h.b + 3, "pypi.org", 8) == 0) ||
        (loc == 13 && memcmp(h.b + 3, "test.pypi.org", 13) == 0))
        return h.n > 3 + loc;
    return 0;
}

/* ---- luhn ------------------------------------------------------------- */

/* Digits with optional space or dash separators, as card numbers are
 * written; at least 12 digits so short numbers do not pass by chance. */
static int triage_v_luhn(const uint8_t *s, size_t n)
{
    unsigned sum = 0, digits = 0;
    for (size_t i = n; i-- > 0;) {
        uint8_t c = s[i];
        if (c == ' ' || c == '-')
            continue;
        if (!triage_is_digit(c))
            return 0;
        unsigned d = (unsigned)(c - '0');
        if (digits % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        digits++;
    }
    return digits >= 12 && digits <= 19 && sum % 10 == 0;
}

/* ---- slack-webhook ---------------------------------------------------- */

static int triage_upper_or_digit(uint8_t c) { return triage_is_upper(c) || triage_is_digit(c); }

/* One path part: a letter, then [A-Z0-9] (ids) or base62 (the secret). */
static int triage_part(const uint8_t *s, size_t n, uint8_t lead, size_t lo, size_t hi,
                       int (*pred)(uint8_t))
{
    if (n < lo || n > hi)
        return 0;
    if (lead && s[0] != lead)
        return 0;
    return triage_all(s + (lead ? 1 : 0), n - (lead ? 1 : 0), pred);
}

/* [https://]hooks.slack.com/services/T<id>/B<id>/<secret>, or just the
 * T.../B.../secret tail when the pattern captured that. */
static int triage_v_slack_webhook(const uint8_t *s, size_t n)
{
    static const char *const heads[] = {"https://hooks.slack.com/services/",
                                        "http://hooks.slack.com/services/",
                                        "hooks.slack.com/services/"};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        size_t h = strlen(heads[i]);
        if (n >= h && memcmp(s, heads[i], h) == 0) {
            s += h;
            n -= h;
            break;
        }
    }
    const uint8_t *p[3];
    size_t len[3];
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (k == 3)
                return 0;
            p[k] = s + start;
            len[k++] = i - start;
            start = i + 1;
        }
    }
    return k == 3 && triage_part(p[0], len[0], 'T', 9, 13, triage_upper_or_digit) &&
           triage_part(p[1], len[1], 'B', 9, 13, triage_upper_or_digit) &&
           triage_part(p[2], len[2], 0, 20, 32, triage_is_base62);
}

/* ---- aws-key-id ------------------------------------------------------- */

static int triage_is_base32(uint8_t c) { return triage_is_upper(c) || (c >= '2' && c <= '7'); }

static int triage_v_aws_key_id(const uint8_t *s, size_t n)
{
    static const char *const prefixes[] = {"AKIA", "ASIA", "ABIA", "ACCA", "AGPA",
                                           "AIDA", "AIPA", "ANPA", "ANVA", "APKA",
                                           "AROA", "ASCA"};
    if (n != 20)
        return 0;
    int ok = memcmp(s, "A3T", 3) == 0 && triage_upper_or_digit(s[3]);
    for (size_t i = 0; !ok && i < sizeof prefixes / sizeof prefixes[0]; i++)
        ok = memcmp(s, prefixes[i], 4) == 0;
    return ok && triage_all(s + 4, 16, triage_is_base32);
}

/* ---- uuid ------------------------------------------------------------- */

static int triage_is_hex(uint8_t c)
{
    return triage_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 8-4-4-4-12 hex with an RFC 4122/9562 variant nibble (8, 9, a, b) and a
 * version 1..8: keys issued as UUIDs (Heroku, many SaaS) pass, a run of
 * zeros or a made-up 36-char string does not. */
static int triage_v_uuid(const uint8_t *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !triage_is_hex(s[i]))
            return 0;
    }
    uint8_t version = s[14], variant = (uint8_t)(s[19] | 0x20);
    return version >= '1' && version <= '8' &&
           (variant == '8' || variant == '9' || variant == 'a' || variant == 'b');
}

/* ---- pem -------------------------------------------------------------- */

/* -----BEGIN <label>-----, base64 body lines, -----END <label>----- with the
 * same label.  Header lines ("Proc-Type: ...") inside the body are allowed;
 * the body must hold at least 64 base64 characters, so a snippet with "..."
 * in the middle fails. */
static int triage_v_pem(const uint8_t *s, size_t n)
{
    static const char begin[] = "-----BEGIN ", end[] = "-----END ", dashes[] = "-----";
    const size_t bl = sizeof begin - 1, el = sizeof end - 1;
    if (n < bl || memcmp(s, begin, bl) != 0)
        return 0;
    const uint8_t *label = s + bl;
    const uint8_t *label_end = memmem(label, n - bl, dashes, 5);
    if (!label_end || label_end == label)
        return 0;
    size_t label_len = (size_t)(label_end - label);
    const uint8_t *body = label_end + 5;
    size_t rest = n - (size_t)(body - s);
    const uint8_t *tail = memmem(body, rest, end, el);
    if (!tail)
        return 0;
    size_t after = n - (size_t)(tail - s) - el;
    if (after < label_len + 5 || memcmp(tail + el, label, label_len) != 0 ||
        memcmp(tail + el + label_len, dashes, 5) != 0)
        return 0;
    size_t b64 = 0;
    const uint8_t *line = body;
    while (line < tail) {
        const uint8_t *nl = memchr(line, '\n', (size_t)(tail - line));
        const uint8_t *le = nl ? nl : tail;
        if (!memchr(line, ':', (size_t)(le - line))) { /* not a header line */
            for (const uint8_t *c = line; c < le; c++) {
                if (triage_b64_value(*c, 0) >= 0)
                    b64++;
                else if (*c != '=' && *c != '\r' && *c != ' ' && *c != '\t' &&
                         *c != '\\') /* "\n" escapes in JSON strings */
                    return 0;
            }
        }
        line = le + 1;
    }
    return b64 >= 64;
}

/* ---- openai ----------------------------------------------------------- */

/* OpenAI secret keys ("sk-..." and "sk-proj-...") embed the marker
 * "T3BlbkFJ", base64 of "OpenAI", between two random base62/-_ halves. */
static int triage_url_char(uint8_t c) { return triage_is_base62(c) || c == '-' || c == '_'; }

static int triage_v_openai(const uint8_t *s, size_t n)
{
    if (n < 3 + 8 + 20 || memcmp(s, "sk-", 3) != 0 || !triage_all(s, n, triage_url_char))
        return 0;
    const uint8_t *m = memmem(s + 3, n - 3, "T3BlbkFJ", 8);
    if (!m)
        return 0;
    size_t before = (size_t)(m - s), after = n - before - 8;
    return before >= 3 + 10 && after >= 10;
}

/* ---- registry --------------------------------------------------------- */

typedef struct triage_validator {
    const char *name;
    int (*check)(const uint8_t *s, size_t n);
} triage_validator;

static const triage_validator triage_validators[] = {
    {"github-crc32", triage_v_github_crc32},
    {"npm-crc32", triage_v_github_crc32},
    {"github-fine-grained", triage_v_github_fine_grained},
    {"jwt", triage_v_jwt},
    {"pypi-macaroon", triage_v_pypi_macaroon},
    {"luhn", triage_v_luhn},
    {"slack-webhook", triage_v_slack_webhook},
    {"aws-key-id", triage_v_aws_key_id},
    {"uuid", triage_v_uuid},
    {"pem", triage_v_pem},
    {"openai", triage_v_openai},
};

static const triage_validator *triage_validator_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof triage_validators / sizeof triage_validators[0]; i++)
        if (strcmp(triage_validators[i].name, name) == 0)
            return &triage_validators[i];
    return NULL;
}

/* Tokens whose format carries its own check, whatever detector found them:
 * a generic "token = ..." or "Bearer ..." rule that catches a ghp_ token
 * with a broken CRC, or an "eyJ...eyJ..." JWT whose parts are not JSON, is
 * looking at a made-up value.  Only exact shapes are judged (a prefix that
 * declares the format), so anything else answers 0 (no opinion).  UUIDs
 * are not judged here: a service may issue keys in UUID shape without
 * RFC 4122 version bits; a detector that knows better asks for "uuid". */
int triage_checksum_implied(const uint8_t *s, size_t n)
{
    if (!s)
        return 0;
    if (n == 40 && s[3] == '_' &&
        (memcmp(s, "npm", 3) == 0 ||
         (s[0] == 'g' && s[1] == 'h' && s[2] != '\0' && strchr("pousr", s[2]))))
        return triage_v_github_crc32(s, n) ? 1 : -1;
    if (n >= 10 && memcmp(s, "eyJ", 3) == 0) {
        const uint8_t *d1 = memchr(s, '.', n);
        if (d1 && (size_t)(d1 - s) + 4 <= n && memcmp(d1 + 1, "eyJ", 3) == 0 &&
            memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s)))
            return triage_v_jwt(s, n) ? 1 : -1;
    }
    return 0;
}

int triage_checksum_known(const char *name) { return triage_validator_find(name) != NULL; }

int triage_checksum(const char *name, const uint8_t *secret, size_t len)
{
    const triage_validator *v = triage_validator_find(name);
    if (!v)
        return -1;
    if (!secret && len)
        return 0;
    return v->check(secret ? secret : (const uint8_t *)"", len) ? 1 : 0;
}
