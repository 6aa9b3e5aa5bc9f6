/*
 * test_spec.c - detector files: every section, defaults, each required key,
 * type and value errors with their file:line:col, regex errors naming the
 * detector, unknown-key warnings, sets (merge, remove, find), directory
 * loading order and limits, and the embedded set.
 *
 * Fixtures are in tests/data/spec/ (read relative to the repository root,
 * or KH_TEST_DATA); entries git cannot hold (fifos, oversized files) are
 * made in a temporary directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyhog.h"
#include "spec/spec.h"

/* This binary's own embedded set (the library's comes from detectors/). */
static const char embedded_one[] = "[detector]\nid = \"emb-one\"\nname = \"Embedded one\"\n"
                                   "service = \"emb\"\nseverity = \"low\"\n"
                                   "[[detector.patterns]]\nregex = 'emb1_[0-9]{6}'\n";
static const char embedded_two[] = "[detector]\nid = \"emb-two\"\nname = \"Embedded two\"\n"
                                   "service = \"emb\"\nseverity = \"high\"\n"
                                   "[[detector.patterns]]\nregex = 'emb2_[0-9]{6}'\n";
const spec_embedded_file spec_embedded_files[] = {
    {"emb-one.toml", embedded_one, sizeof embedded_one - 1},
    {"emb-two.toml", embedded_two, sizeof embedded_two - 1},
    {0, 0, 0},
};
const size_t spec_embedded_count = 2;

static const char *data_path(char *buf, size_t len, const char *rel)
{
    const char *d = getenv("KH_TEST_DATA");
    snprintf(buf, len, "%s/spec/%s", d ? d : "tests/data", rel);
    return buf;
}

static const spec_detector *parse_one(const char *doc, kh_detectors **set)
{
    kh_error err = {0};
    int rc = kh_detectors_parse(doc, strlen(doc), "t.toml", set, &err);
    if (rc != KH_OK)
        fail_msg("unexpected error %d: %s", rc, err.message);
    assert_int_equal(kh_detectors_count(*set), 1);
    return spec_from_info(kh_detectors_get(*set, 0));
}

static void expect_error(const char *doc, int code, const char *message)
{
    kh_detectors *set = (kh_detectors *)&set; /* must come back NULL */
    kh_error err = {0};
    int rc = kh_detectors_parse(doc, strlen(doc), "t.toml", &set, &err);
    if (rc == KH_OK)
        fail_msg("parsed, but should fail with: %s", message);
    assert_null(set);
    assert_int_equal(err.code, rc);
    if (rc != code || strcmp(err.message, message))
        fail_msg("\n  want %d %s\n  got  %d %s", code, message, rc, err.message);
}

#define HEAD                                                                                  \
    "[detector]\nid = \"t-one\"\nname = \"T\"\nservice = \"svc\"\nseverity = \"high\"\n"
#define PATTERN "[[detector.patterns]]\nregex = 't1_[0-9]{8}'\n"

/* ---- whole detectors ---------------------------------------------------- */

