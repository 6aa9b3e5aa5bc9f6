/*
 * test_live.c - verify_findings against a real HTTPS server on 127.0.0.1
 * (tests/data/verify/server.py, started here with a certificate made for
 * this run): outcomes, each auth kind as the server received it, SigV4
 * checked by the server's own implementation, the domain guard on
 * redirects, retries, timeouts, per-secret dedupe, the concurrency and
 * rate limits, and the cache file.
 *
 * Needs python3 and openssl on PATH; without them every test is skipped
 * with a message rather than failing for a reason unrelated to the code.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "verify/verify.h"

typedef struct server {
    char dir[64];
    char cert[128];
    char log[128];
    int port;
    pid_t pid;
    int stdin_fd;
} server;

static server srv;

static int start_server(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof srv);
    srv.pid = -1;
    const char *script = "tests/data/verify/server.py";
    /* a proxy from the environment must not see the local requests */
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    if (access(script, R_OK) != 0)
        return 0;
    strcpy(srv.dir, "/tmp/kh-verify-live-XXXXXX");
    if (!mkdtemp(srv.dir))
        return 0;
    snprintf(srv.cert, sizeof srv.cert, "%s/cert.pem", srv.dir);
    snprintf(srv.log, sizeof srv.log, "%s/requests.jsonl", srv.dir);
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, srv.dir, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    srv.pid = pid;
    srv.stdin_fd = in[1];
    char line[32] = {0};
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    close(out[0]);
    srv.port = atoi(line);
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        close(srv.stdin_fd);
        kill(srv.pid, SIGTERM);
        waitpid(srv.pid, NULL, 0);
    }
    if (srv.dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", srv.dir);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

#define NEED_SERVER()                                                                      \
    do {                                                                                   \
        if (srv.port <= 0) {                                                               \
            print_message("skipped: no python3/openssl test server\n");                   \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

/* ---- the server's request log ------------------------------------- */

typedef struct request_log {
    report_jvalue **items;
    size_t count;
} request_log;

static request_log read_log(void)
{
    request_log l = {0};
    FILE *f = fopen(srv.log, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        report_jvalue *v;
        char err[100];
        assert_int_equal(report_json_parse(line, (size_t)n, &v, err, sizeof err), 0);
        l.items = realloc(l.items, (l.count + 1) * sizeof *l.items);
        l.items[l.count++] = v;
    }
    free(line);
    fclose(f);
    return l;
}

static void free_log(request_log *l)
{
    for (size_t i = 0; i < l->count; i++)
        report_json_free(l->items[i]);
    free(l->items);
}

static size_t log_count(void)
{
    request_log l = read_log();
    size_t n = l.count;
    free_log(&l);
    return n;
}

static const char *jstr(const report_jvalue *v, const char *key)
{
    const report_jvalue *x = report_json_get(v, key);
    return x && x->type == REPORT_JSTRING ? x->str : NULL;
}

static const char *header_of(const report_jvalue *req, const char *name)
{
    return jstr(report_json_get(req, "headers"), name);
}

/* The requests logged since `from` whose path is `path`. */
static size_t requests_to(const request_log *l, size_t from, const char *path,
                          const report_jvalue **first)
{
    size_t n = 0;
    for (size_t i = from; i < l->count; i++) {
        const char *p = jstr(l->items[i], "path");
        if (p && !strcmp(p, path)) {
            if (!n && first)
                *first = l->items[i];
            n++;
        }
    }
    return n;
}

/* ---- detectors and findings ----------------------------------------- */

static char *allowed_local[] = {"127.0.0.1"};

typedef struct det {
    spec_detector d;
    spec_verify v;
    char url[256];
} det;

static det *new_det(const char *id, const char *path, const char *auth_type)
{
    det *x = calloc(1, sizeof *x);
    snprintf(x->url, sizeof x->url, "https://127.0.0.1:%d%s", srv.port, path);
    x->d.id = (char *)id;
    x->d.info.id = id;
    x->d.info.has_verify = 1;
    x->d.verify = &x->v;
    x->v.url = x->url;
    x->v.method = "GET";
    x->v.allowed_domains = allowed_local;
    x->v.allowed_domain_count = 1;
    x->v.auth_type = (char *)auth_type;
    return x;
}

static report_finding new_finding(const det *x, const char *secret)
{
    report_finding f = {0};
    f.detector = &x->d.info;
    f.secret = strdup(secret);
    f.secret_len = strlen(secret);
    return f;
}

static void clear_findings(report_finding *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].secret);
        free(f[i].verify_reason);
        memset(&f[i], 0, sizeof f[i]);
    }
}

