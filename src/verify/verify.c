/*
 * verify.c - the verification session: which findings need a request, the
 * requests themselves, and the limits around them.
 *
 * Shape: findings are grouped by fingerprint, so each distinct (detector,
 * secret) becomes one job and its outcome is copied to every finding that
 * shares it; outcomes already known (earlier in the session, or fresh in the
 * cache file) are reused without a request.  Jobs run on the caller's thread
 * through one libcurl multi handle: no threads, no locks, and concurrency is
 * simply "how many easy handles are attached".  A job may start when a slot
 * is free, its own retry delay has passed and its host's next slot has come
 * (one start per 1/rate seconds per host), so the limits hold for retries
 * and redirects too.
 *
 * Requests are rebuilt on each attempt (a SigV4 signature carries the time),
 * redirects are followed by hand so each new URL passes the same
 * allowed-domains guard as the first, and every path out of a job ends in an
 * outcome with a reason: nothing is dropped silently.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "verify/verify.h"

#define VERIFY_MAX_BODY (256u << 10)  /* response bytes kept for the rules */
#define VERIFY_MAX_DOWNLOAD (8u << 20) /* larger answers are cut off by curl */
#define VERIFY_MAX_REDIRECTS 3
#define VERIFY_REASON_LEN 200

typedef enum job_state { JOB_WAITING, JOB_RUNNING, JOB_DONE } job_state;

typedef struct verify_host {
    char *name;
    double next; /* monotonic time of this host's next free slot */
} verify_host;

typedef struct verify_job {
    const report_finding *f; /* the first finding with this fingerprint */
    const spec_verify *v;
    char fingerprint[65];
    size_t first, count; /* its findings in the session's pair list */
    job_state state;
    char *url, *host; /* checked target of the next attempt */
    size_t host_index;
    int get_only;     /* a 303 (or 301/302 after POST) turned it into GET */
    int attempts, redirects;
    double not_before;
    const char *status;
    char reason[VERIFY_REASON_LEN];
    /* the transfer in flight */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    char *resp;
    size_t resp_len, resp_cap;
} verify_job;

typedef struct verify_known {
    char fingerprint[65];
    const char *status;
    char *reason;
} verify_known;

typedef struct verify_pair {
    char fingerprint[65];
    size_t index;
} verify_pair;

