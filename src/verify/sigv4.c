/*
 * sigv4.c - AWS Signature Version 4 for verification requests.
 *
 * AWS keys are verified with STS GetCallerIdentity, which needs a signed
 * request.  The signing is written out here rather than left to curl's
 * CURLOPT_AWS_SIGV4 so that it can be checked, step by step, against AWS's
 * published test-suite vectors (tests/verify/test_sigv4.c), and so that the
 * exact bytes signed are the ones this module chose to send.
 *
 * The steps are the documented ones: a canonical request (method, URI with
 * every byte outside the unreserved set percent-encoded once, query
 * parameters decoded, re-encoded and sorted, lower-case trimmed headers,
 * signed header list, SHA-256 of the body), a string to sign over its hash,
 * a key derived by four chained HMAC-SHA256 steps from the secret, and the
 * final HMAC.  Everything is built in one growable buffer; inputs are
 * bounded by the caller (templates are at most 16 KiB each).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "verify/verify.h"

typedef struct sig_buf {
    char *p;
    size_t len, cap;
    int oom;
} sig_buf;

static void buf_put(sig_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_puts(sig_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    hex_of(d, sizeof d, out);
}

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_encoded_byte(sig_buf *b, unsigned char c)
{
    static const char digits[] = "0123456789ABCDEF";
    char e[3] = {'%', digits[c >> 4], digits[c & 15]};
    buf_put(b, e, 3);
}

/* The path as AWS canonicalises it for services other than S3 when the
 * caller did not pre-encode: existing %XX escapes stay (upper-cased), '/'
 * stays, every other byte outside the unreserved set is encoded. */
static void put_canonical_path(sig_buf *b, const char *path)
{
    if (!path || !*path) {
        buf_puts(b, "/");
        return;
    }
    for (const char *s = path; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '%' && hex_value(s[1]) >= 0 && hex_value(s[2]) >= 0) {
            put_encoded_byte(b, (unsigned char)(hex_value(s[1]) * 16 + hex_value(s[2])));
            s += 2;
        } else if (c == '/' || is_unreserved(c)) {
            buf_put(b, (const char *)&c, 1);
        } else {
            put_encoded_byte(b, c);
        }
    }
}

/* Decodes %XX in s[0..n) and re-encodes strictly, so "a%2Db" and "a-b"
 * sign the same way, as AWS computes it on its side. */
