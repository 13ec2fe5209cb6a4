-- The hand-written SQLite peer: one table of keys looked up by the SHA-256 of the secret.
-- Each block below is named by a `-- name:` line; the Python and Node drivers read the blocks
-- from this file, so both languages run exactly the same statements.
--
-- A key carries a lifetime budget (`budget`, `spent`, in micro-units) and a token bucket
-- (`rate` requests per `per_ms` milliseconds, burst `rate`; `tokens` left at `at_ms`).
-- The bucket arithmetic runs in the client between the SELECT and the UPDATE, inside one
-- BEGIN IMMEDIATE transaction, so no other writer can slip in between.

-- name: schema
CREATE TABLE keys (
    digest BLOB PRIMARY KEY,
    key_id TEXT NOT NULL,
    status TEXT NOT NULL,
    budget INTEGER NOT NULL,
    spent INTEGER NOT NULL,
    rate REAL NOT NULL,
    per_ms INTEGER NOT NULL,
    tokens REAL NOT NULL,
    at_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- name: insert
INSERT INTO keys (digest, key_id, status, budget, spent, rate, per_ms, tokens, at_ms)
VALUES (?, ?, 'active', ?, 0, ?, ?, ?, ?);

-- name: verify
SELECT key_id, status, budget, spent FROM keys WHERE digest = ?;

-- name: select_for_charge
SELECT key_id, status, budget, spent, rate, per_ms, tokens, at_ms FROM keys WHERE digest = ?;

-- name: charge
UPDATE keys SET spent = spent + ?, tokens = ?, at_ms = ? WHERE digest = ?;