static void test_full_detector(void **state)
{
    (void)state;
    char path[512];
    kh_detectors *set = NULL;
    kh_error err = {0};
    int rc = kh_detectors_load(data_path(path, sizeof path, "full-example.toml"), &set, &err);
    if (rc != KH_OK)
        fail_msg("%s", err.message);
    assert_string_equal(kh_detectors_warnings(set), "");
    const kh_detector_info *info = kh_detectors_get(set, 0);
    const spec_detector *d = spec_from_info(info);
    assert_ptr_equal(&d->info, info);
    assert_string_equal(d->id, "full-example");
    assert_string_equal(d->name, "Full Example Token");
    assert_string_equal(d->service, "example");
    assert_string_equal(d->description, "A made-up token that uses every field.");
    assert_int_equal(d->severity, KH_SEVERITY_CRITICAL);
    assert_int_equal(d->keyword_count, 2);
    assert_string_equal(d->keywords[0], "fex_");
    assert_string_equal(d->keywords[1], "full-example");
    assert_int_equal(d->pattern_count, 2);
    assert_string_equal(d->patterns[0].regex, "\\b(fex_[A-Za-z0-9]{30})\\b");
    assert_int_equal(d->patterns[0].group, 1);
    assert_string_equal(d->patterns[1].regex,
                        "(?i:full[_-]?example\\s*=\\s*)\"([a-f0-9]{40})\"");
    assert_int_equal(d->shape.exact_length, 0);
    assert_int_equal(d->shape.min_length, 34);
    assert_int_equal(d->shape.max_length, 40);
    assert_string_equal(d->shape.charset, "base62");
    assert_string_equal(d->shape.prefix, "fex_");
    assert_string_equal(d->validate.checksum, "example-crc32");
    assert_true(d->validate.min_entropy == 3.5);
    assert_int_equal(d->validate.reject_placeholders, 0);
    assert_int_equal(d->companion_count, 2);
    assert_string_equal(d->companions[0].name, "secret");
    assert_int_equal(d->companions[0].group, 1);
    assert_int_equal(d->companions[0].within_lines, 3);
    assert_int_equal(d->companions[0].required, 1);
    assert_string_equal(d->companions[1].name, "region");
    assert_int_equal(d->companions[1].group, 0);
    assert_int_equal(d->companions[1].within_lines, 5);
    assert_int_equal(d->companions[1].required, 0);

    const spec_verify *v = d->verify;
    assert_non_null(v);
    assert_string_equal(v->method, "POST");
    assert_string_equal(v->url, "https://api.example.com/v2/check?region={{companion.region}}");
    assert_string_equal(v->body, "{\"token\": \"{{match}}\"}");
    assert_int_equal(v->allowed_domain_count, 2);
    assert_string_equal(v->allowed_domains[1], "eu.api.example.com");
    assert_string_equal(v->auth_type, "basic");
    assert_null(v->auth_name);
    assert_string_equal(v->auth_username, "{{match}}");
    assert_string_equal(v->auth_password, "{{companion.secret}}");
    assert_int_equal(v->header_count, 2);
    assert_string_equal(v->headers[0].name, "Accept");
    assert_string_equal(v->headers[0].value, "application/json");
    assert_string_equal(v->headers[1].name, "X-Client");
    assert_string_equal(v->headers[1].value, "keyhog");
    assert_int_equal(v->success_status_count, 2);
    assert_int_equal(v->success_status[0], 200);
    assert_int_equal(v->success_status[1], 201);
    assert_string_equal(v->success_body_contains, "\"active\"");
    assert_string_equal(v->success_json_field, "data.state");
    assert_string_equal(v->success_json_value, "ok");
    assert_int_equal(v->revoked_status_count, 1);
    assert_int_equal(v->revoked_status[0], 410);

    /* Three entries, one with both kinds: four tests in file order. */
    assert_int_equal(d->test_count, 4);
    assert_int_equal(d->tests[0].positive, 1);
    assert_string_equal(d->tests[0].expect, "fex_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC");
    assert_int_equal(d->tests[1].positive, 1);
    assert_null(d->tests[1].expect);
    assert_int_equal(d->tests[2].positive, 0);
    assert_string_equal(d->tests[2].text, "FEX=fex_short");
    assert_int_equal(d->tests[3].positive, 0);

    /* The public view. */
    assert_string_equal(info->id, "full-example");
    assert_string_equal(info->name, "Full Example Token");
    assert_string_equal(info->service, "example");
    assert_int_equal(info->severity, KH_SEVERITY_CRITICAL);
    assert_int_equal(info->keyword_count, 2);
    assert_string_equal(info->keywords[1], "full-example");
    assert_int_equal(info->pattern_count, 2);
    assert_int_equal(info->test_count, 4);
    assert_int_equal(info->has_verify, 1);
    assert_string_equal(info->origin, path);
    kh_detectors_free(set);
}

static void test_defaults(void **state)
{
    (void)state;
    char path[512];
    kh_detectors *set = NULL;
    kh_error err = {0};
    assert_int_equal(kh_detectors_load(data_path(path, sizeof path, "minimal.toml"), &set, &err),
                     KH_OK);
    const spec_detector *d = spec_from_info(kh_detectors_get(set, 0));
    assert_int_equal(d->severity, KH_SEVERITY_LOW); /* "Low": case does not matter */
    assert_null(d->description);
    assert_int_equal(d->keyword_count, 0);
    assert_int_equal(d->info.keyword_count, 0);
    assert_int_equal(d->patterns[0].group, 0);
    assert_int_equal(d->shape.exact_length, 0);
    assert_int_equal(d->shape.min_length, 0);
    assert_int_equal(d->shape.max_length, 0);
    assert_null(d->shape.charset);
    assert_null(d->shape.prefix);
    assert_null(d->validate.checksum);
    assert_true(d->validate.min_entropy == 0);
    assert_int_equal(d->validate.reject_placeholders, 1);
    assert_int_equal(d->companions[0].group, 1); /* the regex has a group */
    assert_int_equal(d->companions[1].group, 0); /* it has none */
    assert_int_equal(d->companions[0].within_lines, 5);
    assert_int_equal(d->companions[0].required, 0);
    const spec_verify *v = d->verify;
    assert_string_equal(v->method, "GET");
    assert_null(v->body);
    assert_null(v->auth_type);
    assert_int_equal(v->header_count, 0);
    assert_int_equal(v->success_status_count, 1);
    assert_int_equal(v->success_status[0], 200);
    assert_int_equal(v->revoked_status_count, 2);
    assert_int_equal(v->revoked_status[0], 401);
    assert_int_equal(v->revoked_status[1], 403);
    assert_int_equal(d->test_count, 0);
    assert_int_equal(d->info.has_verify, 1);
    kh_detectors_free(set);

    /* No verify section: no verify struct. */
    const spec_detector *plain = parse_one(HEAD PATTERN, &set);
    assert_null(plain->verify);
    assert_int_equal(plain->info.has_verify, 0);
    assert_string_equal(plain->info.origin, "t.toml");
    kh_detectors_free(set);
}