static char *query_component(const char *s, size_t n)
{
    sig_buf b = {0};
    buf_put(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            c = (unsigned char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        }
        if (is_unreserved(c))
            buf_put(&b, (const char *)&c, 1);
        else
            put_encoded_byte(&b, c);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

typedef struct sig_pair {
    char *name, *value;
} sig_pair;

static int cmp_pair(const void *a, const void *b)
{
    const sig_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void free_pairs(sig_pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

static int put_canonical_query(sig_buf *b, const char *q)
{
    if (!q || !*q)
        return KH_OK;
    size_t n = 1;
    for (const char *s = q; *s; s++)
        n += *s == '&';
    sig_pair *pairs = calloc(n, sizeof *pairs);
    if (!pairs)
        return KH_ENOMEM;
    size_t count = 0;
    const char *s = q;
    for (;;) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        if (len) {
            const char *eq = memchr(s, '=', len);
            size_t nl = eq ? (size_t)(eq - s) : len;
            pairs[count].name = query_component(s, nl);
            pairs[count].value = eq ? query_component(eq + 1, len - nl - 1) : strdup("");
            if (!pairs[count].name || !pairs[count].value) {
                free_pairs(pairs, count + 1);
                return KH_ENOMEM;
            }
            count++;
        }
        if (!amp)
            break;
        s = amp + 1;
    }
    qsort(pairs, count, sizeof *pairs, cmp_pair);
    for (size_t i = 0; i < count; i++) {
        if (i)
            buf_puts(b, "&");
        buf_puts(b, pairs[i].name);
        buf_puts(b, "=");
        buf_puts(b, pairs[i].value);
    }
    free_pairs(pairs, count);
    return KH_OK;
}

/* Header value as signed: leading and trailing blanks removed, inner runs
 * of blanks folded to one space.  Line breaks are refused: they would let a
 * value smuggle another header. */
static char *canonical_value(const char *v)
{
    sig_buf b = {0};
    buf_put(&b, "", 0);
    int pending_space = 0;
    for (const char *s = v; *s; s++) {
        if (*s == '\r' || *s == '\n') {
            free(b.p);
            return NULL;
        }
        if (*s == ' ' || *s == '\t') {
            pending_space = b.len > 0;
            continue;
        }
        if (pending_space)
            buf_puts(&b, " ");
        pending_space = 0;
        buf_put(&b, s, 1);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s);
    if (d)
        for (char *p = d; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return d;
}

/* Canonical headers and the signed-header list, with duplicates of one name
 * joined by commas in the order given (qsort is not stable, so order by
 * the original index as a tie-break). */
typedef struct sig_header {
    char *name, *value;
    size_t index;
} sig_header;

static int cmp_header(const void *a, const void *b)
{
    const sig_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int put_headers(sig_buf *canon, sig_buf *signed_list, const verify_sigv4_request *r)
{
    size_t n = r->header_count + 2;
    sig_header *h = calloc(n, sizeof *h);
    if (!h)
        return KH_ENOMEM;
    int rc = KH_OK;
    for (size_t i = 0; i < n; i++) {
        const char *name = i == 0 ? "host" : i == 1 ? "x-amz-date" : r->headers[i - 2].name;
        const char *value = i == 0 ? r->host : i == 1 ? r->amz_date : r->headers[i - 2].value;
        h[i].index = i;
        h[i].name = lower_dup(name ? name : "");
        h[i].value = canonical_value(value ? value : "");
        if (!h[i].name || !h[i].value) {
            rc = h[i].name && !h[i].value && value ? KH_EINVAL : KH_ENOMEM;
            n = i + 1;
            goto out;
        }
    }
    qsort(h, n, sizeof *h, cmp_header);
    for (size_t i = 0; i < n; i++) {
        int same = i > 0 && !strcmp(h[i].name, h[i - 1].name);
        if (same) {
            buf_puts(canon, ",");
        } else {
            if (i) {
                buf_puts(canon, "\n");
                buf_puts(signed_list, ";");
            }
            buf_puts(canon, h[i].name);
            buf_puts(canon, ":");
            buf_puts(signed_list, h[i].name);
        }
        buf_puts(canon, h[i].value);
    }
    buf_puts(canon, "\n");
out:
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    return rc;
}

static int hmac(const void *key, size_t key_len, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out,
                &len) != NULL
               ? 0
               : -1;
}

static int valid_date(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return 0;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return 0;
    return 1;
}

int verify_sigv4_sign(const verify_sigv4_request *r, char **authorization, char **canonical)
{
    *authorization = NULL;
    if (canonical)
        *canonical = NULL;
    if (!r->method || !r->host || !r->access_key || !r->secret_key || !r->region ||
        !r->service || !valid_date(r->amz_date))
        return KH_EINVAL;
    sig_buf c = {0}, signed_list = {0}, out = {0};
    int rc;
    buf_puts(&c, r->method);
    buf_puts(&c, "\n");
    put_canonical_path(&c, r->path);
    buf_puts(&c, "\n");
    if ((rc = put_canonical_query(&c, r->query)) != KH_OK)
        goto out;
    buf_puts(&c, "\n");
    if ((rc = put_headers(&c, &signed_list, r)) != KH_OK)
        goto out;
    buf_puts(&c, "\n");
    buf_puts(&c, signed_list.p ? signed_list.p : "");
    buf_puts(&c, "\n");
    char body_hash[65];
    sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, body_hash);
    buf_puts(&c, body_hash);
    if (c.oom || signed_list.oom) {
        rc = KH_ENOMEM;
        goto out;
    }

    char date[9];
    memcpy(date, r->amz_date, 8);
    date[8] = 0;
    char request_hash[65];
    sha256_hex(c.p, c.len, request_hash);
    sig_buf sts = {0}, scope = {0};
    buf_puts(&scope, date);
    buf_puts(&scope, "/");
    buf_puts(&scope, r->region);
    buf_puts(&scope, "/");
    buf_puts(&scope, r->service);
    buf_puts(&scope, "/aws4_request");
    buf_puts(&sts, "AWS4-HMAC-SHA256\n");
    buf_puts(&sts, r->amz_date);
    buf_puts(&sts, "\n");
    buf_puts(&sts, scope.p ? scope.p : "");
    buf_puts(&sts, "\n");
    buf_puts(&sts, request_hash);

    /* kSecret = "AWS4" + secret; then date, region, service, "aws4_request". */
    sig_buf k = {0};
    buf_puts(&k, "AWS4");
    buf_puts(&k, r->secret_key);
    unsigned char key[32], sig[32];
    rc = KH_ENOMEM;
    if (!sts.oom && !scope.oom && !k.oom && hmac(k.p, k.len, date, key) == 0 &&
        hmac(key, 32, r->region, key) == 0 && hmac(key, 32, r->service, key) == 0 &&
        hmac(key, 32, "aws4_request", key) == 0 && hmac(key, 32, sts.p, sig) == 0) {
        char sig_hex[65];
        hex_of(sig, 32, sig_hex);
        buf_puts(&out, "AWS4-HMAC-SHA256 Credential=");
        buf_puts(&out, r->access_key);
        buf_puts(&out, "/");
        buf_puts(&out, scope.p);
        buf_puts(&out, ", SignedHeaders=");
        buf_puts(&out, signed_list.p);
        buf_puts(&out, ", Signature=");
        buf_puts(&out, sig_hex);
        rc = out.oom ? KH_ENOMEM : KH_OK;
    }
    OPENSSL_cleanse(key, sizeof key);
    if (k.p)
        OPENSSL_cleanse(k.p, k.len);
    free(k.p);
    free(sts.p);
    free(scope.p);
out:
    if (rc == KH_OK) {
        *authorization = out.p;
        out.p = NULL;
        if (canonical) {
            *canonical = c.p;
            c.p = NULL;
        }
    }
    free(out.p);
    free(c.p);
    free(signed_list.p);
    return rc;
}
