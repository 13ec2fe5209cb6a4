/*
 * The nanu quick start in C: create a vault, price a model, mint a key with limits, verify a
 * request, charge what it used, and print a usage report.
 *
 *   example [VAULT_PATH]     (default: a fresh file under /tmp)
 *
 * Exits 0 when every step gave the expected answer.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nanu.h"

/* A NUL-terminated literal as the (pointer, length) pair nanu takes. */
#define TEXT(s) (s), (sizeof(s) - 1)

static int fail(const char *what, nanu_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, nanu_status_name(status), nanu_last_error());
    return 1;
}

#define TRY(what, call)                                                                            \
    do {                                                                                           \
        nanu_status status_ = (call);                                                              \
        if (status_ != NANU_STATUS_OK) {                                                           \
            code = fail(what, status_);                                                            \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                    \
            code = 1;                                                                              \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

static void print_figure(const char *unit, uint64_t figure) {
    if (figure == NANU_UNLIMITED) {
        printf("  %-14s no limit\n", unit);
    } else {
        printf("  %-14s %llu\n", unit, (unsigned long long)figure);
    }
}

int main(int argc, char **argv) {
    char dir[] = "/tmp/nanu-example-XXXXXX";
    char path[4096];
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/keys.vault", dir);
    }

    int code = 0;
    nanu_options *options = NULL;
    nanu_options *wrong = NULL;
    nanu_vault *vault = NULL;
    nanu_vault *reopened = NULL;
    nanu_secret *secret = NULL;
    nanu_string *report = NULL;
    nanu_string *breakdown = NULL;

    /* Options: a passphrase and, for this demo only, the cheapest KDF parameters. */
    TRY("options", nanu_options_new(&options));
    TRY("passphrase", nanu_options_set_passphrase(options, TEXT("correct horse battery")));
    TRY("kdf", nanu_options_set_kdf(options, 8, 1, 1));
    TRY("create", nanu_vault_create(path, strlen(path), options, &vault));
    printf("created %s (nanu %s)\n", path, nanu_version());

    /* $2.50 and $10 per million input and output tokens, in micro-units. */
    const char price[] = "{\"input_per_mtok\": 2500000, \"output_per_mtok\": 10000000}";
    TRY("set price", nanu_vault_set_price(vault, TEXT("gpt-4o"), TEXT(price), NULL));

    /* A key for "acme" with three limits; the secret is shown only now. */
    nanu_context ctx = {0};
    ctx.actor = "example";
    ctx.actor_len = strlen(ctx.actor);
    const char spec[] = "{\"owner\": \"acme\", \"name\": \"demo\", \"scopes\": [\"chat\"],"
                        " \"limits\": [\"requests=100/min\", \"tokens=1M/day\","
                        " \"cost=$10/month\"]}";
    TRY("mint", nanu_vault_mint(vault, TEXT(spec), &ctx, &secret));
    printf("minted %s\n", nanu_secret_key_id(secret));
    char key_id[NANU_KEY_ID_CAP];
    snprintf(key_id, sizeof key_id, "%s", nanu_secret_key_id(secret));

    /* Verify an incoming request, holding an estimate of its cost until the charge. */
    nanu_verify_request request = {0};
    request.scope = "chat";
    request.scope_len = 4;
    request.model = "gpt-4o";
    request.model_len = 6;
    request.ip = "203.0.113.7";
    request.ip_len = strlen(request.ip);
    request.hold_cost = 50000;
    nanu_verdict verdict;
    TRY("verify", nanu_vault_verify(vault, nanu_secret_value(secret), nanu_secret_len(secret),
                                    &request, &verdict));
    printf("verify: %s (%s), key %s, owner %s, env %s, hold %llu\n",
           verdict.allowed ? "allowed" : "denied", nanu_code_name(verdict.code), verdict.key_id,
           verdict.owner, verdict.env, (unsigned long long)verdict.hold_id);
    EXPECT(verdict.allowed && verdict.code == NANU_CODE_VALID);
    EXPECT(strcmp(verdict.key_id, key_id) == 0);
    print_figure("requests left", verdict.remaining.requests);
    print_figure("tokens left", verdict.remaining.tokens);
    print_figure("cost left", verdict.remaining.cost);
    print_figure("input tokens", verdict.remaining.input_tokens);
    EXPECT(verdict.remaining.requests == 99);
    EXPECT(verdict.remaining.cost == 10000000 - 50000);

    /* The secret is no longer needed: free it, which zeroes it. */
    nanu_secret_free(secret);
    secret = NULL;

    /* Charge what the request really used; the price table gives the cost. */
    nanu_usage usage = {0};
    usage.model = "gpt-4o";
    usage.model_len = 6;
    usage.endpoint = "/v1/chat/completions";
    usage.endpoint_len = strlen(usage.endpoint);
    usage.input_tokens = 1200;
    usage.output_tokens = 300;
    usage.request_id = "req-1";
    usage.request_id_len = 5;
    usage.hold_id = verdict.hold_id;
    nanu_charge_outcome outcome;
    TRY("charge", nanu_vault_charge(vault, key_id, strlen(key_id), &usage, &outcome));
    printf("charged %llu micro-units (priced %s, replayed %s)\n",
           (unsigned long long)outcome.cost, outcome.priced ? "yes" : "no",
           outcome.replayed ? "yes" : "no");
    EXPECT(outcome.cost == 6000 && outcome.priced && !outcome.replayed);

    /* The same request id again is recognised, not charged twice. */
    TRY("charge again", nanu_vault_charge(vault, key_id, strlen(key_id), &usage, &outcome));
    EXPECT(outcome.replayed && outcome.cost == 6000);

    /* A request outside the key's scopes is a verdict, not an error. */
    nanu_verify_request admin = {0};
    admin.scope = "admin";
    admin.scope_len = 5;
    TRY("verify", nanu_vault_verify(vault, TEXT("nanu_live_not-a-real-key"), &admin, &verdict));
    printf("garbage key: %s (HTTP %u)\n", nanu_code_name(verdict.code),
           nanu_code_http_status(verdict.code));
    EXPECT(!verdict.allowed && verdict.code == NANU_CODE_MALFORMED);

    /* Reports: usage by model, and the state of every limit. */
    TRY("usage", nanu_vault_usage(vault, TEXT("{\"group_by\": [\"model\"]}"), &report));
    printf("usage by model: %s\n", nanu_string_ptr(report));
    EXPECT(strstr(nanu_string_ptr(report), "\"cost\":6000") != NULL);
    TRY("remaining", nanu_vault_remaining(vault, key_id, strlen(key_id), 0, NULL, &breakdown));
    printf("limits: %s\n", nanu_string_ptr(breakdown));

    TRY("close", nanu_vault_close(vault));
    vault = NULL;

    /* Errors carry a status and a message that never contains the passphrase. */
    TRY("options", nanu_options_new(&wrong));
    TRY("passphrase", nanu_options_set_passphrase(wrong, TEXT("wrong horse")));
    nanu_status status = nanu_vault_open(path, strlen(path), wrong, &reopened);
    printf("open with a wrong passphrase: %s: %s\n", nanu_status_name(status), nanu_last_error());
    EXPECT(status == NANU_STATUS_WRONG_PASSPHRASE && reopened == NULL);
    EXPECT(strstr(nanu_last_error(), "wrong horse") == NULL);

    TRY("open", nanu_vault_open(path, strlen(path), options, &reopened));
    nanu_stats stats;
    TRY("stats", nanu_vault_stats(reopened, &stats));
    printf("reopened: %llu key(s), %llu malformed verify(s)\n", (unsigned long long)stats.keys,
           (unsigned long long)stats.malformed);
    EXPECT(stats.keys == 1 && stats.malformed == 1);

done:
    nanu_secret_free(secret);
    nanu_string_free(report);
    nanu_string_free(breakdown);
    if (nanu_vault_close(vault) != NANU_STATUS_OK || nanu_vault_close(reopened) != NANU_STATUS_OK) {
        fprintf(stderr, "close failed: %s\n", nanu_last_error());
        code = 1;
    }
    nanu_options_free(options);
    nanu_options_free(wrong);
    if (argc <= 1) {
        unlink(path);
        rmdir(dir);
    }
    if (code == 0) {
        printf("example: ok\n");
    }
    return code;
}