struct verify_session {
    verify_opts opts;
    CURLM *multi;
    verify_cache cache;  /* the file's fresh entries, plus this run's answers */
    verify_known *known; /* every outcome of this session, sorted */
    size_t known_count, known_cap;
    verify_host *hosts;
    size_t host_count, host_cap;
    verify_stats stats;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void verify_opts_default(verify_opts *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 8;
    o->rate = 5;
    o->timeout = 10;
    o->max_retries = 2;
    o->backoff = 1;
    o->retry_after_cap = 30;
    o->cache_ttl = 86400;
}

int verify_session_new(const verify_opts *opts, verify_session **out, kh_error *err)
{
    *out = NULL;
    verify_session *s = calloc(1, sizeof *s);
    if (!s)
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    if (opts)
        s->opts = *opts;
    else
        verify_opts_default(&s->opts);
    verify_opts *o = &s->opts;
    if (o->concurrency < 1 || o->concurrency > 256 || !(o->rate > 0) || !(o->timeout > 0) ||
        o->max_retries < 0 || o->max_retries > 10 || o->backoff < 0 ||
        o->retry_after_cap < 0 || !(o->cache_ttl >= 0)) {
        free(s);
        return kh_error_set(err, KH_EINVAL, "verify: option out of range");
    }
    /* Reference-counted by libcurl; thread-safe in the versions we build with. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(s);
        return kh_error_set(err, KH_EINTERNAL, "verify: libcurl did not initialise");
    }
    if (!(s->multi = curl_multi_init())) {
        curl_global_cleanup();
        free(s);
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    }
    if (o->cache_path) {
        int rc = verify_cache_load(&s->cache, o->cache_path, time(NULL), o->cache_ttl, err);
        if (rc != KH_OK) {
            verify_session_free(s);
            return rc;
        }
    }
    *out = s;
    return KH_OK;
}

void verify_session_free(verify_session *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->known_count; i++)
        free(s->known[i].reason);
    free(s->known);
    for (size_t i = 0; i < s->host_count; i++)
        free(s->hosts[i].name);
    free(s->hosts);
    verify_cache_clear(&s->cache);
    if (s->multi) {
        curl_multi_cleanup(s->multi);
        curl_global_cleanup();
    }
    free(s);
}

void verify_session_stats(const verify_session *s, verify_stats *out)
{
    *out = s->stats;
}

int verify_session_save(verify_session *s, kh_error *err)
{
    if (!s->opts.cache_path)
        return KH_OK;
    verify_cache_sort(&s->cache);
    return verify_cache_save(&s->cache, s->opts.cache_path, err);
}

/* ---- outcomes ----------------------------------------------------- */

static int cmp_known(const void *a, const void *b)
{
    return strcmp(((const verify_known *)a)->fingerprint, ((const verify_known *)b)->fingerprint);
}

static const verify_known *known_find(const verify_session *s, const char *fp)
{
    verify_known key;
    memcpy(key.fingerprint, fp, 65);
    return s->known_count ? bsearch(&key, s->known, s->known_count, sizeof key, cmp_known)
                          : NULL;
}

static int known_add(verify_session *s, const char *fp, const char *status, const char *reason)
{
    if (s->known_count == s->known_cap) {
        size_t cap = s->known_cap ? s->known_cap * 2 : 64;
        verify_known *k = realloc(s->known, cap * sizeof *k);
        if (!k)
            return KH_ENOMEM;
        s->known = k;
        s->known_cap = cap;
    }
    verify_known *k = &s->known[s->known_count];
    memcpy(k->fingerprint, fp, 65);
    k->status = status;
    if (!(k->reason = strdup(reason)))
        return KH_ENOMEM;
    s->known_count++;
    return KH_OK;
}

static int apply(verify_session *s, report_finding *f, const char *status, const char *reason,
                 const char *suffix)
{
    size_t n = strlen(reason) + strlen(suffix) + 1;
    char *r = malloc(n);
    if (!r)
        return KH_ENOMEM;
    snprintf(r, n, "%s%s", reason, suffix);
    free(f->verify_reason);
    f->verify_reason = r;
    f->verify_status = status;
    if (!strcmp(status, "live"))
        s->stats.live++;
    else if (!strcmp(status, "revoked"))
        s->stats.revoked++;
    else
        s->stats.unknown++;
    return KH_OK;
}

static void job_fail(verify_job *j, const char *reason)
{
    j->state = JOB_DONE;
    j->status = "unknown";
    snprintf(j->reason, sizeof j->reason, "%s", reason);
}

/* ---- building a request ------------------------------------------- */

static size_t host_slot(verify_session *s, const char *host)
{
    for (size_t i = 0; i < s->host_count; i++)
        if (!strcasecmp(s->hosts[i].name, host))
            return i;
    if (s->host_count == s->host_cap) {
        size_t cap = s->host_cap ? s->host_cap * 2 : 16;
        verify_host *h = realloc(s->hosts, cap * sizeof *h);
        if (!h)
            return (size_t)-1;
        s->hosts = h;
        s->host_cap = cap;
    }
    char *name = strdup(host);
    if (!name)
        return (size_t)-1;
    s->hosts[s->host_count] = (verify_host){name, 0};
    return s->host_count++;
}

/* Sets j->url / j->host from a URL, or ends the job with the reason. */
static int job_target(verify_session *s, verify_job *j, const char *url)
{
    char why[VERIFY_REASON_LEN], *norm, *host;
    if (verify_check_url(url, j->v->allowed_domains, j->v->allowed_domain_count, &norm, &host,
                         why, sizeof why) != 0) {
        job_fail(j, why);
        return -1;
    }
    size_t slot = host_slot(s, host);
    if (slot == (size_t)-1) {
        free(norm);
        free(host);
        job_fail(j, "out of memory");
        return -1;
    }
    free(j->url);
    free(j->host);
    j->url = norm;
    j->host = host;
    j->host_index = slot;
    return 0;
}

static void put_pct(char **w, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *(*w)++ = (char)c;
        } else {
            *(*w)++ = '%';
            *(*w)++ = digits[c >> 4];
            *(*w)++ = digits[c & 15];
        }
    }
}

/* The first URL: the template expanded (values percent-encoded), plus the
 * query credential for auth type "query". */
