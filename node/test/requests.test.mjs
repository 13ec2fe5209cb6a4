// verify, charge, holds and release: every verdict code and what each call changes.

import assert from 'node:assert/strict'
import { test } from 'node:test'

import { Vault } from 'nanu'

import { KDF, freshVault, rejectsCode, throwsCode } from './helpers.mjs'

const AT = Date.parse('2025-01-01T00:00:00Z')

test('a valid verify returns a plain verdict and consumes one request', (t) => {
  const vault = freshVault(t)
  vault.setPrice('gpt-4o', { inputPerMtok: 2_500_000, outputPerMtok: 10_000_000 })
  const { keyId, secret } = vault.mint({
    owner: 'acme',
    limits: ['cost=$10/month', 'requests=100/min', 'tokens=1M/day'],
  })
  const verdict = vault.verify(secret, { model: 'gpt-4o' })
  assert.deepEqual(verdict, {
    allowed: true,
    code: 'valid',
    httpStatus: 200,
    keyId,
    owner: 'acme',
    env: 'live',
    model: 'gpt-4o',
    deniedBy: null,
    retryAfterMs: null,
    resetsAt: null,
    remaining: {
      requests: 99,
      tokens: 1_000_000,
      inputTokens: null,
      outputTokens: null,
      cost: 10_000_000,
    },
    holdId: null,
    grace: false,
  })
  assert.equal(Object.getPrototypeOf(verdict), Object.prototype)
  assert.equal(vault.verify(secret).remaining.requests, 98)
})

test('every denial code, with its HTTP status', (t) => {
  const vault = freshVault(t)
  const mint = (spec) => vault.mint({ owner: 'o', ...spec }).secret
  const cases = [
    ['malformed', 401, 'nanu_live_garbage', {}],
    ['malformed', 401, '', {}],
    ['malformed', 401, 'x'.repeat(100_000), {}],
    [
      'disabled',
      403,
      (() => {
        const m = vault.mint({ owner: 'o' })
        vault.update(m.keyId, { disabled: true })
        return m.secret
      })(),
      {},
    ],
    [
      'revoked',
      401,
      (() => {
        const m = vault.mint({ owner: 'o' })
        vault.revoke(m.keyId)
        return m.secret
      })(),
      {},
    ],
    ['expired', 401, mint({ expiresAt: AT }), { at: AT }],
    ['env_mismatch', 403, mint({ env: 'test' }), { env: 'live' }],
    ['ip_denied', 403, mint({ ips: ['10.0.0.0/8'] }), { ip: '192.168.1.1' }],
    ['ip_denied', 403, mint({ ips: ['10.0.0.0/8'] }), {}],
    ['scope_denied', 403, mint({ scopes: ['read'] }), { scope: 'write' }],
    ['model_denied', 403, mint({ models: ['gpt-4o'] }), { model: 'gpt-4' }],
    ['model_unpriced', 403, mint({ limits: ['cost=$1'] }), { model: 'unpriced-model' }],
    ['usage_exceeded', 429, mint({ limits: ['requests=0'] }), {}],
    ['budget_exceeded', 429, mint({ limits: ['cost=$1'] }), { hold: { cost: 2_000_000 } }],
    ['rate_limited', 429, mint({ limits: ['requests=0/min'] }), {}],
  ]
  for (const [code, status, secret, request] of cases) {
    const verdict = vault.verify(secret, request)
    assert.equal(verdict.allowed, false, code)
    assert.equal(verdict.code, code)
    assert.equal(verdict.httpStatus, status, code)
    assert.equal(verdict.holdId, null, code)
  }
  // A well-formed secret of another vault is not found here.
  const other = Vault.create(`${vault.path}.other`, { passphrase: 'p', kdf: KDF })
  const foreign = other.mint({ owner: 'o' }).secret
  other.close()
  assert.equal(vault.verify(foreign).code, 'not_found')
  assert.equal(vault.verify(foreign).httpStatus, 401)
})

