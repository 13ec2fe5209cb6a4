-- The PostgreSQL peer: the same table of keys as sql/sqlite.sql, and a plpgsql function that
-- verifies the key, checks its budget and token bucket and charges the cost in one round
-- trip (one statement, one transaction). Each block is named by a `-- name:` line; the
-- Python and Node drivers read the blocks from this file.

-- name: schema
DROP FUNCTION IF EXISTS verify_charge(bytea, bigint);
DROP TABLE IF EXISTS keys;
CREATE TABLE keys (
    digest bytea PRIMARY KEY,
    key_id text NOT NULL,
    status text NOT NULL,
    budget bigint NOT NULL,
    spent bigint NOT NULL,
    rate double precision NOT NULL,
    per_ms bigint NOT NULL,
    tokens double precision NOT NULL,
    at_ms bigint NOT NULL
);

-- The row lock (FOR UPDATE) closes the gap between the check and the charge when several
-- clients charge the same key; the clock is the server's, read once per call.
CREATE FUNCTION verify_charge(p_digest bytea, p_cost bigint)
RETURNS TABLE (allowed boolean, code text, key_id text)
LANGUAGE plpgsql AS $$
DECLARE
    k keys%ROWTYPE;
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    bucket double precision;
BEGIN
    SELECT * INTO k FROM keys WHERE keys.digest = p_digest FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF k.status <> 'active' THEN
        RETURN QUERY SELECT false, k.status, k.key_id;
        RETURN;
    END IF;
    IF k.spent >= k.budget THEN
        RETURN QUERY SELECT false, 'budget_exceeded'::text, k.key_id;
        RETURN;
    END IF;
    bucket := least(k.rate, k.tokens + greatest(now_ms - k.at_ms, 0) * k.rate / k.per_ms);
    IF bucket < 1 THEN
        RETURN QUERY SELECT false, 'rate_limited'::text, k.key_id;
        RETURN;
    END IF;
    UPDATE keys SET spent = keys.spent + p_cost, tokens = bucket - 1, at_ms = now_ms
    WHERE keys.digest = p_digest;
    RETURN QUERY SELECT true, 'valid'::text, k.key_id;
END
$$;

-- name: verify
SELECT key_id, status, budget, spent FROM keys WHERE digest = $1;

-- name: verify_charge
SELECT allowed, code, key_id FROM verify_charge($1, $2);
