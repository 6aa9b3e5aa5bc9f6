/*
 * test_rules.c - the parts of verification that need no network: template
 * expansion, the allowed-domains guard on parsed URLs, and how an answer
 * becomes live / revoked / unknown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "verify/verify.h"

static report_finding finding(const char *secret, report_companion *c, size_t nc)
{
    report_finding f = {0};
    f.secret = (char *)secret;
    f.secret_len = strlen(secret);
    f.companions = c;
    f.companion_count = nc;
    return f;
}

static void test_expand_match_and_companion(void **state)
{
    (void)state;
    report_companion c[] = {{.name = "secret_key", .value = "s3cr/t+"}};
    report_finding f = finding("AKIA123", c, 1);
    char why[200], *out;
    assert_int_equal(verify_expand("id={{match}} key={{ companion.secret_key }}!", &f, 0, &out,
                                   why, sizeof why),
                     0);
    assert_string_equal(out, "id=AKIA123 key=s3cr/t+!");
    free(out);
    assert_int_equal(verify_expand("no placeholders", &f, 0, &out, why, sizeof why), 0);
    assert_string_equal(out, "no placeholders");
    free(out);
}

static void test_expand_url_encodes_values_only(void **state)
{
    (void)state;
    report_finding f = finding("a@evil.example/#?x= y", NULL, 0);
    char why[200], *out;
    assert_int_equal(verify_expand("https://api.example.com/k/{{match}}?a=b", &f, 1, &out, why,
                                   sizeof why),
                     0);
    assert_string_equal(out, "https://api.example.com/k/a%40evil.example%2F%23%3Fx%3D%20y?a=b");
    free(out);
}

static void test_expand_errors(void **state)
{
    (void)state;
    report_finding f = finding("x", NULL, 0);
    char why[200], *out = (char *)1;
    assert_int_equal(verify_expand("{{companion.secret}}", &f, 0, &out, why, sizeof why), -1);
    assert_null(out);
    assert_non_null(strstr(why, "no companion 'secret'"));
    assert_int_equal(verify_expand("{{env.HOME}}", &f, 0, &out, why, sizeof why), -1);
    assert_non_null(strstr(why, "unknown placeholder"));
    assert_int_equal(verify_expand("{{match", &f, 0, &out, why, sizeof why), -1);
    /* Output is bounded whatever the secret's size. */
    char *big = malloc(20000);
    memset(big, 'a', 19999);
    big[19999] = 0;
    report_finding g = finding(big, NULL, 0);
    assert_int_equal(verify_expand("{{match}}", &g, 0, &out, why, sizeof why), -1);
    assert_non_null(strstr(why, "16 KiB"));
    free(big);
}

static void test_host_allowed(void **state)
{
    (void)state;
    char *d[] = {"example.com", "api.other.io."};
    assert_true(verify_host_allowed("example.com", d, 2));
    assert_true(verify_host_allowed("API.Example.COM", d, 2));
    assert_true(verify_host_allowed("a.b.example.com.", d, 2));
    assert_true(verify_host_allowed("api.other.io", d, 2));
    assert_false(verify_host_allowed("other.io", d, 2));
    assert_false(verify_host_allowed("badexample.com", d, 2));
    assert_false(verify_host_allowed("example.com.evil.net", d, 2));
    assert_false(verify_host_allowed("com", d, 2));
    assert_false(verify_host_allowed("", d, 2));
    assert_false(verify_host_allowed("example.com", d, 0));
}

static void expect_refused(const char *url, const char *why_part)
{
    char *d[] = {"example.com"};
    char why[200] = "", *norm = (char *)1, *host = (char *)1;
    assert_int_equal(verify_check_url(url, d, 1, &norm, &host, why, sizeof why), -1);
    assert_null(norm);
    assert_null(host);
    if (!strstr(why, why_part))
        fail_msg("%s: reason '%s' lacks '%s'", url, why, why_part);
}

static void test_check_url(void **state)
{
    (void)state;
    char *d[] = {"example.com"};
    char why[200], *norm, *host;
    assert_int_equal(verify_check_url("https://API.example.com:8443/v1/me?x=1", d, 1, &norm,
                                      &host, why, sizeof why),
                     0);
    assert_string_equal(host, "api.example.com");
    assert_string_equal(norm, "https://API.example.com:8443/v1/me?x=1");
    free(norm);
    free(host);
    expect_refused("http://example.com/", "not https");
    expect_refused("https://example.com.evil.net/", "not in allowed_domains");
    expect_refused("https://evil.net/?u=https://example.com", "not in allowed_domains");
    expect_refused("https://example.com@evil.net/", "user info");
    expect_refused("https://evil.net\\@example.com/", "");
    expect_refused("file:///etc/passwd", "not https");
    expect_refused("not a url", "");
}

