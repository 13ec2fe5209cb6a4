/*
 * The C runner of the shared conformance scenarios (the JSON files in tests/scenarios, format
 * in tests/scenarios/README.md). Every op goes through the real C ABI in nanu.h; the scenario
 * files are read with the small reader in json.c, and payloads (key specs, patches, limits,
 * prices, queries) are handed to nanu as their exact source text.
 *
 *   scenarios DIR
 *
 * Prints one line per scenario and a closing "scenarios: N passed, M failed"; exits non-zero
 * when a scenario fails or DIR holds none.
 *
 * The C ABI reports times in milliseconds, so `resets_at` is compared at millisecond
 * precision (both sides rounded up to a millisecond).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "nanu.h"

#define FIRST_TIME "2025-01-01T00:00:00Z"

/* Why a scenario failed; the first message wins. */
static char why[2048];

static bool failf(const char *format, ...) {
    if (why[0] == '\0') {
        va_list args;
        va_start(args, format);
        vsnprintf(why, sizeof why, format, args);
        va_end(args);
    }
    return false;
}

/* ---- time ------------------------------------------------------------------------------ */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses RFC 3339 (`2025-03-01T12:00:00Z`, `...T12:00:00.250+05:30`) into microseconds since
 * the epoch. */
static bool parse_time(const char *s, int64_t *out_us) {
    int year, month, day, hour, minute, second;
    size_t len = strlen(s);
    if (len < 20 || !digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) ||
        s[7] != '-' || !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &hour) || s[13] != ':' || !digits(s + 14, 2, &minute) ||
        s[16] != ':' || !digits(s + 17, 2, &second)) {
        return false;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
        second > 59) {
        return false;
    }
    const char *p = s + 19;
    int64_t micros = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        int64_t scale = 100000;
        while (*p >= '0' && *p <= '9') {
            if (n < 6) {
                micros += (*p - '0') * scale;
                scale /= 10;
            } else if (*p != '0') {
                return false; /* below a microsecond: not representable */
            }
            p++;
            n++;
        }
        if (n == 0) {
            return false;
        }
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0;
        int sign = *p == '-' ? -1 : 1;
        if (!digits(p + 1, 2, &oh)) {
            return false;
        }
        p += 3;
        if (*p == ':') {
            p++;
        }
        if (*p != '\0' && !digits(p, 2, &om)) {
            return false;
        }
        if (*p != '\0') {
            p += 2;
        }
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return false;
    }
    if (*p != '\0') {
        return false;
    }
    int64_t days = days_from_civil(year, (unsigned)month, (unsigned)day);
    int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
    *out_us = secs * 1000000 + micros;
    return true;
}

static int64_t ceil_ms(int64_t us) {
    int64_t ms = us / 1000;
    if (us % 1000 > 0) {
        ms++;
    }
    return ms;
}

/* ---- the vault of one scenario ---------------------------------------------------------- */

typedef struct {
    char *name;
    char *key_id;
    char *secret;
    size_t secret_len;
} label;

typedef struct {
    char *name;
    uint64_t id; /* 0: the verify placed no hold */
} hold;

typedef struct {
    char dir[64];
    char path[128];
    nanu_vault *vault;
    int64_t at_us;
    label *labels;
    size_t labels_len;
    hold *holds;
    size_t holds_len;
} run;

static char *copy_text(const char *text, size_t len) {
    char *out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, text, len);
        out[len] = '\0';
    }
    return out;
}

static bool run_open(run *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/nanu-scenario-XXXXXX");
    if (mkdtemp(r->dir) == NULL) {
        return failf("cannot make a temporary folder");
    }
    snprintf(r->path, sizeof r->path, "%s/scenario.vault", r->dir);
    int64_t first_us = 0;
    parse_time(FIRST_TIME, &first_us);
    r->at_us = first_us;

    nanu_options *options = NULL;
    nanu_status status = nanu_options_new(&options);
    if (status == NANU_STATUS_OK) {
        status = nanu_options_set_passphrase(options, "scenario", 8);
    }
    if (status == NANU_STATUS_OK) {
        status = nanu_options_set_kdf(options, 8, 1, 1);
    }
    if (status == NANU_STATUS_OK) {
        status = nanu_vault_create(r->path, strlen(r->path), options, &r->vault);
    }
    nanu_options_free(options);
    if (status != NANU_STATUS_OK) {
        return failf("cannot create the vault: %s", nanu_last_error());
    }
    return true;
}