/* ---- errors ------------------------------------------------------------- */

static void test_required_keys(void **state)
{
    (void)state;
    expect_error("[detector]\nname = \"T\"\nservice = \"s\"\nseverity = \"high\"\n" PATTERN,
                 KH_EPARSE, "t.toml:1:2: detector.id: missing required key");
    expect_error("[detector]\nid = \"t-one\"\nservice = \"s\"\nseverity = \"high\"\n" PATTERN,
                 KH_EPARSE, "t.toml:1:2: detector.name: missing required key");
    expect_error("[detector]\nid = \"t-one\"\nname = \"T\"\nseverity = \"high\"\n" PATTERN,
                 KH_EPARSE, "t.toml:1:2: detector.service: missing required key");
    expect_error("[detector]\nid = \"t-one\"\nname = \"T\"\nservice = \"s\"\n" PATTERN, KH_EPARSE,
                 "t.toml:1:2: detector.severity: missing required key");
    expect_error(HEAD, KH_EPARSE,
                 "t.toml:1:2: detector.patterns: at least one [[detector.patterns]] is required");
    expect_error(HEAD "[[detector.patterns]]\ngroup = 0\n", KH_EPARSE,
                 "t.toml:6:12: detector.patterns[1].regex: missing required key");
    expect_error(HEAD PATTERN "[[detector.patterns]]\nregex = 'x[0-9]'\n"
                              "[[detector.patterns]]\n",
                 KH_EPARSE, "t.toml:10:12: detector.patterns[3].regex: missing required key");
    expect_error(HEAD PATTERN "[[detector.companions]]\nregex = 's=([a-z]+)'\n", KH_EPARSE,
                 "t.toml:8:12: detector.companions[1].name: missing required key");
    expect_error(HEAD PATTERN "[[detector.companions]]\nname = \"s\"\n", KH_EPARSE,
                 "t.toml:8:12: detector.companions[1].regex: missing required key");
    expect_error(HEAD PATTERN "[detector.verify]\nallowed_domains = [\"x.com\"]\n", KH_EPARSE,
                 "t.toml:8:11: detector.verify.url: missing required key");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\n", KH_EPARSE,
                 "t.toml:8:11: detector.verify.allowed_domains: missing required key");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\n"
                              "allowed_domains = []\n",
                 KH_EPARSE, "t.toml:10:1: detector.verify.allowed_domains: must not be empty");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\n"
                              "allowed_domains = [\"x.com\"]\n[detector.verify.auth]\n"
                              "name = \"X\"\n",
                 KH_EPARSE, "t.toml:11:18: detector.verify.auth.type: missing required key");
    expect_error("# nothing here\n", KH_EPARSE, "t.toml:1:1: detector: missing [detector] table");
    expect_error("[detector.patterns]\nregex = 'a'\n", KH_EPARSE,
                 "t.toml:1:2: detector.id: missing required key");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("detector = 1\n", KH_EPARSE,
                 "t.toml:1:1: detector: expected a table, got integer");
    expect_error("[detector]\nid = 7\n", KH_EPARSE,
                 "t.toml:2:1: detector.id: expected a string, got integer");
    expect_error("[detector]\nid = \"t-one\"\nname = [\"T\"]\n", KH_EPARSE,
                 "t.toml:3:1: detector.name: expected a string, got array");
    expect_error(HEAD "keywords = \"one\"\n" PATTERN, KH_EPARSE,
                 "t.toml:6:1: detector.keywords: expected an array of strings, got string");
    expect_error(HEAD "keywords = [\"one\", 2]\n" PATTERN, KH_EPARSE,
                 "t.toml:6:20: detector.keywords: element 2: expected a string, got integer");
    expect_error(HEAD "patterns = \"x\"\n", KH_EPARSE,
                 "t.toml:6:1: detector.patterns: expected [[detector.patterns]] tables, got "
                 "string");
    expect_error(HEAD "[[detector.patterns]]\nregex = 'a[0-9]'\ngroup = \"1\"\n", KH_EPARSE,
                 "t.toml:8:1: detector.patterns[1].group: expected an integer, got string");
    expect_error(HEAD PATTERN "[detector.credential_shape]\nexact_length = 4.0\n", KH_EPARSE,
                 "t.toml:9:1: detector.credential_shape.exact_length: expected an integer, got "
                 "float");
    expect_error(HEAD PATTERN "[detector.validate]\nmin_entropy = \"high\"\n", KH_EPARSE,
                 "t.toml:9:1: detector.validate.min_entropy: expected a number, got string");
    expect_error(HEAD PATTERN "[detector.validate]\nreject_placeholders = 1\n", KH_EPARSE,
                 "t.toml:9:1: detector.validate.reject_placeholders: expected a boolean, got "
                 "integer");
    expect_error(HEAD PATTERN "[[detector.companions]]\nname = \"s\"\nregex = 's=([a-z]+)'\n"
                              "required = \"yes\"\n",
                 KH_EPARSE,
                 "t.toml:11:1: detector.companions[1].required: expected a boolean, got string");
    expect_error(HEAD PATTERN "[detector]\n", KH_EPARSE,
                 "t.toml:8:2: table 'detector' is already defined");
    expect_error(HEAD "validate = 3\n" PATTERN, KH_EPARSE,
                 "t.toml:6:1: detector.validate: expected a table, got integer");
    expect_error(HEAD "[detector.patterns]\nregex = 'a[0-9]'\n", KH_EPARSE,
                 "t.toml:6:11: detector.patterns: expected [[detector.patterns]] tables, got "
                 "table");
}

