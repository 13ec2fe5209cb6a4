// The objects the addon returns have exactly the fields index.d.ts declares, in order, and
// 64-bit figures come back as a number up to 2^53 - 1 and as a bigint above.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import { PACKAGE, declaredFields, declaredUnion, freshVault } from './helpers.mjs'

test('the suite runs against the installed package', () => {
  const entry = createRequire(import.meta.url).resolve('nanu')
  assert.ok(entry.startsWith(PACKAGE), `${entry} is outside ${PACKAGE}`)
})

test('every output object matches its declaration', (t) => {
  const vault = freshVault(t)
  vault.setPrice('m', { inputPerMtok: 1 })
  const seen = []
  vault.subscribe((e) => seen.push(e))
  const minted = vault.mint({ owner: 'o', limits: ['requests=1', 'cost=$1/day'] })
  const verdict = vault.verify(minted.secret, { model: 'm', hold: { cost: 10 } })
  const denied = vault.verify(minted.secret)
  const outcome = vault.charge(minted.keyId, {
    model: 'm',
    cost: 2_000_000,
    holdId: verdict.holdId,
  })
  vault.flush()
  const samples = {
    Minted: minted,
    Verdict: verdict,
    RemainingSummary: verdict.remaining,
    LimitStatus: denied.deniedBy,
    Limit: denied.deniedBy.limit,
    ChargeOutcome: outcome,
    KeyInfo: vault.get(minted.keyId),
    KeyPage: vault.list(),
    Remaining: vault.remaining(minted.keyId),
    OwnerInfo: vault.owner('o'),
    Price: vault.price('m'),
    PriceImport: vault.importPrices({ x: { input_cost_per_token: 1e-6 }, y: { mode: 'image' } }),
    PriceNote: vault.importPrices({ y: { mode: 'image' } }).skipped[0],
    UsageRow: vault.usage()[0],
    UsageRecord: vault.usageRecords()[0],
    Event: vault.events()[0],
    AuditRecord: vault.audit()[0],
    AuditCheck: vault.verifyAudit(),
    Stats: vault.stats(),
  }
  for (const [name, value] of Object.entries(samples)) {
    assert.ok(value && typeof value === 'object', `${name} sample`)
    assert.deepEqual(Object.keys(value), declaredFields(name), name)
  }
  assert.deepEqual(Object.keys(seen[0] ?? samples.Event), declaredFields('Event'))
})

test('verdict codes and error codes are the declared unions', (t) => {
  const codes = declaredUnion('VerdictCode')
  assert.equal(codes.length, 14)
  assert.deepEqual(declaredUnion('ErrorCode'), [
    'invalid_argument',
    'not_found',
    'wrong_passphrase',
    'locked',
    'not_a_vault',
    'corrupt',
    'storage',
    'conflict',
    'closed',
  ])
  assert.deepEqual(declaredUnion('Durability'), ['durable', 'process', 'relaxed'])
  const vault = freshVault(t)
  assert.ok(codes.includes(vault.verify('garbage').code))
})

test('64-bit figures: number up to 2^53 - 1, bigint above, never rounded', (t) => {
  const vault = freshVault(t)
  const big = 2n ** 60n
  const { keyId, secret } = vault.mint({
    owner: 'o',
    limits: [
      { unit: 'tokens', amount: big, window: 'lifetime' },
      { unit: 'input_tokens', amount: Number.MAX_SAFE_INTEGER, window: 'lifetime' },
      'output_tokens=30B',
    ],
  })
  const [tokens, input, output] = vault.get(keyId).limits
  assert.equal(tokens.amount, big)
  assert.equal(typeof tokens.amount, 'bigint')
  assert.equal(input.amount, Number.MAX_SAFE_INTEGER)
  assert.equal(typeof input.amount, 'number')
  assert.equal(output.amount, 30_000_000_000)
  const verdict = vault.verify(secret, { hold: { inputTokens: 1 } })
  assert.equal(verdict.remaining.tokens, big - 1n)
  assert.equal(verdict.remaining.inputTokens, Number.MAX_SAFE_INTEGER - 1)
  const max = 2n ** 64n - 1n
  assert.equal(vault.charge(keyId, { cost: max }).cost, max)
  assert.equal(vault.usage()[0].cost, max)
})