static int job_first_target(verify_session *s, verify_job *j)
{
    char why[VERIFY_REASON_LEN], *url;
    if (!j->v->url) {
        job_fail(j, "detector has no verify URL");
        return -1;
    }
    if (verify_expand(j->v->url, j->f, 1, &url, why, sizeof why) != 0) {
        job_fail(j, why);
        return -1;
    }
    if (j->v->auth_type && !strcmp(j->v->auth_type, "query")) {
        char *value;
        if (verify_expand(j->v->auth_template ? j->v->auth_template : "{{match}}", j->f, 0,
                          &value, why, sizeof why) != 0) {
            free(url);
            job_fail(j, why);
            return -1;
        }
        const char *name = j->v->auth_name ? j->v->auth_name : "key";
        CURLU *u = curl_url();
        char *param = malloc(3 * (strlen(name) + strlen(value)) + 2);
        char *full = NULL;
        int ok = 0;
        if (u && param) {
            char *w = param;
            put_pct(&w, name);
            *w++ = '=';
            put_pct(&w, value);
            *w = 0;
            ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                 curl_url_set(u, CURLUPART_QUERY, param, CURLU_APPENDQUERY) == CURLUE_OK &&
                 curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK;
        }
        free(value);
        free(param);
        curl_url_cleanup(u);
        free(url);
        url = ok ? strdup(full) : NULL;
        curl_free(full);
        if (!url) {
            job_fail(j, "bad URL");
            return -1;
        }
    }
    int rc = job_target(s, j, url);
    free(url);
    return rc;
}

static int has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Appends "Name: value" (value expanded from tmpl); -1 with why on failure. */
static int add_header(verify_job *j, const char *name, const char *prefix, const char *tmpl,
                      char *why, size_t why_len)
{
    char *value;
    if (verify_expand(tmpl, j->f, 0, &value, why, why_len) != 0)
        return -1;
    if (has_line_break(value) || has_line_break(name) || strchr(name, ':')) {
        free(value);
        snprintf(why, why_len, "header %.40s would hold a line break", name);
        return -1;
    }
    size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
    char *line = malloc(n);
    struct curl_slist *l = NULL;
    if (line) {
        snprintf(line, n, "%s: %s%s", name, prefix, value);
        l = curl_slist_append(j->headers, line);
        OPENSSL_cleanse(line, strlen(line));
    }
    free(line);
    OPENSSL_cleanse(value, strlen(value));
    free(value);
    if (!l) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    j->headers = l;
    return 0;
}

static int add_literal_header(verify_job *j, const char *line)
{
    struct curl_slist *l = curl_slist_append(j->headers, line);
    if (!l)
        return -1;
    j->headers = l;
    return 0;
}

static int add_basic(verify_job *j, char *why, size_t why_len)
{
    char *user, *pass;
    if (verify_expand(j->v->auth_username ? j->v->auth_username : "{{match}}", j->f, 0, &user,
                      why, why_len) != 0)
        return -1;
    if (verify_expand(j->v->auth_password ? j->v->auth_password : "", j->f, 0, &pass, why,
                      why_len) != 0) {
        free(user);
        return -1;
    }
    size_t ul = strlen(user), pl = strlen(pass);
    char *plain = malloc(ul + pl + 2);
    char *enc = malloc(4 * ((ul + pl + 1 + 2) / 3) + 32);
    int rc = -1;
    if (plain && enc) {
        memcpy(plain, user, ul);
        plain[ul] = ':';
        memcpy(plain + ul + 1, pass, pl + 1);
        memcpy(enc, "Authorization: Basic ", 21);
        EVP_EncodeBlock((unsigned char *)enc + 21, (unsigned char *)plain, (int)(ul + pl + 1));
        rc = add_literal_header(j, enc);
        OPENSSL_cleanse(plain, ul + pl + 1);
        OPENSSL_cleanse(enc, strlen(enc));
    }
    if (rc)
        snprintf(why, why_len, "out of memory");
    free(plain);
    free(enc);
    free(user);
    free(pass);
    return rc;
}

/* Signs with SigV4: the key id (username template, default the match) and
 * the secret (password template, usually a companion). */