test('valid checks pass: ip ranges v4 and v6, scopes, aliases, env, surrounding spaces', (t) => {
  const vault = freshVault(t)
  const { secret } = vault.mint({
    owner: 'o',
    env: 'test',
    ips: ['10.0.0.0/8', '2001:db8::/32'],
    scopes: ['chat'],
    models: ['openai/*'],
    aliases: { fast: 'openai/gpt-4o-mini' },
  })
  const request = { ip: '10.1.2.3', scope: 'chat', model: 'fast', env: 'test' }
  const verdict = vault.verify(`  ${secret}\n`, request)
  assert.equal(verdict.code, 'valid')
  assert.equal(verdict.model, 'openai/gpt-4o-mini')
  assert.equal(vault.verify(secret, { ...request, ip: '2001:db8::1' }).code, 'valid')
  assert.equal(vault.verify(secret, { ...request, ip: '::ffff:10.0.0.1' }).code, 'valid')
  assert.equal(vault.verify(secret.toUpperCase(), request).code, 'malformed')
  const flipped = secret.slice(0, -1) + (secret.endsWith('a') ? 'b' : 'a')
  assert.equal(vault.verify(flipped, request).code, 'malformed')
})

test('rate limits give retryAfterMs and resetsAt', (t) => {
  const vault = freshVault(t)
  const { secret } = vault.mint({ owner: 'o', limits: ['requests=2/10s'] }, { at: AT })
  assert.equal(vault.verify(secret, { at: AT }).allowed, true)
  assert.equal(vault.verify(secret, { at: AT }).allowed, true)
  const denied = vault.verify(secret, { at: AT })
  assert.equal(denied.code, 'rate_limited')
  assert.equal(denied.retryAfterMs, 5000)
  assert.equal(denied.resetsAt, AT + 10_000)
  assert.equal(denied.deniedBy.level, 'key')
  assert.equal(denied.deniedBy.index, 0)
  assert.equal(denied.deniedBy.limit.text, 'requests=2/10s')
  assert.equal(denied.deniedBy.remaining, 0)
  // Microseconds survive an RFC 3339 time.
  assert.equal(vault.verify(secret, { at: '2025-01-01T00:00:04.999999Z' }).retryAfterMs, 1)
  assert.equal(vault.verify(secret, { at: new Date(AT + 5000) }).allowed, true)
})

test('holds reserve budget until charge or release', (t) => {
  const vault = freshVault(t)
  vault.setPrice('gpt-4o', { inputPerMtok: 2_500_000, outputPerMtok: 10_000_000 })
  const { keyId, secret } = vault.mint({ owner: 'o', limits: ['cost=$0.10'], models: ['gpt-4o'] })
  const hold = { cost: 30_000 }
  const a = vault.verify(secret, { model: 'gpt-4o', hold })
  const b = vault.verify(secret, { model: 'gpt-4o', hold })
  const c = vault.verify(secret, { model: 'gpt-4o', hold })
  assert.deepEqual(
    [a, b, c].map((v) => v.remaining.cost),
    [70_000, 40_000, 10_000],
  )
  assert.equal(typeof a.holdId, 'number')
  assert.equal(vault.stats().holds, 3)
  const denied = vault.verify(secret, { model: 'gpt-4o', hold })
  assert.equal(denied.code, 'budget_exceeded')
  assert.equal(denied.deniedBy.limit.unit, 'cost')

  const outcome = vault.charge(keyId, {
    model: 'gpt-4o',
    inputTokens: 1000,
    outputTokens: 500,
    requestId: 'r1',
    holdId: a.holdId,
  })
  assert.deepEqual(outcome, { keyId, cost: 7500, priced: true, exceeded: [], replayed: false })
  assert.equal(vault.release(b.holdId), true)
  assert.equal(vault.release(b.holdId), false)
  assert.equal(vault.release(123_456_789), false)
  assert.equal(vault.release(2n ** 63n), false)
  assert.equal(vault.remaining(keyId).cost, 100_000 - 7500 - 30_000)
  assert.equal(vault.stats().holds, 1)
})