static verify_session *session(double timeout, int concurrency, double rate)
{
    verify_opts o;
    verify_opts_default(&o);
    o.ca_bundle = srv.cert;
    o.timeout = timeout;
    o.concurrency = concurrency;
    o.rate = rate;
    o.backoff = 0.05;
    verify_session *s = NULL;
    kh_error err = {0};
    assert_int_equal(verify_session_new(&o, &s, &err), KH_OK);
    return s;
}

static void verify_one(report_finding *f, size_t n)
{
    verify_session *s = session(5, 8, 1000);
    assert_int_equal(verify_findings(s, f, n), KH_OK);
    verify_session_free(s);
}

/* ---- tests ---------------------------------------------------------- */

static void test_outcomes(void **state)
{
    (void)state;
    NEED_SERVER();
    det *live = new_det("t-live", "/live", "bearer"), *gone = new_det("t-gone", "/revoked", "bearer"),
        *odd = new_det("t-odd", "/status/404", "bearer"),
        *json = new_det("t-json", "/json", "header"), *none = new_det("t-none", "/live", NULL);
    json->v.success_json_field = "ok";
    json->v.success_json_value = "true";
    none->d.verify = NULL;
    report_finding f[] = {new_finding(live, "tok-live"), new_finding(gone, "tok-gone"),
                          new_finding(odd, "tok-odd"),   new_finding(json, "tok-good"),
                          new_finding(json, "tok-bad"),  new_finding(none, "tok-none")};
    size_t before = log_count();
    verify_one(f, 6);
    assert_string_equal(f[0].verify_status, "live");
    assert_string_equal(f[0].verify_reason, "HTTP 200");
    assert_string_equal(f[1].verify_status, "revoked");
    assert_string_equal(f[1].verify_reason, "HTTP 401");
    assert_string_equal(f[2].verify_status, "unknown");
    assert_string_equal(f[2].verify_reason, "unexpected HTTP 404");
    assert_string_equal(f[3].verify_status, "live");
    assert_string_equal(f[3].verify_reason, "HTTP 200, ok is true");
    assert_string_equal(f[4].verify_status, "revoked");
    assert_string_equal(f[4].verify_reason, "HTTP 200, ok is false");
    assert_null(f[5].verify_status); /* no verify section: untouched, nothing sent */
    assert_null(f[5].verify_reason);
    assert_int_equal(log_count() - before, 5);
    clear_findings(f, 6);
    free(live), free(gone), free(odd), free(json), free(none);
}

