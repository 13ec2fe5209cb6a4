/*
 * Eight threads verify and charge through one nanu_vault at once. A lifetime limit of
 * LIMIT requests must admit exactly LIMIT verifies in total, whatever the interleaving, and
 * the charges of the admitted requests must add up exactly in the usage report.
 *
 *   threads
 *
 * Exits 0 when the counts are exact.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nanu.h"

#define THREADS 8
#define ATTEMPTS 300
#define LIMIT 1000
#define COST 7

#define TEXT(s) (s), (sizeof(s) - 1)

typedef struct {
    const nanu_vault *vault;
    const char *secret;
    size_t secret_len;
    unsigned index;
    unsigned allowed;
    unsigned denied;
    unsigned errors;
} worker;

static void *verify_and_charge(void *arg) {
    worker *w = arg;
    for (unsigned i = 0; i < ATTEMPTS; i++) {
        nanu_verdict verdict;
        nanu_status status = nanu_vault_verify(w->vault, w->secret, w->secret_len, NULL, &verdict);
        if (status != NANU_STATUS_OK) {
            fprintf(stderr, "thread %u: verify: %s: %s\n", w->index, nanu_status_name(status),
                    nanu_last_error());
            w->errors++;
            continue;
        }
        if (!verdict.allowed) {
            if (verdict.code != NANU_CODE_USAGE_EXCEEDED ||
                verdict.denied_by.level != NANU_LEVEL_KEY ||
                verdict.denied_by.unit != NANU_UNIT_REQUESTS) {
                fprintf(stderr, "thread %u: unexpected denial %s\n", w->index,
                        nanu_code_name(verdict.code));
                w->errors++;
            }
            w->denied++;
            continue;
        }
        w->allowed++;

        char request_id[64];
        int n = snprintf(request_id, sizeof request_id, "t%u-r%u", w->index, i);
        nanu_usage usage = {0};
        usage.input_tokens = 3;
        usage.output_tokens = 2;
        usage.has_cost = true;
        usage.cost = COST;
        usage.request_id = request_id;
        usage.request_id_len = (size_t)n;
        nanu_charge_outcome outcome;
        status = nanu_vault_charge(w->vault, verdict.key_id, strlen(verdict.key_id), &usage,
                                   &outcome);
        if (status != NANU_STATUS_OK || outcome.replayed || outcome.cost != COST) {
            fprintf(stderr, "thread %u: charge: %s: %s\n", w->index, nanu_status_name(status),
                    nanu_last_error());
            w->errors++;
        }
    }
    return NULL;
}

static int check_u64(const char *json, const char *field, unsigned long long want) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":%llu,", field, want);
    if (strstr(json, needle) == NULL) {
        fprintf(stderr, "usage report lacks %s in %s\n", needle, json);
        return 1;
    }
    return 0;
}

int main(void) {
    char dir[] = "/tmp/nanu-threads-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/threads.vault", dir);

    int code = 1;
    nanu_options *options = NULL;
    nanu_vault *vault = NULL;
    nanu_secret *secret = NULL;
    nanu_string *report = NULL;
    if (nanu_options_new(&options) != NANU_STATUS_OK ||
        nanu_options_set_passphrase(options, TEXT("threads")) != NANU_STATUS_OK ||
        nanu_options_set_kdf(options, 8, 1, 1) != NANU_STATUS_OK ||
        nanu_options_set_durability(options, NANU_DURABILITY_PROCESS) != NANU_STATUS_OK ||
        nanu_vault_create(path, strlen(path), options, &vault) != NANU_STATUS_OK ||
        nanu_vault_mint(vault, TEXT("{\"owner\": \"acme\", \"limits\": [\"requests=1000\"]}"),
                        NULL, &secret) != NANU_STATUS_OK) {
        fprintf(stderr, "setup failed: %s\n", nanu_last_error());
        goto done;
    }

    pthread_t threads[THREADS];
    worker workers[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        const char *text = nanu_secret_value(secret);
        workers[t] = (worker){vault, text, nanu_secret_len(secret), t, 0, 0, 0};
        if (pthread_create(&threads[t], NULL, verify_and_charge, &workers[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            for (unsigned u = 0; u < t; u++) {
                pthread_join(threads[u], NULL);
            }
            goto done;
        }
    }
    unsigned allowed = 0, denied = 0, errors = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        allowed += workers[t].allowed;
        denied += workers[t].denied;
        errors += workers[t].errors;
    }
    printf("threads: %u allowed, %u denied, %u errors of %u verifies from %u threads\n", allowed,
           denied, errors, THREADS * ATTEMPTS, THREADS);
    if (errors != 0 || allowed != LIMIT || allowed + denied != THREADS * ATTEMPTS) {
        fprintf(stderr, "expected exactly %u admitted verifies\n", LIMIT);
        goto done;
    }

    nanu_remaining remaining;
    const char *key_id = nanu_secret_key_id(secret);
    if (nanu_vault_remaining(vault, key_id, strlen(key_id), 0, &remaining, NULL) !=
            NANU_STATUS_OK ||
        remaining.requests != 0) {
        fprintf(stderr, "remaining requests should be 0: %s\n", nanu_last_error());
        goto done;
    }
    if (nanu_vault_usage(vault, TEXT("{}"), &report) != NANU_STATUS_OK) {
        fprintf(stderr, "usage: %s\n", nanu_last_error());
        goto done;
    }
    const char *json = nanu_string_ptr(report);
    printf("usage: %s\n", json);
    if (check_u64(json, "requests", LIMIT) || check_u64(json, "input_tokens", 3ULL * LIMIT) ||
        check_u64(json, "output_tokens", 2ULL * LIMIT) ||
        check_u64(json, "tokens", 5ULL * LIMIT) ||
        strstr(json, "\"cost\":7000}") == NULL) {
        fprintf(stderr, "the charges do not add up\n");
        goto done;
    }
    code = 0;
    printf("threads: ok\n");

done:
    nanu_string_free(report);
    nanu_secret_free(secret);
    if (nanu_vault_close(vault) != NANU_STATUS_OK) {
        fprintf(stderr, "close: %s\n", nanu_last_error());
        code = 1;
    }
    nanu_options_free(options);
    unlink(path);
    rmdir(dir);
    return code;
}