static int add_sigv4(verify_job *j, const char *method, char *why, size_t why_len)
{
    const spec_verify *v = j->v;
    if (!v->auth_password) {
        snprintf(why, why_len, "aws-sigv4 needs a password template (the secret key)");
        return -1;
    }
    char *access = NULL, *secret = NULL, *auth = NULL, *path = NULL, *query = NULL,
         *port = NULL;
    spec_header *signed_headers = NULL;
    size_t nsigned = 0;
    int rc = -1;
    CURLU *u = NULL;
    if (verify_expand(v->auth_username ? v->auth_username : "{{match}}", j->f, 0, &access, why,
                      why_len) != 0 ||
        verify_expand(v->auth_password, j->f, 0, &secret, why, why_len) != 0)
        goto out;
    if (!(u = curl_url()) || curl_url_set(u, CURLUPART_URL, j->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        snprintf(why, why_len, "bad URL");
        goto out;
    }
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    char hostline[600];
    snprintf(hostline, sizeof hostline, "%s%s%s", j->host, port ? ":" : "", port ? port : "");
    signed_headers = calloc(v->header_count + 1, sizeof *signed_headers);
    if (!signed_headers) {
        snprintf(why, why_len, "out of memory");
        goto out;
    }
    for (; nsigned < v->header_count; nsigned++) {
        signed_headers[nsigned].name = v->headers[nsigned].name;
        if (verify_expand(v->headers[nsigned].value, j->f, 0, &signed_headers[nsigned].value,
                          why, why_len) != 0)
            goto out;
    }
    char date[20];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    verify_sigv4_request r = {
        .method = method,
        .host = hostline,
        .path = path,
        .query = query,
        .headers = signed_headers,
        .header_count = nsigned,
        .body = j->body,
        .body_len = j->body_len,
        .access_key = access,
        .secret_key = secret,
        .region = v->aws_region ? v->aws_region : "us-east-1",
        .service = v->aws_service ? v->aws_service : "sts",
        .amz_date = date,
    };
    int src = verify_sigv4_sign(&r, &auth, NULL);
    if (src != KH_OK) {
        snprintf(why, why_len, src == KH_EINVAL ? "aws-sigv4: a signed value is malformed"
                                                : "out of memory");
        goto out;
    }
    char line[700];
    snprintf(line, sizeof line, "Host: %s", hostline);
    if (add_literal_header(j, line))
        goto oom;
    snprintf(line, sizeof line, "X-Amz-Date: %s", date);
    if (add_literal_header(j, line))
        goto oom;
    size_t n = strlen(auth) + 16;
    char *al = malloc(n);
    if (!al)
        goto oom;
    snprintf(al, n, "Authorization: %s", auth);
    int ar = add_literal_header(j, al);
    free(al);
    if (ar)
        goto oom;
    rc = 0;
    goto out;
oom:
    snprintf(why, why_len, "out of memory");
out:
    if (secret)
        OPENSSL_cleanse(secret, strlen(secret));
    free(access);
    free(secret);
    free(auth);
    for (size_t i = 0; i < nsigned; i++)
        free(signed_headers[i].value);
    free(signed_headers);
    curl_free(path);
    curl_free(query);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    verify_job *j = ctx;
    size_t len = size * n;
    size_t room = VERIFY_MAX_BODY - j->resp_len;
    size_t take = len < room ? len : room;
    if (take) {
        if (j->resp_len + take + 1 > j->resp_cap) {
            size_t cap = j->resp_cap ? j->resp_cap : 4096;
            while (cap < j->resp_len + take + 1)
                cap *= 2;
            char *p = realloc(j->resp, cap);
            if (!p)
                return 0; /* aborts the transfer: an unknown outcome */
            j->resp = p;
            j->resp_cap = cap;
        }
        memcpy(j->resp + j->resp_len, data, take);
        j->resp_len += take;
        j->resp[j->resp_len] = 0;
    }
    return len; /* the rest is read and dropped, bounded by the timeout */
}

static void job_release(verify_session *s, verify_job *j)
{
    if (j->easy) {
        curl_multi_remove_handle(s->multi, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
    }
    if (j->headers) {
        for (struct curl_slist *l = j->headers; l; l = l->next)
            OPENSSL_cleanse(l->data, strlen(l->data));
        curl_slist_free_all(j->headers);
        j->headers = NULL;
    }
    free(j->body);
    j->body = NULL;
    j->body_len = 0;
    free(j->resp);
    j->resp = NULL;
    j->resp_len = j->resp_cap = 0;
}

/* Builds the easy handle for the next attempt and attaches it. */
static int job_start(verify_session *s, verify_job *j)
{
    const spec_verify *v = j->v;
    char why[VERIFY_REASON_LEN] = "out of memory";
    const char *method = j->get_only || !v->method || !*v->method ? "GET" : v->method;
    int is_get = !strcasecmp(method, "GET"), is_head = !strcasecmp(method, "HEAD");
    if (!is_get && !is_head && v->body) {
        if (verify_expand(v->body, j->f, 0, &j->body, why, sizeof why) != 0)
            goto fail;
        j->body_len = strlen(j->body);
    }
    for (size_t i = 0; i < v->header_count; i++)
        if (add_header(j, v->headers[i].name, "", v->headers[i].value, why, sizeof why))
            goto fail;
    const char *type = v->auth_type ? v->auth_type : "none";
    if (!strcmp(type, "header")) {
        if (add_header(j, v->auth_name ? v->auth_name : "Authorization", "",
                       v->auth_template ? v->auth_template : "{{match}}", why, sizeof why))
            goto fail;
    } else if (!strcmp(type, "bearer")) {
        if (add_header(j, "Authorization", "Bearer ",
                       v->auth_template ? v->auth_template : "{{match}}", why, sizeof why))
            goto fail;
    } else if (!strcmp(type, "basic")) {
        if (add_basic(j, why, sizeof why))
            goto fail;
    } else if (!strcmp(type, "aws-sigv4")) {
        if (add_sigv4(j, method, why, sizeof why))
            goto fail;
    } else if (strcmp(type, "query") && strcmp(type, "none")) {
        snprintf(why, sizeof why, "unknown auth type '%.40s'", type);
        goto fail;
    }
    /* curl would wait for a 100-continue on larger bodies; no service here
     * needs it. */
    if (add_literal_header(j, "Expect:"))
        goto fail;

    CURL *e = j->easy = curl_easy_init();
    if (!e)
        goto fail;
    const verify_opts *o = &s->opts;
    long timeout_ms = (long)(o->timeout * 1000);
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_bundle)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_bundle);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "keyhog/" KH_VERSION " (+verify)");
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)VERIFY_MAX_DOWNLOAD);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    if (is_head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!is_get) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body ? j->body : "");
        if (strcasecmp(method, "POST"))
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (curl_multi_add_handle(s->multi, e) != CURLM_OK)
        goto fail;
    j->attempts++;
    j->state = JOB_RUNNING;
    s->stats.requests++;
    return 0;