static bool run_close(run *r) {
    nanu_status status = nanu_vault_close(r->vault);
    r->vault = NULL;
    bool ok = status == NANU_STATUS_OK || failf("closing the vault: %s", nanu_last_error());
    for (size_t i = 0; i < r->labels_len; i++) {
        free(r->labels[i].name);
        free(r->labels[i].key_id);
        if (r->labels[i].secret != NULL) {
            memset(r->labels[i].secret, 0, r->labels[i].secret_len);
        }
        free(r->labels[i].secret);
    }
    free(r->labels);
    for (size_t i = 0; i < r->holds_len; i++) {
        free(r->holds[i].name);
    }
    free(r->holds);
    DIR *d = opendir(r->dir);
    if (d != NULL) {
        struct dirent *entry;
        char file[512];
        while ((entry = readdir(d)) != NULL) {
            if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
                snprintf(file, sizeof file, "%s/%s", r->dir, entry->d_name);
                unlink(file);
            }
        }
        closedir(d);
    }
    rmdir(r->dir);
    return ok;
}

static const label *find_label(const run *r, const char *name) {
    for (size_t i = 0; i < r->labels_len; i++) {
        if (strcmp(r->labels[i].name, name) == 0) {
            return &r->labels[i];
        }
    }
    return NULL;
}

static bool add_label(run *r, const char *name, const char *key_id, const nanu_secret *secret) {
    label *labels = realloc(r->labels, (r->labels_len + 1) * sizeof *labels);
    if (labels == NULL) {
        return failf("out of memory");
    }
    r->labels = labels;
    label *l = &r->labels[r->labels_len];
    l->name = copy_text(name, strlen(name));
    l->key_id = copy_text(key_id, strlen(key_id));
    l->secret_len = nanu_secret_len(secret);
    l->secret = copy_text(nanu_secret_value(secret), l->secret_len);
    if (l->name == NULL || l->key_id == NULL || l->secret == NULL) {
        return failf("out of memory");
    }
    r->labels_len++;
    return true;
}

static bool find_hold(const run *r, const json_value *name, uint64_t *out_id) {
    if (name == NULL || name->kind != JSON_STRING) {
        return failf("a hold name must be text");
    }
    for (size_t i = 0; i < r->holds_len; i++) {
        if (strcmp(r->holds[i].name, name->string) == 0) {
            *out_id = r->holds[i].id;
            return true;
        }
    }
    return failf("unknown hold name \"%s\"", name->string);
}

/* ---- reading steps ---------------------------------------------------------------------- */

static bool only(const char *what, const json_value *object, const char *const *allowed) {
    for (size_t i = 0; i < object->len; i++) {
        bool known = false;
        for (const char *const *a = allowed; *a != NULL; a++) {
            known = known || strcmp(object->keys[i], *a) == 0;
        }
        if (!known) {
            return failf("unknown field \"%s\" in %s", object->keys[i], what);
        }
    }
    return true;
}

static const char *text_field(const json_value *step, const char *name) {
    const json_value *v = json_get(step, name);
    if (v == NULL || v->kind != JSON_STRING) {
        failf("missing or non-text field \"%s\"", name);
        return NULL;
    }
    return v->string;
}

static const json_value *field(const json_value *step, const char *name) {
    const json_value *v = json_get(step, name);
    if (v == NULL) {
        failf("missing field \"%s\"", name);
    }
    return v;
}

static const label *step_label(const run *r, const json_value *step) {
    const char *name = text_field(step, "key");
    if (name == NULL) {
        return NULL;
    }
    const label *l = find_label(r, name);
    if (l == NULL) {
        failf("unknown label \"%s\"", name);
    }
    return l;
}

/* ---- ops -------------------------------------------------------------------------------- */

typedef enum {
    ANSWER_NOTHING,
    ANSWER_VERDICT,
    ANSWER_CHARGE,
    ANSWER_FLAG,
    ANSWER_COUNT,
    ANSWER_REMAINING,
    ANSWER_ROWS,
} answer_kind;

typedef struct {
    answer_kind kind;
    nanu_verdict verdict;
    nanu_charge_outcome charge;
    bool flag;
    uint64_t count;
    nanu_remaining remaining;
    nanu_string *rows_text;
    json_value *rows;
} answer;

/* An op's payload that does not decode is the op's invalid_argument error, as in every
 * binding; the runner stands in for the decoding a typed binding would do, and says why
 * here (NULL when the status came from nanu). */
#define BAD_PAYLOAD NANU_STATUS_INVALID_ARGUMENT
static const char *payload_error;

/* The message that goes with a failed op. */
static const char *op_error(void) {
    return payload_error != NULL ? payload_error : nanu_last_error();
}

static bool optional_text(const json_value *object, const char *name, const char **out,
                          size_t *out_len, bool *bad) {
    const json_value *v = json_get(object, name);
    *out = NULL;
    *out_len = 0;
    if (v == NULL || v->kind == JSON_NULL) {
        return true;
    }
    if (v->kind != JSON_STRING) {
        *bad = true;
        return true;
    }
    *out = v->string;
    *out_len = v->string_len;
    return true;
}