static void test_auth_kinds_as_received(void **state)
{
    (void)state;
    NEED_SERVER();
    det *hdr = new_det("t-hdr", "/status/200", "header"),
        *basic = new_det("t-basic", "/status/201", "basic"),
        *bearer = new_det("t-bearer", "/status/202", "bearer"),
        *query = new_det("t-query", "/status/203", "query");
    hdr->v.auth_name = "X-Api-Key";
    hdr->v.auth_template = "key {{match}}";
    spec_header extra = {.name = "X-Account", .value = "{{companion.account}}"};
    hdr->v.headers = &extra;
    hdr->v.header_count = 1;
    basic->v.auth_username = "{{match}}";
    basic->v.auth_password = "{{companion.account}}";
    query->v.auth_name = "api_key";
    report_companion comp = {.name = "account", .value = "acct-1"};
    report_finding f[] = {new_finding(hdr, "h-secret"), new_finding(basic, "b-user"),
                          new_finding(bearer, "br-secret"), new_finding(query, "q+secret/=")};
    f[0].companions = f[1].companions = &comp;
    f[0].companion_count = f[1].companion_count = 1;
    size_t before = log_count();
    verify_one(f, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(f[i].verify_status, "live");
    request_log l = read_log();
    const report_jvalue *r = NULL;
    assert_int_equal(requests_to(&l, before, "/status/200", &r), 1);
    assert_string_equal(header_of(r, "x-api-key"), "key h-secret");
    assert_string_equal(header_of(r, "x-account"), "acct-1");
    assert_null(header_of(r, "authorization"));
    assert_int_equal(requests_to(&l, before, "/status/201", &r), 1);
    assert_string_equal(header_of(r, "authorization"), "Basic Yi11c2VyOmFjY3QtMQ=="); /* b-user:acct-1 */
    assert_int_equal(requests_to(&l, before, "/status/202", &r), 1);
    assert_string_equal(header_of(r, "authorization"), "Bearer br-secret");
    assert_int_equal(requests_to(&l, before, "/status/203", &r), 1);
    assert_int_equal(strcasecmp(jstr(r, "query"), "api_key=q%2Bsecret%2F%3D"), 0);
    free_log(&l);
    clear_findings(f, 4);
    free(hdr), free(basic), free(bearer), free(query);
}

static void test_sigv4_checked_by_server(void **state)
{
    (void)state;
    NEED_SERVER();
    det *aws = new_det("t-aws", "/sts?Version=2011-06-15&Action=GetCallerIdentity", "aws-sigv4");
    aws->v.auth_password = "{{companion.secret_key}}";
    aws->v.aws_region = "us-east-1";
    aws->v.aws_service = "sts";
    aws->v.success_body_contains = "<Arn>";
    report_companion good = {.name = "secret_key",
                             .value = "KeyhogTestSecretKey/a8Xk2Lq9Zr4Tn7Wp1Yd+"};
    report_companion bad = {.name = "secret_key",
                            .value = "KeyhogTestSecretKey/a8Xk2Lq9Zr4Tn7Wp1Ye+"};
    report_finding f[] = {new_finding(aws, "KHTSKEYHOGTEST000001"),
                          new_finding(aws, "KHTSKEYHOGTEST000001"),
                          new_finding(aws, "KHTSKEYHOGTEST000002")};
    f[0].companions = &good;
    f[1].companions = &bad; /* same key id: verified once, as the first */
    f[2].companions = &good;
    f[0].companion_count = f[1].companion_count = f[2].companion_count = 1;
    size_t before = log_count();
    verify_one(f, 3);
    assert_string_equal(f[0].verify_status, "live");
    assert_string_equal(f[1].verify_status, "live");
    assert_string_equal(f[2].verify_status, "revoked");
    request_log l = read_log();
    const report_jvalue *r = NULL;
    assert_int_equal(requests_to(&l, before, "/sts", &r), 2);
    const char *auth = header_of(r, "authorization");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=KHTSKEYHOGTEST00000"));
    assert_non_null(strstr(auth, "/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, "
                                 "Signature="));
    assert_non_null(header_of(r, "x-amz-date"));
    free_log(&l);
    clear_findings(f, 3);
    free(aws);

    /* Without the companion there is nothing to sign: no request. */
    aws = new_det("t-aws", "/sts", "aws-sigv4");
    aws->v.auth_password = "{{companion.secret_key}}";
    report_finding g = new_finding(aws, "KHTSKEYHOGTEST000003");
    before = log_count();
    verify_one(&g, 1);
    assert_string_equal(g.verify_status, "unknown");
    assert_string_equal(g.verify_reason, "no companion 'secret_key' found near the secret");
    assert_int_equal(log_count(), before);
    clear_findings(&g, 1);
    free(aws);
}

static void test_guard_and_redirects(void **state)
{
    (void)state;
    NEED_SERVER();
    det *away = new_det("t-away", "/redirect/away", "bearer"),
        *local = new_det("t-local", "/redirect/local", "bearer"),
        *other = new_det("t-other", "/live", "bearer"),
        *inject = new_det("t-inject", "/live/{{match}}", "none");
    static char *elsewhere[] = {"example.com"};
    other->v.allowed_domains = elsewhere;
    /* a secret shaped to move the host lands in the path, encoded */
    snprintf(inject->url, sizeof inject->url, "https://127.0.0.1:%d/x{{match}}", srv.port);
    report_finding f[] = {new_finding(away, "a"), new_finding(local, "b"),
                          new_finding(other, "c"), new_finding(inject, "@evil.invalid/")};
    size_t before = log_count();
    verify_one(f, 4);
    assert_string_equal(f[0].verify_status, "unknown");
    assert_string_equal(f[0].verify_reason,
                        "redirect refused: host evil.invalid is not in allowed_domains");
    assert_string_equal(f[1].verify_status, "live");
    assert_string_equal(f[2].verify_status, "unknown");
    assert_string_equal(f[2].verify_reason, "host 127.0.0.1 is not in allowed_domains");
    assert_string_equal(f[3].verify_status, "unknown"); /* 404 on the local server */
    request_log l = read_log();
    assert_int_equal(requests_to(&l, before, "/redirect/away", NULL), 1);
    assert_int_equal(requests_to(&l, before, "/redirect/local", NULL), 1);
    assert_int_equal(requests_to(&l, before, "/live", NULL), 1); /* the redirect; not t-other */
    assert_int_equal(requests_to(&l, before, "/x%40evil.invalid%2F", NULL), 1);
    free_log(&l);
    clear_findings(f, 4);
    free(away), free(local), free(other), free(inject);
}

static void test_tls_is_verified(void **state)
{
    (void)state;
    NEED_SERVER();
    det *x = new_det("t-tls", "/live", "bearer");
    report_finding f = new_finding(x, "tls");
    verify_opts o;
    verify_opts_default(&o); /* no CA bundle: the self-signed certificate is not trusted */
    verify_session *s;
    assert_int_equal(verify_session_new(&o, &s, NULL), KH_OK);
    assert_int_equal(verify_findings(s, &f, 1), KH_OK);
    verify_session_free(s);
    assert_string_equal(f.verify_status, "unknown");
    assert_non_null(strstr(f.verify_reason, "TLS"));
    clear_findings(&f, 1);
    free(x);
}

static void test_retries_and_timeouts(void **state)
{
    (void)state;
    NEED_SERVER();
    det *flaky = new_det("t-flaky", "/flaky/one", "bearer"),
        *down = new_det("t-down", "/status/503", "bearer"),
        *capped = new_det("t-capped", "/retry-after/100", "bearer"),
        *hang = new_det("t-hang", "/hang", "bearer");
    report_finding f[] = {new_finding(flaky, "f"), new_finding(down, "d"),
                          new_finding(capped, "c"), new_finding(hang, "h")};
    size_t before = log_count();
    verify_session *s = session(0.5, 8, 1000);
    assert_int_equal(verify_findings(s, f, 4), KH_OK);
    verify_stats st;
    verify_session_stats(s, &st);
    verify_session_free(s);
    assert_string_equal(f[0].verify_status, "live");
    assert_string_equal(f[1].verify_status, "unknown");
    assert_string_equal(f[1].verify_reason, "server error (HTTP 503) after 3 attempts");
    assert_string_equal(f[2].verify_status, "unknown");
    assert_string_equal(f[2].verify_reason, "HTTP 429, Retry-After 100 s is over the 30 s cap");
    assert_string_equal(f[3].verify_status, "unknown");
    assert_string_equal(f[3].verify_reason, "timeout after 0.5 s");
    request_log l = read_log();
    assert_int_equal(requests_to(&l, before, "/flaky/one", NULL), 2);
    assert_int_equal(requests_to(&l, before, "/status/503", NULL), 3); /* 1 + 2 retries */
    assert_int_equal(requests_to(&l, before, "/retry-after/100", NULL), 1);
    free_log(&l);
    assert_int_equal(st.requests, 7);
    assert_int_equal(st.retries, 3);
    clear_findings(f, 4);
    free(flaky), free(down), free(capped), free(hang);
}

static void test_each_secret_once(void **state)
{
    (void)state;
    NEED_SERVER();
    det *x = new_det("t-once", "/status/200", "bearer");
    report_finding f[] = {new_finding(x, "s1"), new_finding(x, "s2"), new_finding(x, "s1"),
                          new_finding(x, "s1")};
    size_t before = log_count();
    verify_session *s = session(5, 8, 1000);
    assert_int_equal(verify_findings(s, f, 4), KH_OK);
    /* a second call in the same session asks nothing again */
    report_finding g = new_finding(x, "s2");
    assert_int_equal(verify_findings(s, &g, 1), KH_OK);
    verify_stats st;
    verify_session_stats(s, &st);
    verify_session_free(s);
    for (int i = 0; i < 4; i++)
        assert_string_equal(f[i].verify_status, "live");
    assert_string_equal(g.verify_status, "live");
    assert_int_equal(log_count() - before, 2);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.live, 5);
    clear_findings(f, 4);
    clear_findings(&g, 1);
    free(x);
}