static void test_invalid_values(void **state)
{
    (void)state;
    expect_error("[detector]\nid = \"Bad_Id\"\n", KH_EPARSE,
                 "t.toml:2:1: detector.id: 'Bad_Id' is not kebab-case (lower-case letters and "
                 "digits in words joined by single dashes)");
    expect_error("[detector]\nid = \"double--dash\"\n", KH_EPARSE,
                 "t.toml:2:1: detector.id: 'double--dash' is not kebab-case (lower-case letters "
                 "and digits in words joined by single dashes)");
    expect_error("[detector]\nid = \"trailing-\"\n", KH_EPARSE,
                 "t.toml:2:1: detector.id: 'trailing-' is not kebab-case (lower-case letters "
                 "and digits in words joined by single dashes)");
    expect_error("[detector]\nid = \"t-one\"\nname = \"T\"\nservice = \"s\"\n"
                 "severity = \"urgent\"\n" PATTERN,
                 KH_EPARSE,
                 "t.toml:5:1: detector.severity: 'urgent' is not one of critical, high, medium, "
                 "low, info");
    expect_error("[detector]\nid = \"t-one\"\nname = \"\"\n", KH_EPARSE,
                 "t.toml:3:1: detector.name: must not be empty");
    expect_error(HEAD "keywords = [\"\"]\n" PATTERN, KH_EPARSE,
                 "t.toml:6:13: detector.keywords: element 1: must be a non-empty string without "
                 "NUL characters");
    expect_error(HEAD "[[detector.patterns]]\nregex = 'a([0-9])'\ngroup = 2\n", KH_EPARSE,
                 "t.toml:8:1: detector.patterns[1].group: group 2 but the regex has 1 capture "
                 "group");
    expect_error(HEAD "[[detector.patterns]]\nregex = 'a[0-9]'\ngroup = -1\n", KH_EPARSE,
                 "t.toml:8:1: detector.patterns[1].group: -1 is out of range [0, 65535]");
    expect_error(HEAD "[[detector.patterns]]\nregex = \"a\\u0000b\"\n", KH_EPARSE,
                 "t.toml:7:1: detector.patterns[1].regex: must not contain NUL characters");
    expect_error(HEAD PATTERN "[detector.credential_shape]\ncharset = \"emoji\"\n", KH_EPARSE,
                 "t.toml:9:1: detector.credential_shape.charset: 'emoji' is not one of hex, "
                 "base62, base64, base64url, alnum, printable, base32, digits");
    expect_error(HEAD PATTERN "[detector.credential_shape]\nmin_length = 9\nmax_length = 8\n",
                 KH_EPARSE,
                 "t.toml:9:1: detector.credential_shape: min_length 9 is greater than "
                 "max_length 8");
    expect_error(HEAD PATTERN "[detector.validate]\nmin_entropy = 9.5\n", KH_EPARSE,
                 "t.toml:9:1: detector.validate.min_entropy: must be between 0 and 8 bits per "
                 "byte");
    expect_error(HEAD PATTERN "[[detector.companions]]\nname = \"s\"\nregex = 's=[a-z]+'\n"
                              "group = 1\n",
                 KH_EPARSE,
                 "t.toml:11:1: detector.companions[1].group: group 1 but the regex has 0 capture "
                 "groups");
    expect_error(HEAD PATTERN "[[detector.companions]]\nname = \"s\"\nregex = 's=[a-z]+'\n"
                              "[[detector.companions]]\nname = \"s\"\nregex = 'z=[a-z]+'\n",
                 KH_EPARSE,
                 "t.toml:12:1: detector.companions[2].name: duplicate companion name 's'");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\nmethod = \"get\"\n"
                              "allowed_domains = [\"x.com\"]\n",
                 KH_EPARSE,
                 "t.toml:10:1: detector.verify.method: 'get' is not an HTTP method in capitals");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\n"
                              "allowed_domains = [\"x.com\"]\n[detector.verify.auth]\n"
                              "type = \"magic\"\n",
                 KH_EPARSE,
                 "t.toml:12:1: detector.verify.auth.type: 'magic' is not one of header, bearer, "
                 "basic, query, aws-sigv4, none");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\n"
                              "allowed_domains = [\"x.com\"]\n[detector.verify.auth]\n"
                              "type = \"header\"\n",
                 KH_EPARSE,
                 "t.toml:11:18: detector.verify.auth.name: required when type is 'header'");
    expect_error(HEAD PATTERN "[detector.verify]\nurl = \"https://x.com/\"\n"
                              "allowed_domains = [\"x.com\"]\n[detector.verify.success]\n"
                              "status = [200, 99]\n",
                 KH_EPARSE,
                 "t.toml:12:16: detector.verify.success.status: expected HTTP status codes "
                 "(100-599)");
    expect_error(HEAD PATTERN "[[detector.tests]]\nexpect = \"x\"\n", KH_EPARSE,
                 "t.toml:9:1: detector.tests[1].expect: needs a test_positive to apply to");
    expect_error(HEAD PATTERN "[[detector.tests]]\ntest_positive = \"a\"\n[[detector.tests]]\n",
                 KH_EPARSE, "t.toml:10:12: detector.tests[2]: needs test_positive or test_negative");
}