fail:
    job_release(s, j);
    job_fail(j, why);
    return -1;
}

/* Seconds to wait from a Retry-After header, or -1 if there is none. */
static double retry_after(CURL *e)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h ||
        !h->value)
        return -1;
    char *end;
    double secs = strtod(h->value, &end);
    if (end != h->value && (*end == 0 || *end == ' ') && secs >= 0)
        return secs;
    time_t when = curl_getdate(h->value, NULL);
    if (when < 0)
        return -1;
    double d = difftime(when, time(NULL));
    return d > 0 ? d : 0;
}

/* Turns a finished transfer into an outcome, a retry or a redirect. */
static void job_finish(verify_session *s, verify_job *j, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    char reason[VERIFY_REASON_LEN];
    double now = now_mono();
    if (res != CURLE_OK && !(res == CURLE_WRITE_ERROR && status > 0)) {
        if (res == CURLE_OPERATION_TIMEDOUT)
            snprintf(reason, sizeof reason, "timeout after %g s", s->opts.timeout);
        else if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CONNECT_ERROR ||
                 res == CURLE_SSL_CACERT_BADFILE)
            snprintf(reason, sizeof reason, "TLS: %s", curl_easy_strerror(res));
        else
            snprintf(reason, sizeof reason, "network: %s", curl_easy_strerror(res));
        job_release(s, j);
        job_fail(j, reason);
        return;
    }
    if (status >= 300 && status < 400) {
        char *loc = NULL;
        curl_easy_getinfo(j->easy, CURLINFO_REDIRECT_URL, &loc);
        if (loc) {
            if (j->redirects >= VERIFY_MAX_REDIRECTS) {
                job_release(s, j);
                job_fail(j, "too many redirects");
                return;
            }
            char *target = strdup(loc);
            job_release(s, j);
            if (!target) {
                job_fail(j, "out of memory");
                return;
            }
            char why[VERIFY_REASON_LEN];
            char *norm, *host;
            if (verify_check_url(target, j->v->allowed_domains, j->v->allowed_domain_count,
                                 &norm, &host, why, sizeof why) != 0) {
                snprintf(reason, sizeof reason, "redirect refused: %.170s", why);
                job_fail(j, reason);
                free(target);
                return;
            }
            free(norm);
            free(host);
            if (job_target(s, j, target) == 0) {
                j->redirects++;
                if (status == 303 || ((status == 301 || status == 302) && j->v->method &&
                                      !strcasecmp(j->v->method, "POST")))
                    j->get_only = 1;
                j->state = JOB_WAITING;
                j->not_before = now;
            }
            free(target);
            return;
        }
    }
    if ((status == 429 || status >= 500) && j->attempts <= s->opts.max_retries) {
        double wait = s->opts.backoff * pow(2, j->attempts - 1);
        double ra = retry_after(j->easy);
        if (ra > s->opts.retry_after_cap) {
            snprintf(reason, sizeof reason, "HTTP %ld, Retry-After %.0f s is over the %g s cap",
                     status, ra, s->opts.retry_after_cap);
            job_release(s, j);
            job_fail(j, reason);
            return;
        }
        if (ra >= 0)
            wait = ra;
        job_release(s, j);
        j->state = JOB_WAITING;
        j->not_before = now + wait;
        s->stats.retries++;
        return;
    }
    j->status = verify_classify(j->v, status, j->resp, j->resp_len, reason, sizeof reason);
    if (j->attempts > 1 && strcmp(j->status, "unknown") == 0) {
        size_t l = strlen(reason);
        snprintf(reason + l, sizeof reason - l, " after %d attempts", j->attempts);
    }
    snprintf(j->reason, sizeof j->reason, "%s", reason);
    job_release(s, j);
    j->state = JOB_DONE;
}

