/*
 * rules.c - the decisions of verification that need no network: template
 * expansion, the allowed-domains guard, and reading an answer into an
 * outcome.  Kept apart from the transfer loop so each rule has unit tests
 * that run without a server.
 *
 * The guard works on the URL after expansion, parsed by curl's own URL
 * parser, and the URL handed to curl is the one curl_url normalised: the
 * checked host and the contacted host cannot differ.  Substituted values
 * are percent-encoded in URLs, so a secret holding "@", "/" or "#" cannot
 * move the host either.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "verify/verify.h"

#define VERIFY_MAX_EXPANDED (16u << 10)

typedef struct exp_buf {
    char *p;
    size_t len, cap;
    int err; /* 1 too long, 2 out of memory */
} exp_buf;

static void exp_put(exp_buf *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->len + n > VERIFY_MAX_EXPANDED) {
        b->err = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = 2;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void exp_value(exp_buf *b, const char *v, size_t n, int url_encode)
{
    if (!url_encode) {
        exp_put(b, v, n);
        return;
    }
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            exp_put(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            exp_put(b, e, 3);
        }
    }
}

int verify_expand(const char *tmpl, const report_finding *f, int url_encode, char **out,
                  char *why, size_t why_len)
{
    *out = NULL;
    exp_buf b = {0};
    exp_put(&b, "", 0);
    const char *s = tmpl ? tmpl : "";
    while (*s && !b.err) {
        const char *open = strstr(s, "{{");
        if (!open) {
            exp_put(&b, s, strlen(s));
            break;
        }
        exp_put(&b, s, (size_t)(open - s));
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            snprintf(why, why_len, "template: '{{' without '}}'");
            free(b.p);
            return -1;
        }
        const char *name = open + 2;
        size_t name_len = (size_t)(close - name);
        while (name_len && name[0] == ' ')
            name++, name_len--;
        while (name_len && name[name_len - 1] == ' ')
            name_len--;
        if (name_len == 5 && !memcmp(name, "match", 5)) {
            exp_value(&b, f->secret ? f->secret : "", f->secret ? f->secret_len : 0,
                      url_encode);
        } else if (name_len > 10 && !memcmp(name, "companion.", 10)) {
            const report_companion *c = NULL;
            for (size_t i = 0; i < f->companion_count && !c; i++)
                if (f->companions[i].name && strlen(f->companions[i].name) == name_len - 10 &&
                    !memcmp(f->companions[i].name, name + 10, name_len - 10))
                    c = &f->companions[i];
            if (!c || !c->value) {
                snprintf(why, why_len, "no companion '%.*s' found near the secret",
                         (int)(name_len - 10 > 64 ? 64 : name_len - 10), name + 10);
                free(b.p);
                return -1;
            }
            exp_value(&b, c->value, strlen(c->value), url_encode);
        } else {
            snprintf(why, why_len, "template: unknown placeholder '{{%.*s}}'",
                     (int)(name_len > 64 ? 64 : name_len), name);
            free(b.p);
            return -1;
        }
        s = close + 2;
    }
    if (b.err) {
        snprintf(why, why_len, b.err == 1 ? "template: expansion over 16 KiB" : "out of memory");
        free(b.p);
        return -1;
    }
    *out = b.p;
    return 0;
}

int verify_host_allowed(const char *host, char *const *domains, size_t count)
{
    if (!host || !*host)
        return 0;
    size_t hl = strlen(host);
    if (host[hl - 1] == '.')
        hl--;
    for (size_t i = 0; i < count; i++) {
        const char *d = domains[i];
        if (!d || !*d)
            continue;
        size_t dl = strlen(d);
        if (d[dl - 1] == '.')
            dl--;
        if (!dl || dl > hl)
            continue;
        if (hl == dl && !strncasecmp(host, d, dl))
            return 1;
        /* a subdomain: "x.example.com" under "example.com", never
         * "badexample.com" */
        if (hl > dl && host[hl - dl - 1] == '.' && !strncasecmp(host + hl - dl, d, dl))
            return 1;
    }
    return 0;
}

int verify_check_url(const char *url, char *const *domains, size_t count, char **norm,
                     char **host, char *why, size_t why_len)
{
    *norm = *host = NULL;
    CURLU *u = curl_url();
    if (!u) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    int rc = -1;
    char *scheme = NULL, *user = NULL, *h = NULL, *full = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        snprintf(why, why_len, "bad URL: %s", curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        strcasecmp(scheme, "https") != 0) {
        snprintf(why, why_len, "URL is not https");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        snprintf(why, why_len, "URL holds user info");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
        snprintf(why, why_len, "URL has no host");
        goto out;
    }
    if (!verify_host_allowed(h, domains, count)) {
        snprintf(why, why_len, "host %.200s is not in allowed_domains", h);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
        snprintf(why, why_len, "bad URL");
        goto out;
    }
    *norm = strdup(full);
    *host = strdup(h);
    if (!*norm || !*host) {
        free(*norm);
        free(*host);
        *norm = *host = NULL;
        snprintf(why, why_len, "out of memory");
        goto out;
    }
    for (char *p = *host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(user);
    curl_free(h);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

/* Follows a dotted path ("data.user.id", "items.0.name") through objects
 * and arrays. */
static const report_jvalue *json_path(const report_jvalue *v, const char *path)
{
    char seg[256];
    const char *s = path;
    while (v && *s) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n >= sizeof seg)
            return NULL;
        memcpy(seg, s, n);
        seg[n] = 0;
        if (v->type == REPORT_JOBJECT) {
            v = report_json_get(v, seg);
        } else if (v->type == REPORT_JARRAY) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            v = n && !*end && i < v->n ? v->items[i] : NULL;
        } else {
            return NULL;
        }
        s = dot ? dot + 1 : s + n;
    }
    return v;
}