static void u64_member(const json_value *object, const char *name, uint64_t *out, bool *bad) {
    const json_value *v = json_get(object, name);
    if (v == NULL) {
        return;
    }
    if (v->kind != JSON_NUMBER || !v->is_u64) {
        *bad = true;
        return;
    }
    *out = v->u64;
}

static bool op_verify(run *r, const json_value *step, nanu_status *status, answer *a) {
    const json_value *key = json_get(step, "key");
    const json_value *literal = json_get(step, "secret");
    const char *secret;
    size_t secret_len;
    if (key != NULL && literal == NULL) {
        const label *l = step_label(r, step);
        if (l == NULL) {
            return false;
        }
        secret = l->secret;
        secret_len = l->secret_len;
    } else if (key == NULL && literal != NULL && literal->kind == JSON_STRING) {
        secret = literal->string;
        secret_len = literal->string_len;
    } else {
        return failf("verify needs exactly one of \"key\" and \"secret\"");
    }

    nanu_verify_request request = {0};
    request.at_us = r->at_us;
    const json_value *fields = json_get(step, "request");
    if (fields != NULL) {
        if (fields->kind != JSON_OBJECT) {
            return failf("request must be an object");
        }
        static const char *const allowed[] = {"ip", "scope", "model", "env", "hold", NULL};
        if (!only("request", fields, allowed)) {
            return false;
        }
        bool not_text = false;
        optional_text(fields, "ip", &request.ip, &request.ip_len, &not_text);
        optional_text(fields, "scope", &request.scope, &request.scope_len, &not_text);
        optional_text(fields, "model", &request.model, &request.model_len, &not_text);
        optional_text(fields, "env", &request.env, &request.env_len, &not_text);
        if (not_text) {
            return failf("request ip, scope, model and env must be text");
        }
        const json_value *amounts = json_get(fields, "hold");
        if (amounts != NULL) {
            static const char *const hold_fields[] = {"input_tokens", "output_tokens", "cost",
                                                      NULL};
            bool bad = amounts->kind != JSON_OBJECT;
            for (size_t i = 0; !bad && i < amounts->len; i++) {
                bool known = false;
                for (const char *const *f = hold_fields; *f != NULL; f++) {
                    known = known || strcmp(amounts->keys[i], *f) == 0;
                }
                bad = !known;
            }
            if (!bad) {
                u64_member(amounts, "input_tokens", &request.hold_input_tokens, &bad);
                u64_member(amounts, "output_tokens", &request.hold_output_tokens, &bad);
                u64_member(amounts, "cost", &request.hold_cost, &bad);
            }
            if (bad) {
                payload_error = "the request's hold does not decode into hold amounts";
                *status = BAD_PAYLOAD;
                return true;
            }
        }
    }

    *status = nanu_vault_verify(r->vault, secret, secret_len, &request, &a->verdict);
    a->kind = ANSWER_VERDICT;
    const json_value *as_hold = json_get(step, "as_hold");
    if (*status == NANU_STATUS_OK && as_hold != NULL) {
        if (as_hold->kind != JSON_STRING) {
            return failf("as_hold must be text");
        }
        for (size_t i = 0; i < r->holds_len; i++) {
            if (strcmp(r->holds[i].name, as_hold->string) == 0) {
                return failf("hold name \"%s\" used twice", as_hold->string);
            }
        }
        hold *holds = realloc(r->holds, (r->holds_len + 1) * sizeof *holds);
        if (holds == NULL) {
            return failf("out of memory");
        }
        r->holds = holds;
        r->holds[r->holds_len].name = copy_text(as_hold->string, as_hold->string_len);
        r->holds[r->holds_len].id = a->verdict.hold_id;
        r->holds_len++;
    }
    return true;
}

