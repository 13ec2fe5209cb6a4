/* A small JSON reader; see json.h for what it does and does not do. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *text;
    size_t len;
    size_t pos;
    char *error;
    size_t error_len;
} parser;

static void fail(parser *p, const char *what) {
    if (p->error_len > 0 && p->error[0] == '\0') {
        snprintf(p->error, p->error_len, "%s at byte %zu", what, p->pos);
    }
}

static void skip_space(parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        p->pos++;
    }
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) {
        return false;
    }
    p->pos += n;
    return true;
}

/* A growable byte buffer for decoded strings. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buffer;

static bool push(buffer *b, char c) {
    if (b->len + 1 >= b->cap) {
        size_t cap = b->cap == 0 ? 32 : b->cap * 2;
        char *data = realloc(b->data, cap);
        if (data == NULL) {
            return false;
        }
        b->data = data;
        b->cap = cap;
    }
    b->data[b->len++] = c;
    return true;
}

static bool push_utf8(buffer *b, uint32_t cp) {
    if (cp < 0x80) {
        return push(b, (char)cp);
    }
    if (cp < 0x800) {
        return push(b, (char)(0xC0 | (cp >> 6))) && push(b, (char)(0x80 | (cp & 0x3F)));
    }
    if (cp < 0x10000) {
        return push(b, (char)(0xE0 | (cp >> 12))) && push(b, (char)(0x80 | ((cp >> 6) & 0x3F))) &&
               push(b, (char)(0x80 | (cp & 0x3F)));
    }
    return push(b, (char)(0xF0 | (cp >> 18))) && push(b, (char)(0x80 | ((cp >> 12) & 0x3F))) &&
           push(b, (char)(0x80 | ((cp >> 6) & 0x3F))) && push(b, (char)(0x80 | (cp & 0x3F)));
}

static bool hex4(parser *p, uint32_t *out) {
    if (p->len - p->pos < 4) {
        return false;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t)(c - 'A' + 10);
        } else {
            return false;
        }
    }
    *out = v;
    return true;
}

/* Parses a string at p->pos (which is at the opening quote) into a NUL-terminated copy. */
static char *parse_string(parser *p, size_t *out_len) {
    buffer b = {0};
    p->pos++;
    for (;;) {
        if (p->pos >= p->len) {
            fail(p, "unterminated string");
            free(b.data);
            return NULL;
        }
        unsigned char c = (unsigned char)p->text[p->pos++];
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            fail(p, "control character in string");
            free(b.data);
            return NULL;
        }
        if (c != '\\') {
            if (!push(&b, (char)c)) {
                goto oom;
            }
            continue;
        }
        if (p->pos >= p->len) {
            fail(p, "unterminated escape");
            free(b.data);
            return NULL;
        }
        char e = p->text[p->pos++];
        char plain = 0;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!hex4(p, &cp)) {
                fail(p, "bad \\u escape");
                free(b.data);
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                if (!literal(p, "\\u") || !hex4(p, &low) || low < 0xDC00 || low > 0xDFFF) {
                    fail(p, "unpaired surrogate");
                    free(b.data);
                    return NULL;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, "unpaired surrogate");
                free(b.data);
                return NULL;
            }
            if (!push_utf8(&b, cp)) {
                goto oom;
            }
            continue;
        }
        default:
            fail(p, "unknown escape");
            free(b.data);
            return NULL;
        }
        if (!push(&b, plain)) {
            goto oom;
        }
    }
    if (!push(&b, '\0')) {
        goto oom;
    }
    *out_len = b.len - 1;
    return b.data;
oom:
    fail(p, "out of memory");
    free(b.data);
    return NULL;
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static bool parse_number(parser *p, json_value *v) {
    bool negative = false;
    if (p->text[p->pos] == '-') {
        negative = true;
        p->pos++;
    }
    if (p->pos >= p->len || !is_digit(p->text[p->pos])) {
        fail(p, "bad number");
        return false;
    }
    bool integer = true;
    uint64_t magnitude = 0;
    bool overflow = false;
    if (p->text[p->pos] == '0') {
        p->pos++;
    } else {
        while (p->pos < p->len && is_digit(p->text[p->pos])) {
            uint64_t digit = (uint64_t)(p->text[p->pos] - '0');
            if (magnitude > (UINT64_MAX - digit) / 10) {
                overflow = true;
            } else {
                magnitude = magnitude * 10 + digit;
            }
            p->pos++;
        }
    }
    if (p->pos < p->len && p->text[p->pos] == '.') {
        integer = false;
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->text[p->pos])) {
            fail(p, "bad fraction");
            return false;
        }
        while (p->pos < p->len && is_digit(p->text[p->pos])) {
            p->pos++;
        }
    }
    if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        integer = false;
        p->pos++;
        if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-')) {
            p->pos++;
        }
        if (p->pos >= p->len || !is_digit(p->text[p->pos])) {
            fail(p, "bad exponent");
            return false;
        }
        while (p->pos < p->len && is_digit(p->text[p->pos])) {
            p->pos++;
        }
    }
    v->kind = JSON_NUMBER;
    if (integer && !overflow) {
        if (!negative) {
            v->is_u64 = true;
            v->u64 = magnitude;
        } else if (magnitude <= (uint64_t)INT64_MAX + 1) {
            v->is_i64 = true;
            v->i64 = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
        }
    }
    return true;
}