static void test_regex_errors(void **state)
{
    (void)state;
    kh_error err = {0};
    kh_detectors *set = NULL;
    const char doc[] = HEAD PATTERN "[[detector.patterns]]\nregex = 'tok_([0-9]{8}'\n";
    int rc = kh_detectors_parse(doc, strlen(doc), "t.toml", &set, &err);
    assert_int_equal(rc, KH_EREGEX);
    assert_null(set);
    /* The id, the pattern's number, PCRE2's message and offset. */
    assert_non_null(strstr(err.message, "t.toml:9:1: detector.patterns[2].regex: "));
    assert_non_null(strstr(err.message, "detector t-one: pattern 2 does not compile: "));
    assert_non_null(strstr(err.message, "missing closing parenthesis"));
    assert_non_null(strstr(err.message, "at offset 13"));

    expect_error(HEAD "[[detector.patterns]]\nregex = '[0-9]*'\n", KH_EREGEX,
                 "t.toml:7:1: detector.patterns[1].regex: detector t-one: pattern 1 can match "
                 "the empty string, which would flood findings");
    expect_error(HEAD "[[detector.patterns]]\nregex = '(?:abc)?'\n", KH_EREGEX,
                 "t.toml:7:1: detector.patterns[1].regex: detector t-one: pattern 1 can match "
                 "the empty string, which would flood findings");
    set = NULL;
    const char comp[] = HEAD PATTERN "[[detector.companions]]\nname = \"secret\"\n"
                                     "regex = 's=(?<bad'\n";
    rc = kh_detectors_parse(comp, strlen(comp), "t.toml", &set, &err);
    assert_int_equal(rc, KH_EREGEX);
    assert_non_null(strstr(err.message, "t.toml:10:1: detector.companions[1].regex: detector "
                                        "t-one: companion 1 (secret) does not compile: "));
    expect_error(HEAD PATTERN "[[detector.companions]]\nname = \"s\"\nregex = 'x?'\n",
                 KH_EREGEX,
                 "t.toml:10:1: detector.companions[1].regex: detector t-one: companion 1 (s) "
                 "can match the empty string, which would flood findings");
}

static void test_toml_errors_pass_through(void **state)
{
    (void)state;
    expect_error("[detector]\nid = \"t-one\nname = \"T\"\n", KH_EPARSE,
                 "t.toml:2:6: unterminated string");
    expect_error("[detector]\nid = \"a\"\nid = \"b\"\n", KH_EPARSE,
                 "t.toml:3:1: duplicate key 'id'");
    char deep[400];
    strcpy(deep, "x = ");
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    expect_error(deep, KH_ELIMIT, "t.toml:1:69: nesting deeper than 64 levels");
}