static bool op_charge(run *r, const json_value *step, nanu_status *status, answer *a) {
    const label *l = step_label(r, step);
    if (l == NULL) {
        return false;
    }
    nanu_usage usage = {0};
    usage.at_us = r->at_us;
    const json_value *fields = json_get(step, "usage");
    if (fields != NULL && fields->kind != JSON_OBJECT) {
        return failf("usage must be an object");
    }
    bool bad = false;
    if (fields != NULL) {
        const json_value *name = json_get(fields, "hold");
        if (name != NULL && !find_hold(r, name, &usage.hold_id)) {
            return false;
        }
        /* The fields of the core's Usage; `hold_id` and `at` decode but are replaced by the
         * hold name and the step's time, as in the Rust runner. */
        static const char *const usage_fields[] = {
            "hold",   "model",         "endpoint", "input_tokens", "output_tokens",
            "cost",   "request_id",    "hold_id",  "at",           NULL};
        for (size_t i = 0; !bad && i < fields->len; i++) {
            bool known = false;
            for (const char *const *f = usage_fields; *f != NULL; f++) {
                known = known || strcmp(fields->keys[i], *f) == 0;
            }
            bad = !known;
        }
        optional_text(fields, "model", &usage.model, &usage.model_len, &bad);
        optional_text(fields, "endpoint", &usage.endpoint, &usage.endpoint_len, &bad);
        optional_text(fields, "request_id", &usage.request_id, &usage.request_id_len, &bad);
        u64_member(fields, "input_tokens", &usage.input_tokens, &bad);
        u64_member(fields, "output_tokens", &usage.output_tokens, &bad);
        const json_value *cost = json_get(fields, "cost");
        if (cost != NULL && cost->kind != JSON_NULL) {
            usage.has_cost = true;
            u64_member(fields, "cost", &usage.cost, &bad);
        }
        const json_value *hold_id = json_get(fields, "hold_id");
        if (hold_id != NULL && hold_id->kind != JSON_NULL && !hold_id->is_u64) {
            bad = true;
        }
        const json_value *at = json_get(fields, "at");
        int64_t ignored;
        if (at != NULL && at->kind != JSON_NULL &&
            (at->kind != JSON_STRING || !parse_time(at->string, &ignored))) {
            bad = true;
        }
    }
    if (bad) {
        payload_error = "the usage does not decode into a usage";
        *status = BAD_PAYLOAD;
        return true;
    }
    *status = nanu_vault_charge(r->vault, l->key_id, strlen(l->key_id), &usage, &a->charge);
    a->kind = ANSWER_CHARGE;
    return true;
}

static bool op_mint_or_rotate(run *r, const json_value *step, bool rotate, nanu_status *status) {
    nanu_context ctx = {0};
    ctx.at_us = r->at_us;
    nanu_secret *secret = NULL;
    const char *name;
    if (rotate) {
        const label *l = step_label(r, step);
        if (l == NULL) {
            return false;
        }
        uint64_t grace_ms = 0;
        const json_value *grace = json_get(step, "grace_ms");
        if (grace != NULL) {
            if (grace->kind != JSON_NUMBER || !grace->is_u64) {
                return failf("grace_ms must be an integer from 0 to 2^64 - 1");
            }
            grace_ms = grace->u64;
        }
        if ((name = text_field(step, "as")) == NULL) {
            return false;
        }
        if (find_label(r, name) != NULL) {
            return failf("label \"%s\" used twice", name);
        }
        *status = nanu_vault_rotate(r->vault, l->key_id, strlen(l->key_id), grace_ms, &ctx,
                                    &secret);
    } else {
        const json_value *spec = field(step, "spec");
        if (spec == NULL || (name = text_field(step, "as")) == NULL) {
            return false;
        }
        if (find_label(r, name) != NULL) {
            return failf("label \"%s\" used twice", name);
        }
        *status = nanu_vault_mint(r->vault, spec->raw, spec->raw_len, &ctx, &secret);
    }
    bool ok = true;
    if (*status == NANU_STATUS_OK) {
        ok = add_label(r, name, nanu_secret_key_id(secret), secret);
    }
    nanu_secret_free(secret);
    return ok;
}

static bool op_usage(run *r, const json_value *step, nanu_status *status, answer *a) {
    const json_value *query = json_get(step, "query");
    *status = nanu_vault_usage(r->vault, query == NULL ? NULL : query->raw,
                               query == NULL ? 0 : query->raw_len, &a->rows_text);
    a->kind = ANSWER_ROWS;
    if (*status != NANU_STATUS_OK) {
        return true;
    }
    char error[128];
    a->rows = json_parse(nanu_string_ptr(a->rows_text), nanu_string_len(a->rows_text), error,
                         sizeof error);
    if (a->rows == NULL || a->rows->kind != JSON_ARRAY) {
        return failf("nanu_vault_usage returned unreadable json: %s", error);
    }
    return true;
}

/* Runs one step. Returns false on a scenario error (why is set); otherwise `*status` is the
 * op's status and `a` its answer. */