/* Runs every job to an outcome under the concurrency and rate limits. */
static void run_jobs(verify_session *s, verify_job *jobs, size_t n)
{
    size_t done = 0, running = 0;
    for (size_t i = 0; i < n; i++)
        done += jobs[i].state == JOB_DONE;
    double gap = 1.0 / s->opts.rate;
    while (done < n) {
        double now = now_mono(), wake = now + 1.0;
        for (size_t i = 0; i < n && running < (size_t)s->opts.concurrency; i++) {
            verify_job *j = &jobs[i];
            if (j->state != JOB_WAITING)
                continue;
            verify_host *h = &s->hosts[j->host_index];
            double ready = j->not_before > h->next ? j->not_before : h->next;
            if (ready > now) {
                if (ready < wake)
                    wake = ready;
                continue;
            }
            h->next = (h->next > now ? h->next : now) + gap;
            if (job_start(s, j) == 0)
                running++;
            else
                done++;
        }
        if (done == n)
            break;
        int ms = (int)ceil((wake - now_mono()) * 1000);
        curl_multi_poll(s->multi, NULL, 0, ms < 0 ? 0 : ms > 1000 ? 1000 : ms, NULL);
        int still;
        curl_multi_perform(s->multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            verify_job *j = (verify_job *)(void *)priv;
            if (!j)
                continue;
            CURLcode res = m->data.result;
            running--;
            job_finish(s, j, res);
            if (j->state == JOB_DONE)
                done++;
        }
    }
}

