/*
 * test_sigv4.c - verify_sigv4_sign against AWS's published Signature
 * Version 4 test suite (aws-sig-v4-test-suite: the example credentials
 * AKIDEXAMPLE, region us-east-1, service "service", 2015-08-30 12:36:00Z,
 * host example.amazonaws.com).  Each case names the suite's directory; the
 * expected signatures and canonical requests are the suite's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "verify/verify.h"

#define SCOPE "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"

static verify_sigv4_request suite_request(const char *method, const char *path,
                                          const char *query)
{
    verify_sigv4_request r = {
        .method = method,
        .host = "example.amazonaws.com",
        .path = path,
        .query = query,
        .access_key = "AKIDEXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .region = "us-east-1",
        .service = "service",
        .amz_date = "20150830T123600Z",
    };
    return r;
}

static void expect_signature(const verify_sigv4_request *r, const char *signed_headers,
                             const char *signature)
{
    char *auth = NULL;
    assert_int_equal(verify_sigv4_sign(r, &auth, NULL), KH_OK);
    char want[512];
    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=" SCOPE ", SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    assert_string_equal(auth, want);
    free(auth);
}

static void test_get_vanilla(void **state)
{
    (void)state;
    verify_sigv4_request r = suite_request("GET", "/", NULL);
    char *auth = NULL, *canon = NULL;
    assert_int_equal(verify_sigv4_sign(&r, &auth, &canon), KH_OK);
    assert_string_equal(canon, "GET\n/\n\n"
                               "host:example.amazonaws.com\n"
                               "x-amz-date:20150830T123600Z\n\n"
                               "host;x-amz-date\n"
                               "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=" SCOPE
                              ", SignedHeaders=host;x-amz-date, "
                              "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    free(auth);
    free(canon);
}

static void test_get_vanilla_query_order_key_case(void **state)
{
    (void)state;
    verify_sigv4_request r = suite_request("GET", "/", "Param2=value2&Param1=value1");
    char *auth = NULL, *canon = NULL;
    assert_int_equal(verify_sigv4_sign(&r, &auth, &canon), KH_OK);
    assert_non_null(strstr(canon, "\nParam1=value1&Param2=value2\n"));
    free(auth);
    free(canon);
    expect_signature(&r, "host;x-amz-date",
                     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void test_get_utf8(void **state)
{
    (void)state;
    /* The suite's path is the raw character U+1234; its canonical form is
     * /%E1%88%B4.  The already-encoded form must sign the same. */
    verify_sigv4_request raw = suite_request("GET", "/\xe1\x88\xb4", NULL);
    expect_signature(&raw, "host;x-amz-date",
                     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
    verify_sigv4_request enc = suite_request("GET", "/%e1%88%b4", NULL);
    expect_signature(&enc, "host;x-amz-date",
                     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

static void test_get_space(void **state)
{
    (void)state;
    verify_sigv4_request r = suite_request("GET", "/example space/", NULL);
    expect_signature(&r, "host;x-amz-date",
                     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
}

static void test_post_vanilla(void **state)
{
    (void)state;
    verify_sigv4_request r = suite_request("POST", "/", "");
    expect_signature(&r, "host;x-amz-date",
                     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

static void test_post_x_www_form_urlencoded(void **state)
{
    (void)state;
    spec_header h = {.name = "Content-Type", .value = "application/x-www-form-urlencoded"};
    verify_sigv4_request r = suite_request("POST", "/", NULL);
    r.headers = &h;
    r.header_count = 1;
    r.body = "Param1=value1";
    r.body_len = 13;
    char *auth = NULL, *canon = NULL;
    assert_int_equal(verify_sigv4_sign(&r, &auth, &canon), KH_OK);
    assert_string_equal(canon,
                        "POST\n/\n\n"
                        "content-type:application/x-www-form-urlencoded\n"
                        "host:example.amazonaws.com\n"
                        "x-amz-date:20150830T123600Z\n\n"
                        "content-type;host;x-amz-date\n"
                        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    free(auth);
    free(canon);
    expect_signature(&r, "content-type;host;x-amz-date",
                     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

/* The suite's get-header-value-trim canonical form: blanks trimmed and
 * folded, names lower-cased and sorted. */
static void test_header_values_are_trimmed_and_sorted(void **state)
{
    (void)state;
    spec_header h[] = {{.name = "My-Header2", .value = "\"a   b   c\""},
                       {.name = "My-Header1", .value = " value1"}};
    verify_sigv4_request r = suite_request("GET", "/", NULL);
    r.headers = h;
    r.header_count = 2;
    char *auth = NULL, *canon = NULL;
    assert_int_equal(verify_sigv4_sign(&r, &auth, &canon), KH_OK);
    assert_non_null(strstr(canon, "host:example.amazonaws.com\nmy-header1:value1\n"
                                  "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
                                  "host;my-header1;my-header2;x-amz-date\n"));
    free(auth);
    free(canon);
}

static void test_bad_inputs_are_refused(void **state)
{
    (void)state;
    char *auth = (char *)1;
    verify_sigv4_request r = suite_request("GET", "/", NULL);
    r.amz_date = "2015-08-30";
    assert_int_equal(verify_sigv4_sign(&r, &auth, NULL), KH_EINVAL);
    assert_null(auth);
    r = suite_request("GET", "/", NULL);
    spec_header h = {.name = "X-Injected", .value = "a\r\nHost: evil.example"};
    r.headers = &h;
    r.header_count = 1;
    assert_int_equal(verify_sigv4_sign(&r, &auth, NULL), KH_EINVAL);
    assert_null(auth);
    r = suite_request("GET", "/", NULL);
    r.secret_key = NULL;
    assert_int_equal(verify_sigv4_sign(&r, &auth, NULL), KH_EINVAL);
}

/* A different secret must change the signature: the key derivation is used. */
static void test_secret_changes_signature(void **state)
{
    (void)state;
    verify_sigv4_request r = suite_request("GET", "/", NULL);
    r.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ";
    char *auth = NULL;
    assert_int_equal(verify_sigv4_sign(&r, &auth, NULL), KH_OK);
    assert_null(strstr(auth, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
    free(auth);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_vanilla),
        cmocka_unit_test(test_get_vanilla_query_order_key_case),
        cmocka_unit_test(test_get_utf8),
        cmocka_unit_test(test_get_space),
        cmocka_unit_test(test_post_vanilla),
        cmocka_unit_test(test_post_x_www_form_urlencoded),
        cmocka_unit_test(test_header_values_are_trimmed_and_sorted),
        cmocka_unit_test(test_bad_inputs_are_refused),
        cmocka_unit_test(test_secret_changes_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