/* ---- warnings -------------------------------------------------------------- */

static void test_unknown_key_warnings(void **state)
{
    (void)state;
    char path[512], want[4096];
    kh_detectors *set = NULL;
    kh_error err = {0};
    data_path(path, sizeof path, "unknown-keys.toml");
    assert_int_equal(kh_detectors_load(path, &set, &err), KH_OK);
    snprintf(want, sizeof want,
             "%s:16:2: unknown key 'extra' (ignored)\n"
             "%s:6:1: unknown key 'detector.colour' (ignored)\n"
             "%s:10:1: unknown key 'detector.patterns[1].flags' (ignored)\n"
             "%s:14:1: unknown key 'detector.validate.entropy_max' (ignored)\n",
             path, path, path, path);
    assert_string_equal(kh_detectors_warnings(set), want);
    const spec_detector *d = spec_from_info(kh_detectors_get(set, 0));
    assert_true(d->validate.min_entropy == 2.0); /* an integer is a fine number */
    kh_detectors_free(set);

    /* The file name should be the id. */
    data_path(path, sizeof path, "misnamed.toml");
    assert_int_equal(kh_detectors_load(path, &set, &err), KH_OK);
    snprintf(want, sizeof want,
             "%s: detector.id 'other-id' does not match the file name 'misnamed.toml'\n", path);
    assert_string_equal(kh_detectors_warnings(set), want);
    kh_detectors_free(set);
}

/* ---- sets ------------------------------------------------------------------ */

static const char *ids(const kh_detectors *set, char *buf, size_t len)
{
    buf[0] = 0;
    for (size_t i = 0; i < kh_detectors_count(set); i++) {
        strncat(buf, i ? "," : "", len - strlen(buf) - 1);
        strncat(buf, kh_detectors_get(set, i)->id, len - strlen(buf) - 1);
    }
    return buf;
}

static void test_directory_order(void **state)
{
    (void)state;
    char path[512], buf[256];
    kh_detectors *set = NULL;
    kh_error err = {0};
    assert_int_equal(kh_detectors_load(data_path(path, sizeof path, "dir"), &set, &err), KH_OK);
    assert_string_equal(ids(set, buf, sizeof buf), "alpha,bravo,charlie"); /* README ignored */
    assert_string_equal(kh_detectors_warnings(set), "");
    char origin[600];
    snprintf(origin, sizeof origin, "%s/bravo.toml", path);
    assert_string_equal(kh_detectors_find(set, "bravo")->origin, origin);
    kh_detectors_free(set);

    /* A trailing slash makes no double slash in origins. */
    strcat(path, "/");
    assert_int_equal(kh_detectors_load(path, &set, &err), KH_OK);
    assert_string_equal(kh_detectors_find(set, "bravo")->origin, origin);
    kh_detectors_free(set);
}

static void test_directory_bad_file(void **state)
{
    (void)state;
    char path[512], want[700];
    kh_detectors *set = (kh_detectors *)&set;
    kh_error err = {0};
    data_path(path, sizeof path, "bad-dir");
    assert_int_equal(kh_detectors_load(path, &set, &err), KH_EREGEX);
    assert_null(set);
    snprintf(want, sizeof want, "%s/b-broken.toml:8:1: detector.patterns[1].regex: detector broken:",
             path);
    assert_memory_equal(err.message, want, strlen(want));

    assert_int_equal(kh_detectors_load("/nonexistent/keyhog-detectors", &set, &err), KH_EIO);
    assert_string_equal(err.message, "/nonexistent/keyhog-detectors: No such file or directory");
    assert_int_equal(kh_detectors_load(NULL, &set, &err), KH_EINVAL);
    assert_int_equal(kh_detectors_load("/dev/null", &set, &err), KH_EINVAL);
}