static bool step_run(run *r, const char *op, const json_value *step, nanu_status *status,
                     answer *a) {
    nanu_context ctx = {0};
    ctx.at_us = r->at_us;
    a->kind = ANSWER_NOTHING;
    *status = NANU_STATUS_OK;
    if (strcmp(op, "mint") == 0) {
        return op_mint_or_rotate(r, step, false, status);
    }
    if (strcmp(op, "rotate") == 0) {
        return op_mint_or_rotate(r, step, true, status);
    }
    if (strcmp(op, "verify") == 0) {
        return op_verify(r, step, status, a);
    }
    if (strcmp(op, "charge") == 0) {
        return op_charge(r, step, status, a);
    }
    if (strcmp(op, "release") == 0) {
        uint64_t id;
        if (!find_hold(r, field(step, "hold"), &id)) {
            return false;
        }
        a->kind = ANSWER_FLAG;
        a->flag = false;
        if (id != 0) {
            *status = nanu_vault_release(r->vault, id, r->at_us, &a->flag);
        }
        return true;
    }
    if (strcmp(op, "revoke") == 0) {
        const label *l = step_label(r, step);
        if (l == NULL) {
            return false;
        }
        *status = nanu_vault_revoke(r->vault, l->key_id, strlen(l->key_id), &ctx);
        return true;
    }
    if (strcmp(op, "revoke_owner") == 0) {
        const json_value *owner = json_get(step, "owner");
        if (text_field(step, "owner") == NULL) {
            return false;
        }
        a->kind = ANSWER_COUNT;
        *status = nanu_vault_revoke_owner(r->vault, owner->string, owner->string_len, &ctx,
                                          &a->count);
        return true;
    }
    if (strcmp(op, "update") == 0) {
        const json_value *patch = field(step, "patch");
        const label *l = patch == NULL ? NULL : step_label(r, step);
        if (l == NULL) {
            return false;
        }
        *status = nanu_vault_update(r->vault, l->key_id, strlen(l->key_id), patch->raw,
                                    patch->raw_len, &ctx, NULL);
        return true;
    }
    if (strcmp(op, "set_owner_policy") == 0) {
        const json_value *limits = field(step, "limits");
        const json_value *owner = json_get(step, "owner");
        if (limits == NULL || text_field(step, "owner") == NULL) {
            return false;
        }
        *status = nanu_vault_set_owner_policy(r->vault, owner->string, owner->string_len,
                                              limits->raw, limits->raw_len, &ctx);
        return true;
    }
    if (strcmp(op, "set_default_owner_policy") == 0) {
        const json_value *limits = field(step, "limits");
        if (limits == NULL) {
            return false;
        }
        *status = nanu_vault_set_default_owner_policy(r->vault, limits->raw, limits->raw_len,
                                                      &ctx);
        return true;
    }
    if (strcmp(op, "set_price") == 0) {
        const json_value *price = field(step, "price");
        const json_value *model = json_get(step, "model");
        if (price == NULL || text_field(step, "model") == NULL) {
            return false;
        }
        bool remove = price->kind == JSON_NULL;
        *status = nanu_vault_set_price(r->vault, model->string, model->string_len,
                                       remove ? NULL : price->raw, remove ? 0 : price->raw_len,
                                       &ctx);
        return true;
    }
    if (strcmp(op, "remaining") == 0) {
        const label *l = step_label(r, step);
        if (l == NULL) {
            return false;
        }
        a->kind = ANSWER_REMAINING;
        *status = nanu_vault_remaining(r->vault, l->key_id, strlen(l->key_id), r->at_us,
                                       &a->remaining, NULL);
        return true;
    }
    if (strcmp(op, "tick") == 0) {
        *status = nanu_vault_tick(r->vault, r->at_us);
        return true;
    }
    if (strcmp(op, "usage") == 0) {
        return op_usage(r, step, status, a);
    }
    return failf("unknown op \"%s\"", op);
}

/* ---- expectations ----------------------------------------------------------------------- */

static bool is_u64(const json_value *v, uint64_t n) {
    return v->kind == JSON_NUMBER && v->is_u64 && v->u64 == n;
}

static bool expect_bool(const char *name, const json_value *want, bool found) {
    if (want->kind == JSON_BOOL && want->boolean == found) {
        return true;
    }
    return failf("%s: expected %.*s, found %s", name, (int)want->raw_len, want->raw,
                 found ? "true" : "false");
}

static bool expect_u64(const char *name, const json_value *want, uint64_t found) {
    if (is_u64(want, found)) {
        return true;
    }
    return failf("%s: expected %.*s, found %" PRIu64, name, (int)want->raw_len, want->raw, found);
}

/* A figure that may be absent: NANU_UNLIMITED stands for null. */
static bool expect_figure(const char *name, const json_value *want, uint64_t found) {
    if (found == NANU_UNLIMITED) {
        if (want->kind == JSON_NULL) {
            return true;
        }
        return failf("%s: expected %.*s, found null", name, (int)want->raw_len, want->raw);
    }
    return expect_u64(name, want, found);
}

static bool expect_text(const char *name, const json_value *want, const char *found) {
    bool ok = found[0] == '\0' ? want->kind == JSON_NULL
                               : want->kind == JSON_STRING && strcmp(want->string, found) == 0;
    if (ok) {
        return true;
    }
    return failf("%s: expected %.*s, found \"%s\"", name, (int)want->raw_len, want->raw, found);
}