static spec_verify rules(int *ok, size_t nok, const char *contains, const char *field,
                         const char *value)
{
    spec_verify v = {0};
    v.success_status = ok;
    v.success_status_count = nok;
    v.success_body_contains = (char *)contains;
    v.success_json_field = (char *)field;
    v.success_json_value = (char *)value;
    return v;
}

static size_t len_of(const char *s)
{
    return s ? strlen(s) : 0;
}

#define CLASSIFY(v, status, body)                                                          \
    verify_classify(&(v), (status), (body), len_of(body), reason, sizeof reason)

static void test_classify_status_rules(void **state)
{
    (void)state;
    char reason[200];
    spec_verify v = rules(NULL, 0, NULL, NULL, NULL);
    assert_string_equal(CLASSIFY(v, 200, "{}"), "live");
    assert_string_equal(reason, "HTTP 200");
    assert_string_equal(CLASSIFY(v, 204, NULL), "live");
    assert_string_equal(CLASSIFY(v, 401, "no"), "revoked");
    assert_string_equal(reason, "HTTP 401");
    assert_string_equal(CLASSIFY(v, 403, "no"), "revoked");
    assert_string_equal(CLASSIFY(v, 404, "no"), "unknown");
    assert_string_equal(reason, "unexpected HTTP 404");
    assert_string_equal(CLASSIFY(v, 429, ""), "unknown");
    assert_non_null(strstr(reason, "rate limited"));
    assert_string_equal(CLASSIFY(v, 502, ""), "unknown");
    assert_string_equal(CLASSIFY(v, 0, NULL), "unknown");

    int ok[] = {200}, gone[] = {404};
    v = rules(ok, 1, NULL, NULL, NULL);
    v.revoked_status = gone;
    v.revoked_status_count = 1;
    assert_string_equal(CLASSIFY(v, 201, ""), "unknown");
    assert_string_equal(CLASSIFY(v, 404, ""), "revoked");
    assert_string_equal(CLASSIFY(v, 401, ""), "unknown"); /* not in this detector's list */
}

static void test_classify_body_rules(void **state)
{
    (void)state;
    char reason[200];
    spec_verify v = rules(NULL, 0, "\"login\"", NULL, NULL);
    assert_string_equal(CLASSIFY(v, 200, "{\"login\": \"me\"}"), "live");
    assert_string_equal(CLASSIFY(v, 200, "{\"error\": 1}"), "revoked");
    assert_non_null(strstr(reason, "body lacks"));

    v = rules(NULL, 0, NULL, "ok", "true");
    assert_string_equal(CLASSIFY(v, 200, "{\"ok\": true, \"user\": \"u\"}"), "live");
    assert_string_equal(reason, "HTTP 200, ok is true");
    assert_string_equal(CLASSIFY(v, 200, "{\"ok\": false, \"error\": \"invalid_auth\"}"),
                        "revoked");
    assert_string_equal(reason, "HTTP 200, ok is false");
    assert_string_equal(CLASSIFY(v, 200, "<html>"), "unknown");
    assert_string_equal(reason, "HTTP 200, body is not JSON");

    v = rules(NULL, 0, NULL, "data.items.1.id", "7");
    assert_string_equal(CLASSIFY(v, 200, "{\"data\":{\"items\":[{\"id\":1},{\"id\":7.0}]}}"),
                        "live");
    assert_string_equal(CLASSIFY(v, 200, "{\"data\":{\"items\":[{\"id\":1}]}}"), "revoked");

    v = rules(NULL, 0, NULL, "account.name", NULL); /* merely present */
    assert_string_equal(CLASSIFY(v, 200, "{\"account\":{\"name\":\"x\"}}"), "live");
    assert_string_equal(CLASSIFY(v, 200, "{\"account\":{}}"), "revoked");
    assert_string_equal(CLASSIFY(v, 401, "{\"account\":{\"name\":\"x\"}}"), "revoked");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_match_and_companion),
        cmocka_unit_test(test_expand_url_encodes_values_only),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_host_allowed),
        cmocka_unit_test(test_check_url),
        cmocka_unit_test(test_classify_status_rules),
        cmocka_unit_test(test_classify_body_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