static char *make_temp_dir(void)
{
    char *dir = strdup("/tmp/keyhog-spec-XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void remove_entry(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(remove(path), 0);
}

static void test_directory_special_entries(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[600], buf[256];
    write_file(dir, "b-one.toml", embedded_one, strlen(embedded_one));
    snprintf(path, sizeof path, "%s/a-sub.toml", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/c-fifo.toml", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(path, sizeof path, "%s/d-dangling.toml", dir);
    assert_int_equal(symlink("/nonexistent/x.toml", path), 0);
    write_file(dir, ".toml", "garbage", 7);
    kh_detectors *set = NULL;
    kh_error err = {0};
    assert_int_equal(kh_detectors_load(dir, &set, &err), KH_OK);
    assert_string_equal(ids(set, buf, sizeof buf), "emb-one");
    kh_detectors_free(set);

    /* Two files with one id: the later one (in name order) wins, with a warning. */
    write_file(dir, "e-again.toml", embedded_one, strlen(embedded_one));
    assert_int_equal(kh_detectors_load(dir, &set, &err), KH_OK);
    assert_int_equal(kh_detectors_count(set), 1);
    snprintf(path, sizeof path, "%s/e-again.toml", dir);
    assert_string_equal(kh_detectors_get(set, 0)->origin, path);
    assert_non_null(strstr(kh_detectors_warnings(set), "is also defined in"));
    kh_detectors_free(set);

    /* An empty directory is an empty set, not an error. */
    char *empty = make_temp_dir();
    assert_int_equal(kh_detectors_load(empty, &set, &err), KH_OK);
    assert_int_equal(kh_detectors_count(set), 0);
    kh_detectors_free(set);
    assert_int_equal(rmdir(empty), 0);
    free(empty);

    remove_entry(dir, "b-one.toml");
    remove_entry(dir, "a-sub.toml");
    remove_entry(dir, "c-fifo.toml");
    remove_entry(dir, "d-dangling.toml");
    remove_entry(dir, ".toml");
    remove_entry(dir, "e-again.toml");
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_file_size_limit(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    const size_t limit = 1u << 20;
    char *text = malloc(limit + 1);
    assert_non_null(text);
    /* Exactly 1 MiB: a valid detector padded with a comment, accepted. */
    size_t head = strlen(embedded_two);
    memcpy(text, embedded_two, head);
    text[head] = '#';
    memset(text + head + 1, 'x', limit - head - 2);
    text[limit - 1] = '\n';
    write_file(dir, "emb-two.toml", text, limit);
    kh_detectors *set = NULL;
    kh_error err = {0};
    assert_int_equal(kh_detectors_load(dir, &set, &err), KH_OK);
    assert_int_equal(kh_detectors_count(set), 1);
    kh_detectors_free(set);
    /* One byte more is refused, naming the file. */
    text[limit - 1] = 'x';
    text[limit] = '\n';
    write_file(dir, "emb-two.toml", text, limit + 1);
    assert_int_equal(kh_detectors_load(dir, &set, &err), KH_ELIMIT);
    assert_null(set);
    char want[700];
    snprintf(want, sizeof want, "%s/emb-two.toml: detector file is larger than 1048576 bytes",
             dir);
    assert_string_equal(err.message, want);
    remove_entry(dir, "emb-two.toml");
    assert_int_equal(rmdir(dir), 0);
    free(text);
    free(dir);
}

static void test_merge_override(void **state)
{
    (void)state;
    char path[512], buf[256];
    kh_detectors *base = NULL, *add = NULL;
    kh_error err = {0};
    assert_int_equal(kh_detectors_load(data_path(path, sizeof path, "dir"), &base, &err), KH_OK);
    assert_int_equal(kh_detectors_load(data_path(path, sizeof path, "override"), &add, &err),
                     KH_OK);
    assert_int_equal(kh_detectors_merge(base, add, &err), KH_OK);
    /* bravo replaced in place, delta appended. */
    assert_string_equal(ids(base, buf, sizeof buf), "alpha,bravo,charlie,delta");
    const kh_detector_info *b = kh_detectors_find(base, "bravo");
    assert_string_equal(b->name, "Bravo overridden");
    assert_int_equal(b->severity, KH_SEVERITY_CRITICAL);
    assert_string_equal(spec_from_info(b)->patterns[0].regex, "bravo_[A-Z]{12}");
    assert_int_equal(kh_detectors_count(add), 0);
    kh_detectors_free(add);

    /* Remove, find and get at the edges. */
    assert_int_equal(kh_detectors_remove(base, "charlie"), KH_OK);
    assert_string_equal(ids(base, buf, sizeof buf), "alpha,bravo,delta");
    assert_int_equal(kh_detectors_remove(base, "charlie"), KH_EINVAL);
    assert_int_equal(kh_detectors_remove(base, NULL), KH_EINVAL);
    assert_null(kh_detectors_find(base, "charlie"));
    assert_null(kh_detectors_find(base, NULL));
    assert_null(kh_detectors_get(base, 3));
    assert_non_null(kh_detectors_get(base, 2));
    assert_int_equal(kh_detectors_merge(base, NULL, &err), KH_EINVAL);
    assert_int_equal(kh_detectors_count(NULL), 0);
    assert_string_equal(kh_detectors_warnings(NULL), "");
    kh_detectors_free(base);
    kh_detectors_free(NULL);
}

static void test_set_primitives(void **state)
{
    (void)state;
    kh_detectors *set = spec_set_new();
    assert_non_null(set);
    assert_string_equal(kh_detectors_warnings(set), "");
    spec_set_warn(set, "first %d", 1);
    spec_set_warn(set, "second");
    spec_set_warn(NULL, "ignored");
    assert_string_equal(kh_detectors_warnings(set), "first 1\nsecond\n");
    /* Warnings are bounded, and say so once. */
    for (int i = 0; i < 100000; i++)
        spec_set_warn(set, "%0200d", i);
    const char *w = kh_detectors_warnings(set);
    assert_true(strlen(w) <= 256u * 1024);
    assert_non_null(strstr(w, "further warnings omitted\n"));
    assert_ptr_equal(strstr(w, "omitted"), w + strlen(w) - strlen("omitted\n"));

    spec_detector *d = NULL;
    kh_error err = {0};
    assert_int_equal(spec_detector_parse(embedded_one, strlen(embedded_one), "x", set, &d, &err),
                     KH_OK);
    assert_int_equal(spec_set_add(set, d, &err), KH_OK);
    assert_int_equal(spec_set_add(set, NULL, &err), KH_EINVAL);
    assert_int_equal(spec_detector_parse("", 0, "x", NULL, &d, &err), KH_EPARSE);
    assert_null(d);
    assert_string_equal(err.message, "x:1:1: detector: missing [detector] table");
    assert_int_equal(spec_detector_parse(NULL, 5, "x", NULL, &d, &err), KH_EINVAL);
    spec_detector_free(NULL);
    assert_int_equal(kh_detectors_count(set), 1);
    kh_detectors_free(set);
    assert_int_equal(kh_error_set(NULL, KH_EIO, "x"), KH_EIO);
    assert_int_equal(kh_error_set(&err, KH_ELIMIT, "n=%d", 5), KH_ELIMIT);
    assert_int_equal(err.code, KH_ELIMIT);
    assert_string_equal(err.message, "n=5");
}

static void test_embedded(void **state)
{
    (void)state;
    char buf[128];
    kh_detectors *set = kh_detectors_embedded();
    assert_non_null(set);
    assert_string_equal(ids(set, buf, sizeof buf), "emb-one,emb-two");
    assert_string_equal(kh_detectors_get(set, 0)->origin, "embedded:emb-one.toml");
    assert_string_equal(kh_detectors_warnings(set), "");
    kh_detectors_free(set);
}

static void test_names(void **state)
{
    (void)state;
    const int codes[] = {KH_OK,     KH_ENOMEM,   KH_EINVAL,       KH_EPARSE,   KH_EREGEX,
                         KH_EIO,    KH_ELIMIT,   KH_ESTOPPED,     KH_EUNSUPPORTED,
                         KH_EINTERNAL};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        assert_string_not_equal(kh_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(kh_strerror(codes[i]), kh_strerror(codes[j]));
    }
    assert_string_equal(kh_strerror(KH_ENOMEM), "out of memory");
    assert_string_equal(kh_strerror(-1), "unknown error");
    assert_string_equal(kh_strerror(1000), "unknown error");
    assert_string_equal(kh_severity_name(KH_SEVERITY_INFO), "info");
    assert_string_equal(kh_severity_name(KH_SEVERITY_LOW), "low");
    assert_string_equal(kh_severity_name(KH_SEVERITY_MEDIUM), "medium");
    assert_string_equal(kh_severity_name(KH_SEVERITY_HIGH), "high");
    assert_string_equal(kh_severity_name(KH_SEVERITY_CRITICAL), "critical");
    assert_string_equal(kh_severity_name((kh_severity)9), "unknown");
    assert_int_equal(kh_severity_parse("critical"), KH_SEVERITY_CRITICAL);
    assert_int_equal(kh_severity_parse("HIGH"), KH_SEVERITY_HIGH);
    assert_int_equal(kh_severity_parse("Medium"), KH_SEVERITY_MEDIUM);
    assert_int_equal(kh_severity_parse("low"), KH_SEVERITY_LOW);
    assert_int_equal(kh_severity_parse("info"), KH_SEVERITY_INFO);
    assert_int_equal(kh_severity_parse("warning"), -1);
    assert_int_equal(kh_severity_parse(""), -1);
    assert_int_equal(kh_severity_parse(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_detector),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_regex_errors),
        cmocka_unit_test(test_toml_errors_pass_through),
        cmocka_unit_test(test_unknown_key_warnings),
        cmocka_unit_test(test_directory_order),
        cmocka_unit_test(test_directory_bad_file),
        cmocka_unit_test(test_directory_special_entries),
        cmocka_unit_test(test_file_size_limit),
        cmocka_unit_test(test_merge_override),
        cmocka_unit_test(test_set_primitives),
        cmocka_unit_test(test_embedded),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