/* Compares an expected instant (RFC 3339 or null) with a found one in milliseconds. */
static bool expect_instant_ms(const char *name, const json_value *want, bool has, int64_t ms) {
    if (want->kind == JSON_NULL) {
        return !has || failf("%s: expected null, found %" PRId64 " ms", name, ms);
    }
    int64_t us;
    if (want->kind != JSON_STRING || !parse_time(want->string, &us)) {
        return failf("%s: expected must be RFC 3339 or null", name);
    }
    if (has && ceil_ms(us) == ms) {
        return true;
    }
    return failf("%s: expected %s, found %s%" PRId64 " ms", name, want->string,
                 has ? "" : "null, ", ms);
}

static const char *const UNITS[] = {"requests", "tokens", "input_tokens", "output_tokens",
                                    "cost"};

static bool expect_remaining(const char *name, const json_value *want, const nanu_remaining *r) {
    if (want->kind != JSON_OBJECT) {
        return failf("%s must be an object", name);
    }
    const uint64_t figures[] = {r->requests, r->tokens, r->input_tokens, r->output_tokens,
                                r->cost};
    for (size_t i = 0; i < want->len; i++) {
        size_t u = 0;
        while (u < 5 && strcmp(want->keys[i], UNITS[u]) != 0) {
            u++;
        }
        if (u == 5) {
            return failf("%s: unknown unit \"%s\"", name, want->keys[i]);
        }
        char label[64];
        snprintf(label, sizeof label, "%s.%s", name, UNITS[u]);
        if (!expect_figure(label, want->items[i], figures[u])) {
            return false;
        }
    }
    return true;
}

static const char *level_name(nanu_level level) {
    return level == NANU_LEVEL_KEY ? "key" : level == NANU_LEVEL_OWNER ? "owner" : "none";
}