static int cmp_pair(const void *a, const void *b)
{
    const verify_pair *x = a, *y = b;
    int c = strcmp(x->fingerprint, y->fingerprint);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

int verify_findings(verify_session *s, report_finding *findings, size_t count)
{
    verify_pair *pairs = malloc((count ? count : 1) * sizeof *pairs);
    if (!pairs)
        return KH_ENOMEM;
    size_t np = 0;
    int rc = KH_OK;
    for (size_t i = 0; i < count && rc == KH_OK; i++) {
        report_finding *f = &findings[i];
        if (!f->detector || !spec_from_info(f->detector)->verify)
            continue;
        char buf[65];
        const char *fp = report_finding_fingerprint(f, buf);
        const verify_known *k = known_find(s, fp);
        const verify_cache_entry *c = k ? NULL : verify_cache_find(&s->cache, fp);
        if (k || c) {
            s->stats.cached++;
            rc = k ? apply(s, f, k->status, k->reason, "")
                   : apply(s, f, c->status, c->reason, " (cached)");
            continue;
        }
        memcpy(pairs[np].fingerprint, fp, 65);
        pairs[np++].index = i;
    }
    qsort(pairs, np, sizeof *pairs, cmp_pair);
    size_t njobs = 0;
    for (size_t i = 0; i < np; i++)
        njobs += i == 0 || strcmp(pairs[i].fingerprint, pairs[i - 1].fingerprint);
    verify_job *jobs = calloc(njobs ? njobs : 1, sizeof *jobs);
    if (!jobs || rc != KH_OK) {
        free(jobs);
        free(pairs);
        return rc != KH_OK ? rc : KH_ENOMEM;
    }
    for (size_t i = 0, w = 0; i < np; i++) {
        if (i && !strcmp(pairs[i].fingerprint, pairs[i - 1].fingerprint)) {
            jobs[w - 1].count++;
            continue;
        }
        verify_job *j = &jobs[w++];
        j->f = &findings[pairs[i].index];
        j->v = spec_from_info(j->f->detector)->verify;
        memcpy(j->fingerprint, pairs[i].fingerprint, 65);
        j->first = i;
        j->count = 1;
        j->state = JOB_WAITING;
        job_first_target(s, j);
    }
    run_jobs(s, jobs, njobs);
    time_t now = time(NULL);
    for (size_t i = 0; i < njobs; i++) {
        verify_job *j = &jobs[i];
        if (rc == KH_OK)
            rc = known_add(s, j->fingerprint, j->status, j->reason);
        if (rc == KH_OK && strcmp(j->status, "unknown"))
            rc = verify_cache_put(&s->cache, j->fingerprint, j->status, j->reason, now);
        for (size_t k = j->first; k < j->first + j->count && rc == KH_OK; k++)
            rc = apply(s, &findings[pairs[k].index], j->status, j->reason, "");
        free(j->url);
        free(j->host);
    }
    if (s->known_count > 1)
        qsort(s->known, s->known_count, sizeof *s->known, cmp_known);
    verify_cache_sort(&s->cache);
    free(jobs);
    free(pairs);
    return rc;
}

int verify_run(const verify_opts *opts, report_finding *findings, size_t count, FILE *log,
               kh_error *err)
{
    verify_session *s;
    int rc = verify_session_new(opts, &s, err);
    if (rc != KH_OK)
        return rc;
    if ((rc = verify_findings(s, findings, count)) != KH_OK)
        kh_error_set(err, rc, "verify: %s", kh_strerror(rc));
    else
        rc = verify_session_save(s, err);
    if (log) {
        verify_stats st;
        verify_session_stats(s, &st);
        fprintf(log, "verify: %zu request%s, %zu live, %zu revoked, %zu unknown, %zu cached\n",
                st.requests, st.requests == 1 ? "" : "s", st.live, st.revoked, st.unknown,
                st.cached);
    }
    verify_session_free(s);
    return rc;
}

int verify_parse_duration(const char *s, double *seconds)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || isinf(v))
        return -1;
    double unit = 1;
    if (*end) {
        if (end[1])
            return -1;
        switch (*end) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return -1;
        }
    }
    *seconds = v * unit;
    return 0;
}

int verify_opts_set(verify_opts *o, const char *name, const char *value, char *why,
                    size_t why_len)
{
    char *end;
    double d;
    if (!strcmp(name, "verify-concurrency")) {
        long n = strtol(value, &end, 10);
        if (end == value || *end || n < 1 || n > 256)
            goto bad_range;
        o->concurrency = (int)n;
    } else if (!strcmp(name, "verify-rate")) {
        d = strtod(value, &end);
        if (end == value || *end || !(d > 0) || d > 1000)
            goto bad_range;
        o->rate = d;
    } else if (!strcmp(name, "verify-timeout")) {
        if (verify_parse_duration(value, &d) || !(d > 0) || d > 600)
            goto bad_range;
        o->timeout = d;
    } else if (!strcmp(name, "verify-cache-ttl")) {
        if (verify_parse_duration(value, &d) || d > 3650 * 86400.0)
            goto bad_range;
        o->cache_ttl = d;
    } else if (!strcmp(name, "verify-cache")) {
        o->cache_path = value;
    } else if (!strcmp(name, "verify-ca-bundle")) {
        o->ca_bundle = value;
    } else {
        snprintf(why, why_len, "unknown option");
        return -1;
    }
    return 0;
bad_range:
    snprintf(why, why_len, "expected %s, got '%.100s'",
             !strcmp(name, "verify-concurrency") ? "a number from 1 to 256"
             : !strcmp(name, "verify-rate")      ? "a number of requests per second up to 1000"
             : !strcmp(name, "verify-timeout")   ? "a duration up to 600s (10, 10s, 2m)"
                                                 : "a duration (3600, 30m, 24h, 7d)",
             value);
    return -1;
}