test('a hold given back by tick after its timeout', (t) => {
  const vault = freshVault(t, { holdTimeoutMs: 60_000 })
  const { keyId, secret } = vault.mint({ owner: 'o', limits: ['tokens=1000'] }, { at: AT })
  vault.verify(secret, { hold: { inputTokens: 600 }, at: AT })
  assert.equal(vault.remaining(keyId, AT).tokens, 400)
  vault.tick(AT + 59_999)
  assert.equal(vault.remaining(keyId, AT + 59_999).tokens, 400)
  vault.tick(AT + 60_000)
  assert.equal(vault.remaining(keyId, AT + 60_000).tokens, 1000)
  vault.tick()
  vault.tick(new Date())
})

test('charges are idempotent by request id; other numbers conflict', async (t) => {
  const vault = freshVault(t)
  const { keyId } = vault.mint({ owner: 'o', limits: ['tokens=100'] })
  const first = vault.charge(keyId, { inputTokens: 60, outputTokens: 60, cost: 5, requestId: 'r' })
  assert.equal(first.replayed, false)
  assert.equal(first.exceeded.length, 1)
  assert.equal(first.exceeded[0].limit.unit, 'tokens')
  const again = vault.charge(keyId, { inputTokens: 60, outputTokens: 60, cost: 5, requestId: 'r' })
  assert.equal(again.replayed, true)
  throwsCode(
    () => vault.charge(keyId, { inputTokens: 61, outputTokens: 60, cost: 5, requestId: 'r' }),
    'conflict',
  )
  const viaPromise = await vault.chargeAsync(keyId, { inputTokens: 1, cost: 1, requestId: 'async' })
  assert.equal(viaPromise.keyId, keyId)
  assert.equal(viaPromise.cost, 1)
  await rejectsCode(vault.chargeAsync(keyId, { inputTokens: -1 }), 'invalid_argument')
  await rejectsCode(vault.chargeAsync('key_missing', { inputTokens: 1 }), 'not_found')
  throwsCode(() => vault.charge('key_missing', { inputTokens: 1 }), 'not_found')
  // Delivered usage is recorded even past the limit, and the next verify is denied.
  assert.equal(vault.remaining(keyId).tokens, 0)
})

test('charge prices tokens from the table, or records zero for an unpriced model', (t) => {
  const vault = freshVault(t)
  vault.setPrice('m', { inputPerMtok: 1_000_000, outputPerMtok: 2_000_000, perRequest: 10 })
  const { keyId } = vault.mint({ owner: 'o' })
  const priced = vault.charge(keyId, { model: 'm', inputTokens: 1_000_000, outputTokens: 1 })
  assert.equal(priced.cost, 1_000_000 + 2 + 10)
  assert.equal(priced.priced, true)
  const unpriced = vault.charge(keyId, { model: 'other', inputTokens: 5 })
  assert.equal(unpriced.cost, 0)
  assert.equal(unpriced.priced, false)
  assert.equal(vault.events().at(-1).kind, 'unpriced')
})

test('remaining lists every limit of the key and its owner', (t) => {
  const vault = freshVault(t)
  vault.setOwnerPolicy('acme', ['requests=1000/day'])
  const { keyId, secret } = vault.mint(
    { owner: 'acme', limits: ['requests=10', 'cost=$1/month@Europe/Berlin'] },
    { at: AT },
  )
  vault.verify(secret, { at: AT })
  const r = vault.remaining(keyId, AT)
  assert.equal(r.requests, 9)
  assert.equal(r.cost, 1_000_000)
  assert.deepEqual(
    r.limits.map((s) => [s.level, s.index, s.limit.text, s.used, s.held, s.remaining]),
    [
      ['key', 0, 'requests=10', 1, 0, 9],
      ['key', 1, 'cost=$1/month@Europe/Berlin', 0, 0, 1_000_000],
      ['owner', 0, 'requests=1k/day', 1, 0, 999],
    ],
  )
  assert.equal(r.limits[0].resetsAt, null)
  assert.equal(r.limits[1].resetsAt, Date.parse('2025-01-31T23:00:00Z'))
  assert.equal(r.limits[2].resetsAt, Date.parse('2025-01-02T00:00:00Z'))
  throwsCode(() => vault.remaining('key_missing'), 'not_found')
})