static bool expect_verdict(const json_value *want, const nanu_verdict *v) {
    static const char *const allowed[] = {"allowed", "code",       "grace",     "model",
                                          "hold",    "retry_after_ms", "resets_at", "denied_by",
                                          "remaining", NULL};
    if (!only("verify expect", want, allowed)) {
        return false;
    }
    for (size_t i = 0; i < want->len; i++) {
        const char *name = want->keys[i];
        const json_value *w = want->items[i];
        bool ok = true;
        if (strcmp(name, "allowed") == 0) {
            ok = expect_bool(name, w, v->allowed);
        } else if (strcmp(name, "code") == 0) {
            ok = expect_text(name, w, nanu_code_name(v->code));
        } else if (strcmp(name, "grace") == 0) {
            ok = expect_bool(name, w, v->grace);
        } else if (strcmp(name, "model") == 0) {
            ok = expect_text(name, w, v->model);
        } else if (strcmp(name, "hold") == 0) {
            ok = expect_bool(name, w, v->hold_id != 0);
        } else if (strcmp(name, "retry_after_ms") == 0) {
            ok = v->has_retry_after ? expect_u64(name, w, v->retry_after_ms)
                                    : w->kind == JSON_NULL ||
                                          failf("%s: expected %.*s, found null", name,
                                                (int)w->raw_len, w->raw);
        } else if (strcmp(name, "resets_at") == 0) {
            ok = expect_instant_ms(name, w, v->has_resets_at, v->resets_at_ms);
        } else if (strcmp(name, "denied_by") == 0) {
            const nanu_limit_state *by = &v->denied_by;
            if (w->kind == JSON_NULL) {
                ok = by->level == NANU_LEVEL_NONE ||
                     failf("denied_by: expected null, found level %s", level_name(by->level));
            } else if (by->level == NANU_LEVEL_NONE) {
                ok = failf("denied_by: expected %.*s, found null", (int)w->raw_len, w->raw);
            } else if (w->kind != JSON_OBJECT) {
                ok = failf("denied_by must be an object or null");
            } else {
                static const char *const sub[] = {"level", "index", "unit", NULL};
                ok = only("denied_by", w, sub);
                const json_value *level = json_get(w, "level");
                const json_value *index = json_get(w, "index");
                const json_value *unit = json_get(w, "unit");
                if (ok && level != NULL) {
                    ok = expect_text("denied_by.level", level, level_name(by->level));
                }
                if (ok && index != NULL) {
                    ok = expect_u64("denied_by.index", index, by->index);
                }
                if (ok && unit != NULL) {
                    ok = expect_text("denied_by.unit", unit, UNITS[by->unit]);
                }
            }
        } else {
            ok = expect_remaining(name, w, &v->remaining);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool expect_charge(const json_value *want, const nanu_charge_outcome *c) {
    static const char *const allowed[] = {"cost", "priced", "replayed", "exceeded", NULL};
    if (!only("charge expect", want, allowed)) {
        return false;
    }
    for (size_t i = 0; i < want->len; i++) {
        const char *name = want->keys[i];
        const json_value *w = want->items[i];
        bool ok = strcmp(name, "cost") == 0       ? expect_u64(name, w, c->cost)
                  : strcmp(name, "priced") == 0   ? expect_bool(name, w, c->priced)
                  : strcmp(name, "replayed") == 0 ? expect_bool(name, w, c->replayed)
                                                  : expect_u64(name, w, c->exceeded_len);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool expect_rows(const json_value *want, const json_value *rows) {
    static const char *const allowed[] = {"rows", NULL};
    if (!only("usage expect", want, allowed)) {
        return false;
    }
    const json_value *list = json_get(want, "rows");
    if (list == NULL) {
        return true;
    }
    if (list->kind != JSON_ARRAY) {
        return failf("rows must be a list");
    }
    if (list->len != rows->len) {
        return failf("rows: expected %zu rows, found %zu", list->len, rows->len);
    }
    for (size_t i = 0; i < list->len; i++) {
        const json_value *w = list->items[i];
        const json_value *row = rows->items[i];
        if (w->kind != JSON_OBJECT) {
            return failf("row must be an object");
        }
        for (size_t f = 0; f < w->len; f++) {
            const char *name = w->keys[f];
            const json_value *want_value = w->items[f];
            const json_value *found = json_get(row, name);
            char label[64];
            snprintf(label, sizeof label, "rows[%zu].%s", i, name);
            if (strcmp(name, "bucket") == 0) {
                int64_t us = 0;
                bool has = found != NULL && found->kind == JSON_STRING;
                if (has && !parse_time(found->string, &us)) {
                    return failf("%s: nanu returned a bad time", label);
                }
                if (!expect_instant_ms(label, want_value, has, ceil_ms(us))) {
                    return false;
                }
            } else if (strcmp(name, "group") == 0) {
                if (found == NULL || !json_equal(want_value, found)) {
                    return failf("%s: expected %.*s, found %.*s", label, (int)want_value->raw_len,
                                 want_value->raw, found ? (int)found->raw_len : 4,
                                 found ? found->raw : "none");
                }
            } else if (strcmp(name, "requests") == 0 || strcmp(name, "denied") == 0 ||
                       strcmp(name, "input_tokens") == 0 ||
                       strcmp(name, "output_tokens") == 0 || strcmp(name, "tokens") == 0 ||
                       strcmp(name, "cost") == 0) {
                if (found == NULL || !found->is_u64) {
                    return failf("%s: nanu returned no number", label);
                }
                if (!expect_u64(label, want_value, found->u64)) {
                    return false;
                }
            } else {
                return failf("unknown row field \"%s\"", name);
            }
        }
    }
    return true;
}

static bool check(const json_value *want, const answer *a) {
    switch (a->kind) {
    case ANSWER_FLAG:
        return expect_bool("result", want, a->flag);
    case ANSWER_COUNT:
        return expect_u64("result", want, a->count);
    case ANSWER_REMAINING:
        return expect_remaining("remaining", want, &a->remaining);
    case ANSWER_NOTHING:
        return failf("this op defines no expect");
    default:
        break;
    }
    if (want->kind != JSON_OBJECT) {
        return failf("expect must be an object");
    }
    switch (a->kind) {
    case ANSWER_VERDICT:
        return expect_verdict(want, &a->verdict);
    case ANSWER_CHARGE:
        return expect_charge(want, &a->charge);
    default:
        return expect_rows(want, a->rows);
    }
}

/* ---- scenarios -------------------------------------------------------------------------- */

typedef struct {
    const char *op;
    const char *fields[6];
    bool defines_expect;
} op_spec;

static const op_spec OPS[] = {
    {"mint", {"spec", "as"}, false},
    {"verify", {"key", "secret", "request", "as_hold"}, true},
    {"charge", {"key", "usage"}, true},
    {"release", {"hold"}, true},
    {"rotate", {"key", "grace_ms", "as"}, false},
    {"revoke", {"key"}, false},
    {"revoke_owner", {"owner"}, true},
    {"update", {"key", "patch"}, false},
    {"set_owner_policy", {"owner", "limits"}, false},
    {"set_default_owner_policy", {"limits"}, false},
    {"set_price", {"model", "price"}, false},
    {"remaining", {"key"}, true},
    {"tick", {NULL}, false},
    {"usage", {"query"}, true},
};

static const op_spec *find_op(const char *op) {
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
        if (strcmp(OPS[i].op, op) == 0) {
            return &OPS[i];
        }
    }
    return NULL;
}

static bool step_fields_known(const json_value *step, const op_spec *spec) {
    static const char *const common[] = {"op", "at", "expect", "expect_error", "note"};
    for (size_t i = 0; i < step->len; i++) {
        bool known = false;
        for (size_t c = 0; c < 5; c++) {
            known = known || strcmp(step->keys[i], common[c]) == 0;
        }
        for (size_t f = 0; f < 6 && spec->fields[f] != NULL; f++) {
            known = known || strcmp(step->keys[i], spec->fields[f]) == 0;
        }
        if (!known) {
            return failf("unknown field \"%s\" in step", step->keys[i]);
        }
    }
    return true;
}

static bool run_steps(run *r, const json_value *steps) {
    for (size_t i = 0; i < steps->len; i++) {
        const json_value *step = steps->items[i];
        const char *op = step->kind == JSON_OBJECT ? text_field(step, "op") : NULL;
        const op_spec *spec = op == NULL ? NULL : find_op(op);
        const json_value *expect = json_get(step, "expect");
        const json_value *expect_error = json_get(step, "expect_error");
        const json_value *at = json_get(step, "at");
        int64_t us = r->at_us;
        nanu_status status = NANU_STATUS_OK;
        answer a;
        memset(&a, 0, sizeof a);
        payload_error = NULL;
        bool ok = false;
        if (spec == NULL) {
            failf("a step needs a known op");
        } else if (!step_fields_known(step, spec)) {
        } else if (expect != NULL && !spec->defines_expect) {
            failf("op \"%s\" defines no expect", op);
        } else if (expect != NULL && expect_error != NULL) {
            failf("give expect or expect_error, not both");
        } else if (at != NULL && (at->kind != JSON_STRING || !parse_time(at->string, &us))) {
            failf("bad RFC 3339 time");
        } else {
            r->at_us = us;
            ok = step_run(r, op, step, &status, &a);
        }
        if (ok) {
            if (expect_error != NULL) {
                if (status == NANU_STATUS_OK) {
                    ok = failf("expected error %.*s, the op succeeded", (int)expect_error->raw_len,
                               expect_error->raw);
                } else if (expect_error->kind != JSON_STRING ||
                           strcmp(expect_error->string, nanu_status_name(status)) != 0) {
                    ok = failf("error: expected %.*s, found \"%s\" (%s)",
                               (int)expect_error->raw_len, expect_error->raw,
                               nanu_status_name(status), op_error());
                }
            } else if (status != NANU_STATUS_OK) {
                ok = failf("failed: %s: %s", nanu_status_name(status), op_error());
            } else if (expect != NULL) {
                ok = check(expect, &a);
            }
        }
        json_free(a.rows);
        nanu_string_free(a.rows_text);
        if (!ok) {
            char step_why[sizeof why];
            if (snprintf(step_why, sizeof step_why, "step %zu (%s): %s", i, op ? op : "?", why) >
                0) {
                memcpy(why, step_why, sizeof why);
            }
            return false;
        }
    }
    return true;
}

static bool run_scenario(const json_value *scenario) {
    if (scenario->kind != JSON_OBJECT) {
        return failf("a scenario must be an object");
    }
    static const char *const top[] = {"name", "description", "steps", NULL};
    if (!only("scenario", scenario, top)) {
        return false;
    }
    const json_value *steps = json_get(scenario, "steps");
    if (steps == NULL || steps->kind != JSON_ARRAY || steps->len == 0) {
        return failf("a scenario needs a non-empty list of steps");
    }
    run r;
    if (!run_open(&r)) {
        return false;
    }
    bool ok = run_steps(&r, steps);
    return run_close(&r) && ok;
}

static char *read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap == 0 ? 65536 : cap * 2;
            char *grown = realloc(data, cap);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    *out_len = len;
    return data;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCENARIO_DIR\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }
    char **names = NULL;
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t n = strlen(entry->d_name);
        if (n > 5 && strcmp(entry->d_name + n - 5, ".json") == 0) {
            char **grown = realloc(names, (count + 1) * sizeof *names);
            if (grown == NULL) {
                return 1;
            }
            names = grown;
            names[count++] = copy_text(entry->d_name, n);
        }
    }
    closedir(dir);
    if (count == 0) {
        fprintf(stderr, "no scenario (*.json) in %s: refusing to pass on nothing\n", argv[1]);
        return 1;
    }
    qsort(names, count, sizeof *names, by_name);

    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        why[0] = '\0';
        size_t len = 0;
        char *text = read_file(path, &len);
        char error[256];
        json_value *scenario = text == NULL ? NULL : json_parse(text, len, error, sizeof error);
        bool ok = false;
        if (text == NULL) {
            failf("cannot read the file");
        } else if (scenario == NULL) {
            failf("not JSON: %s", error);
        } else {
            ok = run_scenario(scenario);
        }
        json_free(scenario);
        free(text);
        if (ok) {
            passed++;
            printf("ok   %s\n", names[i]);
        } else {
            failed++;
            printf("FAIL %s: %s\n", names[i], why);
        }
        free(names[i]);
    }
    free(names);
    printf("scenarios: %zu passed, %zu failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