/* The field's value as the text a detector file compares against. */
static void json_text(const report_jvalue *v, char *buf, size_t len)
{
    switch (v->type) {
    case REPORT_JNULL: snprintf(buf, len, "null"); break;
    case REPORT_JBOOL: snprintf(buf, len, "%s", v->boolean ? "true" : "false"); break;
    case REPORT_JNUMBER: snprintf(buf, len, "%.17g", v->number); break;
    case REPORT_JSTRING: snprintf(buf, len, "%s", v->str); break;
    default: snprintf(buf, len, "%s", v->type == REPORT_JARRAY ? "[array]" : "{object}");
    }
}

static int json_matches(const report_jvalue *v, const char *want)
{
    if (v->type == REPORT_JNUMBER) {
        char *end;
        double d = strtod(want, &end);
        return end != want && !*end && d == v->number;
    }
    char text[256];
    json_text(v, text, sizeof text);
    return v->type == REPORT_JSTRING ? v->len == strlen(want) && !strcmp(v->str, want)
                                     : !strcmp(text, want);
}

static int status_in(long status, const int *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == status)
            return 1;
    return 0;
}

/* Checks the body rules of a success status: 1 met, 0 the service said no
 * (the JSON says otherwise, the text is missing), -1 cannot tell. */
static int body_rules(const spec_verify *v, const char *body, size_t len, char *detail,
                      size_t dlen)
{
    detail[0] = 0;
    if (v->success_body_contains && *v->success_body_contains &&
        !memmem(body ? body : "", len, v->success_body_contains,
                strlen(v->success_body_contains))) {
        snprintf(detail, dlen, "body lacks \"%.60s\"", v->success_body_contains);
        return 0;
    }
    if (!v->success_json_field || !*v->success_json_field)
        return 1;
    report_jvalue *root = NULL;
    char err[128];
    if (!body || report_json_parse(body, len, &root, err, sizeof err) != 0) {
        snprintf(detail, dlen, "body is not JSON");
        return -1;
    }
    int rc;
    const report_jvalue *f = json_path(root, v->success_json_field);
    if (!f) {
        snprintf(detail, dlen, "no %.60s in the answer", v->success_json_field);
        rc = 0;
    } else if (v->success_json_value && !json_matches(f, v->success_json_value)) {
        char text[64];
        json_text(f, text, sizeof text);
        snprintf(detail, dlen, "%.60s is %.40s", v->success_json_field, text);
        rc = 0;
    } else {
        snprintf(detail, dlen, "%.60s%s%.40s", v->success_json_field,
                 v->success_json_value ? " is " : " present",
                 v->success_json_value ? v->success_json_value : "");
        rc = 1;
    }
    report_json_free(root);
    return rc;
}

const char *verify_classify(const spec_verify *v, long status, const char *body, size_t len,
                            char *reason, size_t reason_len)
{
    static const int default_revoked[] = {401, 403};
    const int *revoked = v->revoked_status_count ? v->revoked_status : default_revoked;
    size_t nrevoked = v->revoked_status_count ? v->revoked_status_count : 2;
    if (status <= 0) {
        snprintf(reason, reason_len, "no response");
        return "unknown";
    }
    int success = v->success_status_count
                      ? status_in(status, v->success_status, v->success_status_count)
                      : status >= 200 && status < 300;
    if (success) {
        char detail[200];
        int r = body_rules(v, body, len, detail, sizeof detail);
        if (detail[0])
            snprintf(reason, reason_len, "HTTP %ld, %s", status, detail);
        else
            snprintf(reason, reason_len, "HTTP %ld", status);
        return r > 0 ? "live" : r == 0 ? "revoked" : "unknown";
    }
    if (status_in(status, revoked, nrevoked)) {
        snprintf(reason, reason_len, "HTTP %ld", status);
        return "revoked";
    }
    if (status == 429)
        snprintf(reason, reason_len, "rate limited (HTTP 429)");
    else if (status >= 500)
        snprintf(reason, reason_len, "server error (HTTP %ld)", status);
    else
        snprintf(reason, reason_len, "unexpected HTTP %ld", status);
    return "unknown";
}