static double max_inflight(const request_log *l, size_t from)
{
    double m = 0;
    for (size_t i = from; i < l->count; i++) {
        const report_jvalue *v = report_json_get(l->items[i], "inflight");
        if (v && v->number > m)
            m = v->number;
    }
    return m;
}

static void test_concurrency_limit(void **state)
{
    (void)state;
    NEED_SERVER();
    det *x = new_det("t-slow", "/slow", "bearer");
    char name[8][16];
    report_finding f[8];
    for (int i = 0; i < 8; i++) {
        snprintf(name[i], sizeof name[i], "c%d", i);
        f[i] = new_finding(x, name[i]);
    }
    size_t before = log_count();
    verify_session *s = session(5, 3, 1000);
    assert_int_equal(verify_findings(s, f, 8), KH_OK);
    verify_session_free(s);
    request_log l = read_log();
    assert_int_equal(l.count - before, 8);
    /* 3 at a time: the server never saw more, and did see that many */
    assert_int_equal((int)max_inflight(&l, before), 3);
    free_log(&l);
    clear_findings(f, 8);
    free(x);
}

static void test_rate_limit_per_host(void **state)
{
    (void)state;
    NEED_SERVER();
    det *x = new_det("t-rate", "/live", "bearer");
    report_finding f[6];
    char name[6][16];
    for (int i = 0; i < 6; i++) {
        snprintf(name[i], sizeof name[i], "r%d", i);
        f[i] = new_finding(x, name[i]);
    }
    size_t before = log_count();
    verify_session *s = session(5, 8, 10); /* 10 per second: 0.1 s apart */
    assert_int_equal(verify_findings(s, f, 6), KH_OK);
    verify_session_free(s);
    request_log l = read_log();
    assert_int_equal(l.count - before, 6);
    double first = report_json_get(l.items[before], "time")->number;
    double last = report_json_get(l.items[l.count - 1], "time")->number;
    /* five gaps of 0.1 s; some slack for arrival jitter */
    assert_true(last - first >= 0.42);
    free_log(&l);
    clear_findings(f, 6);
    free(x);
}

