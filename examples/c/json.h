/*
 * A small JSON reader for the C scenario runner: it parses a whole document into a tree,
 * keeps integers exact (up to 2^64 - 1, and negative ones down to -2^63), and remembers each
 * value's source text so that a payload can be handed to nanu byte for byte.
 *
 * It is not a general-purpose library: no writer, no floating-point conversion (a number
 * with a fraction or exponent is kept as text only), a nesting limit of 64.
 */
#ifndef NANU_EXAMPLES_JSON_H
#define NANU_EXAMPLES_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_kind;

typedef struct json_value json_value;

struct json_value {
    json_kind kind;
    /* The value's text in the parsed document (not NUL-terminated). */
    const char *raw;
    size_t raw_len;
    /* JSON_BOOL. */
    bool boolean;
    /* JSON_NUMBER: `is_u64` for an integer from 0 to 2^64 - 1, `is_i64` for a negative
     * integer down to -2^63. */
    bool is_u64;
    uint64_t u64;
    bool is_i64;
    int64_t i64;
    /* JSON_STRING: the decoded text, NUL-terminated (it may contain NULs: use the length). */
    char *string;
    size_t string_len;
    /* JSON_ARRAY and JSON_OBJECT: `len` items; objects also have `keys` (decoded,
     * NUL-terminated), in document order. */
    size_t len;
    json_value **items;
    char **keys;
};

/* Parses `len` bytes. Returns NULL on malformed input, with a message in `error`. The tree
 * borrows `text` for the `raw` spans: keep the text alive while the tree is used. */
json_value *json_parse(const char *text, size_t len, char *error, size_t error_len);

/* Frees a tree from json_parse; NULL does nothing. */
void json_free(json_value *value);

/* The member `key` of an object, or NULL (also when `object` is NULL or not an object). */
const json_value *json_get(const json_value *object, const char *key);

/* Whether two values are equal: same kind, same numbers (by exact value when both are
 * integers, by text otherwise), same strings, arrays item by item, objects with the same
 * keys (in any order) and equal members. */
bool json_equal(const json_value *a, const json_value *b);

#endif /* NANU_EXAMPLES_JSON_H */