static json_value *parse_value(parser *p, int depth);

static bool append(json_value *v, json_value *item, char *key) {
    json_value **items = realloc(v->items, (v->len + 1) * sizeof *items);
    if (items == NULL) {
        return false;
    }
    v->items = items;
    if (v->kind == JSON_OBJECT) {
        char **keys = realloc(v->keys, (v->len + 1) * sizeof *keys);
        if (keys == NULL) {
            return false;
        }
        v->keys = keys;
        v->keys[v->len] = key;
    }
    v->items[v->len++] = item;
    return true;
}

static bool parse_members(parser *p, json_value *v, int depth) {
    bool object = v->kind == JSON_OBJECT;
    char close = object ? '}' : ']';
    p->pos++;
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        if (object) {
            skip_space(p);
            if (p->pos >= p->len || p->text[p->pos] != '"') {
                fail(p, "expected a member name");
                return false;
            }
            size_t key_len;
            key = parse_string(p, &key_len);
            if (key == NULL) {
                return false;
            }
            skip_space(p);
            if (p->pos >= p->len || p->text[p->pos] != ':') {
                fail(p, "expected ':'");
                free(key);
                return false;
            }
            p->pos++;
        }
        json_value *item = parse_value(p, depth + 1);
        if (item == NULL) {
            free(key);
            return false;
        }
        if (!append(v, item, key)) {
            fail(p, "out of memory");
            json_free(item);
            free(key);
            return false;
        }
        skip_space(p);
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->text[p->pos] == close) {
            p->pos++;
            return true;
        }
        fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return false;
    }
}

static json_value *parse_value(parser *p, int depth) {
    if (depth > MAX_DEPTH) {
        fail(p, "nested too deeply");
        return NULL;
    }
    skip_space(p);
    if (p->pos >= p->len) {
        fail(p, "unexpected end");
        return NULL;
    }
    json_value *v = calloc(1, sizeof *v);
    if (v == NULL) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t start = p->pos;
    bool ok = true;
    char c = p->text[p->pos];
    if (c == '{' || c == '[') {
        v->kind = c == '{' ? JSON_OBJECT : JSON_ARRAY;
        ok = parse_members(p, v, depth);
    } else if (c == '"') {
        v->kind = JSON_STRING;
        v->string = parse_string(p, &v->string_len);
        ok = v->string != NULL;
    } else if (literal(p, "true")) {
        v->kind = JSON_BOOL;
        v->boolean = true;
    } else if (literal(p, "false")) {
        v->kind = JSON_BOOL;
    } else if (literal(p, "null")) {
        v->kind = JSON_NULL;
    } else if (c == '-' || is_digit(c)) {
        ok = parse_number(p, v);
    } else {
        fail(p, "unexpected character");
        ok = false;
    }
    if (!ok) {
        json_free(v);
        return NULL;
    }
    v->raw = p->text + start;
    v->raw_len = p->pos - start;
    return v;
}

json_value *json_parse(const char *text, size_t len, char *error, size_t error_len) {
    if (error_len > 0) {
        error[0] = '\0';
    }
    parser p = {text, len, 0, error, error_len};
    json_value *v = parse_value(&p, 0);
    if (v == NULL) {
        return NULL;
    }
    skip_space(&p);
    if (p.pos != p.len) {
        fail(&p, "trailing characters");
        json_free(v);
        return NULL;
    }
    return v;
}

void json_free(json_value *v) {
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->len; i++) {
        json_free(v->items[i]);
        if (v->keys != NULL) {
            free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    free(v);
}

const json_value *json_get(const json_value *object, const char *key) {
    if (object == NULL || object->kind != JSON_OBJECT) {
        return NULL;
    }
    for (size_t i = 0; i < object->len; i++) {
        if (strcmp(object->keys[i], key) == 0) {
            return object->items[i];
        }
    }
    return NULL;
}

bool json_equal(const json_value *a, const json_value *b) {
    if (a->kind != b->kind) {
        return false;
    }
    switch (a->kind) {
    case JSON_NULL:
        return true;
    case JSON_BOOL:
        return a->boolean == b->boolean;
    case JSON_NUMBER:
        if (a->is_u64 && b->is_u64) {
            return a->u64 == b->u64;
        }
        if (a->is_i64 && b->is_i64) {
            return a->i64 == b->i64;
        }
        return a->raw_len == b->raw_len && memcmp(a->raw, b->raw, a->raw_len) == 0;
    case JSON_STRING:
        return a->string_len == b->string_len &&
               memcmp(a->string, b->string, a->string_len) == 0;
    case JSON_ARRAY:
        if (a->len != b->len) {
            return false;
        }
        for (size_t i = 0; i < a->len; i++) {
            if (!json_equal(a->items[i], b->items[i])) {
                return false;
            }
        }
        return true;
    case JSON_OBJECT:
        if (a->len != b->len) {
            return false;
        }
        for (size_t i = 0; i < a->len; i++) {
            const json_value *other = json_get(b, a->keys[i]);
            if (other == NULL || !json_equal(a->items[i], other)) {
                return false;
            }
        }
        return true;
    }
    return false;
}