static void test_cache_file(void **state)
{
    (void)state;
    NEED_SERVER();
    char path[160];
    snprintf(path, sizeof path, "%s/verify-cache.json", srv.dir);
    det *live = new_det("t-cl", "/live", "bearer"), *odd = new_det("t-co", "/status/404", "bearer");
    report_finding f[] = {new_finding(live, "cache-a"), new_finding(odd, "cache-b")};
    verify_opts o;
    verify_opts_default(&o);
    o.ca_bundle = srv.cert;
    o.cache_path = path;
    kh_error err = {0};
    size_t before = log_count();
    verify_session *s;
    assert_int_equal(verify_session_new(&o, &s, &err), KH_OK);
    assert_int_equal(verify_findings(s, f, 2), KH_OK);
    assert_int_equal(verify_session_save(s, &err), KH_OK);
    verify_session_free(s);
    assert_int_equal(log_count() - before, 2);
    clear_findings(f, 2);

    /* Next run: the live one comes from the file, the unknown is asked again. */
    f[0] = new_finding(live, "cache-a");
    f[1] = new_finding(odd, "cache-b");
    before = log_count();
    assert_int_equal(verify_session_new(&o, &s, &err), KH_OK);
    assert_int_equal(verify_findings(s, f, 2), KH_OK);
    verify_stats st;
    verify_session_stats(s, &st);
    verify_session_free(s);
    assert_string_equal(f[0].verify_status, "live");
    assert_string_equal(f[0].verify_reason, "HTTP 200 (cached)");
    assert_string_equal(f[1].verify_status, "unknown");
    assert_int_equal(st.cached, 1);
    assert_int_equal(log_count() - before, 1);
    clear_findings(f, 2);

    /* With a TTL of zero seconds everything is asked again. */
    o.cache_ttl = 0;
    sleep(1);
    f[0] = new_finding(live, "cache-a");
    before = log_count();
    assert_int_equal(verify_session_new(&o, &s, &err), KH_OK);
    assert_int_equal(verify_findings(s, f, 1), KH_OK);
    verify_session_free(s);
    assert_string_equal(f[0].verify_reason, "HTTP 200");
    assert_int_equal(log_count() - before, 1);
    clear_findings(f, 1);
    free(live), free(odd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_auth_kinds_as_received),
        cmocka_unit_test(test_sigv4_checked_by_server),
        cmocka_unit_test(test_guard_and_redirects),
        cmocka_unit_test(test_tls_is_verified),
        cmocka_unit_test(test_retries_and_timeouts),
        cmocka_unit_test(test_each_secret_once),
        cmocka_unit_test(test_concurrency_limit),
        cmocka_unit_test(test_rate_limit_per_host),
        cmocka_unit_test(test_cache_file),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
