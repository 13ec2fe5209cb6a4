// Every kind of bad input throws invalid_argument (or, for a secret, gives a malformed
// verdict); nothing is rounded, truncated or silently ignored.

import assert from 'node:assert/strict'
import { test } from 'node:test'

import { freshVault, throwsCode } from './helpers.mjs'

/** Numbers a u64 argument must refuse. */
const BAD_NUMBERS = [
  -1,
  -0.5,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  2 ** 53,
  Number.MAX_SAFE_INTEGER + 2,
  1e300,
  -1n,
  2n ** 64n,
  '5',
  true,
  {},
  [],
  () => 1,
  Symbol('n'),
]

function setup(t) {
  const vault = freshVault(t)
  const { keyId, secret } = vault.mint({ owner: 'o', limits: ['tokens=1T'] })
  return { vault, keyId, secret }
}

test('u64 arguments take safe integers and bigints, and refuse everything else', (t) => {
  const { vault, keyId, secret } = setup(t)
  for (const bad of BAD_NUMBERS) {
    const label = String(typeof bad === 'symbol' ? 'symbol' : bad)
    throwsCode(
      () => vault.charge(keyId, { inputTokens: bad }),
      'invalid_argument',
      /inputTokens/,
      label,
    )
    throwsCode(() => vault.charge(keyId, { cost: bad }), 'invalid_argument', /cost/, label)
    throwsCode(() => vault.charge(keyId, { holdId: bad }), 'invalid_argument', /holdId/, label)
    throwsCode(
      () => vault.verify(secret, { hold: { cost: bad } }),
      'invalid_argument',
      /hold\.cost/,
      label,
    )
    throwsCode(() => vault.release(bad), 'invalid_argument', /holdId/, label)
    throwsCode(() => vault.events(bad), 'invalid_argument', /afterSeq/, label)
    throwsCode(() => vault.audit(0, bad), 'invalid_argument', /limit/, label)
    throwsCode(() => vault.rotate(keyId, { graceMs: bad }), 'invalid_argument', /graceMs/, label)
    throwsCode(
      () => vault.setPrice('m', { inputPerMtok: bad }),
      'invalid_argument',
      /inputPerMtok/,
      label,
    )
    throwsCode(
      () =>
        vault.mint({ owner: 'o', limits: [{ unit: 'tokens', amount: bad, window: 'lifetime' }] }),
      'invalid_argument',
      /amount/,
      label,
    )
  }
  // The accepted extremes.
  const max = 2n ** 64n - 1n
  assert.equal(
    vault.verify(secret, { hold: { inputTokens: Number.MAX_SAFE_INTEGER } }).code,
    'usage_exceeded',
  )
  assert.equal(vault.verify(secret, { hold: { cost: max } }).allowed, true)
  assert.equal(vault.release(max), false)
  const outcome = vault.charge(keyId, { inputTokens: 2n ** 60n, cost: max })
  assert.equal(outcome.cost, max)
  assert.equal(typeof outcome.cost, 'bigint')
  assert.equal(vault.charge(keyId, { inputTokens: 0, cost: -0 }).cost, 0)
})

test('times take a Date, safe-integer milliseconds or RFC 3339, and refuse the rest', (t) => {
  const { vault, keyId, secret } = setup(t)
  for (const bad of [
    1.5,
    Number.NaN,
    2 ** 60,
    new Date('nope'),
    'yesterday',
    '2025-13-01T00:00:00Z',
    {},
    [],
    true,
    10n,
  ]) {
    const label = String(bad)
    throwsCode(() => vault.verify(secret, { at: bad }), 'invalid_argument', /request\.at/, label)
    throwsCode(() => vault.charge(keyId, { at: bad }), 'invalid_argument', /usage\.at/, label)
    throwsCode(() => vault.tick(bad), 'invalid_argument', /\bat\b/, label)
    throwsCode(() => vault.revoke(keyId, { at: bad }), 'invalid_argument', /context\.at/, label)
    throwsCode(
      () => vault.mint({ owner: 'o', expiresAt: bad }),
      'invalid_argument',
      /expiresAt/,
      label,
    )
    throwsCode(() => vault.usage({ from: bad }), 'invalid_argument', /from/, label)
  }
  for (const good of [
    0,
    -86_400_000,
    Date.now(),
    new Date(),
    '2025-01-01T00:00:00.000001Z',
    '2025-01-01T01:00:00+01:00',
  ]) {
    vault.tick(good)
  }
})

test('strings are strings', (t) => {
  const { vault, keyId, secret } = setup(t)
  for (const bad of [undefined, null, 42, 1n, {}, [], true, Symbol('s')]) {
    const label = typeof bad === 'symbol' ? 'symbol' : String(bad)
    throwsCode(() => vault.verify(bad), 'invalid_argument', /secret/, label)
    throwsCode(() => vault.get(bad), 'invalid_argument', /keyId/, label)
    throwsCode(() => vault.charge(bad, {}), 'invalid_argument', /keyId/, label)
    throwsCode(() => vault.owner(bad), 'invalid_argument', /owner/, label)
    throwsCode(() => vault.setPrice(bad, null), 'invalid_argument', /model/, label)
    if (bad !== undefined && bad !== null) {
      throwsCode(
        () => vault.verify(secret, { model: bad }),
        'invalid_argument',
        /request\.model/,
        label,
      )
      throwsCode(
        () => vault.charge(keyId, { requestId: bad }),
        'invalid_argument',
        /requestId/,
        label,
      )
    }
  }
  throwsCode(() => vault.verify(secret, { ip: 'not-an-ip' }), 'invalid_argument', /request\.ip/)
  throwsCode(() => vault.verify(secret, { ip: '10.0.0.0/8' }), 'invalid_argument', /request\.ip/)
  // A secret that is not a key is a verdict, not an error.
  for (const garbage of [
    '',
    ' ',
    'nanu',
    'nanu_live_',
    `${secret}x`,
    secret.slice(0, -1),
    'é'.repeat(40),
    '\0'.repeat(60),
  ]) {
    assert.equal(vault.verify(garbage).code, 'malformed', JSON.stringify(garbage))
  }
})

test('objects are plain objects with known fields', (t) => {
  const { vault, keyId, secret } = setup(t)
  for (const bad of [42, 'x', [], [{ owner: 'o' }], new Date(), true]) {
    const label = JSON.stringify(bad)
    throwsCode(() => vault.mint(bad), 'invalid_argument', /spec/, label)
    throwsCode(() => vault.update(keyId, bad), 'invalid_argument', /patch/, label)
    throwsCode(() => vault.verify(secret, bad), 'invalid_argument', /request/, label)
    throwsCode(() => vault.charge(keyId, bad), 'invalid_argument', /usage/, label)
    throwsCode(() => vault.list(bad), 'invalid_argument', /filter/, label)
    throwsCode(() => vault.usage(bad), 'invalid_argument', /query/, label)
    throwsCode(() => vault.revoke(keyId, bad), 'invalid_argument', /context/, label)
    throwsCode(() => vault.verify(secret, { hold: bad }), 'invalid_argument', /hold/, label)
  }
  throwsCode(() => vault.mintMany({ owner: 'o' }), 'invalid_argument', /specs/)
  throwsCode(() => vault.mintMany([['o']]), 'invalid_argument', /specs\[0\]/)
  throwsCode(() => vault.setOwnerPolicy('o', 'requests=1'), 'invalid_argument', /limits/)
  throwsCode(
    () => vault.setOwnerPolicy('o', [['requests', 1, 'lifetime']]),
    'invalid_argument',
    /limits\[0\]/,
  )
  // Unknown fields are named, never ignored: a typo must not turn a check off.
  const unknown = [
    [() => vault.verify(secret, { modle: 'gpt-4o' }), /modle/],
    [() => vault.verify(secret, { hold: { tokens: 5 } }), /tokens/],
    [() => vault.charge(keyId, { input_tokens: 5 }), /input_tokens/],
    [() => vault.mint({ owner: 'o', expires: 5 }), /expires/],
    [() => vault.mint({ owner: 'o', expires_at: '2030-01-01T00:00:00Z' }), /expires_at/],
    [
      () =>
        vault.mint({
          owner: 'o',
          limits: [{ unit: 'cost', amount: 1, window: 'month', alert_at: [5] }],
        }),
      /alert_at/,
    ],
    [() => vault.update(keyId, { owner: 'x' }), /owner/],
    [() => vault.list({ page: 2 }), /page/],
    [() => vault.usage({ group: ['model'] }), /group/],
    [() => vault.setPrice('m', { input: 1 }), /input/],
    [() => vault.revoke(keyId, { who: 'me' }), /who/],
    [() => vault.rotate(keyId, { grace: 1 }), /grace/],
  ]
  for (const [call, name] of unknown) throwsCode(call, 'invalid_argument', name, String(name))
  // A field set to undefined counts as absent.
  assert.equal(vault.verify(secret, { model: undefined, modle: undefined }).code, 'valid')
  // A getter that throws surfaces its own exception.
  assert.throws(
    () =>
      vault.verify(secret, {
        get model() {
          throw new Error('boom')
        },
      }),
    /boom/,
  )
  assert.throws(
    () =>
      vault.charge(keyId, {
        get cost() {
          throw new RangeError('cost getter')
        },
      }),
    RangeError,
  )
})

test('bad values inside objects are named', (t) => {
  const { vault, keyId } = setup(t)
  const cases = [
    [() => vault.mint({ owner: '' }), /owner/],
    [() => vault.mint({ owner: 'o', env: 'Live!' }), /env/],
    [() => vault.mint({ owner: 'o', limits: ['requests=-1'] }), /negative amount/],
    [() => vault.mint({ owner: 'o', limits: ['cost=10'] }), /cost/],
    [
      () => vault.mint({ owner: 'o', limits: [{ unit: 'money', amount: 1, window: 'month' }] }),
      /money/,
    ],
    [
      () =>
        vault.mint({
          owner: 'o',
          limits: [{ unit: 'cost', amount: 1, window: 'month', tz: 'Mars/Base' }],
        }),
      /Mars/,
    ],
    [() => vault.mint({ owner: 'o', ips: ['300.1.1.1'] }), /300\.1\.1\.1/],
    [() => vault.mint({ owner: 'o', models: ['*'] }), /model/],
    [() => vault.mint({ owner: 'o', ttl: '-1h' }), /ttl/],
    [() => vault.mint({ owner: 'o', ttl: '1h', expiresAt: Date.now() }), /not both/],
    [() => vault.mint({ owner: 'o', metadata: [1, 2] }), /metadata/],
    [() => vault.mint({ owner: 'o', metadata: { n: Number.NaN } }), /metadata\.n/],
    [() => vault.mint({ owner: 'o', metadata: { f: () => 1 } }), /metadata\.f/],
    [() => vault.mint({ owner: 'o', scopes: 'chat' }), /scopes/],
    [() => vault.update(keyId, { disabled: 'yes' }), /disabled/],
    [() => vault.usage({ bucket: 'fortnight' }), /fortnight/],
    [() => vault.usage({ tz: 'Nowhere/Town' }), /Nowhere/],
    [
      () => vault.usage({ from: '2025-02-01T00:00:00Z', to: '2025-01-01T00:00:00Z' }),
      /from is after to/,
    ],
    [() => vault.charge(keyId, { model: 'a/../b' }), /model/],
    [() => vault.importPrices('{not json'), /./],
  ]
  for (const [call, message] of cases)
    throwsCode(call, 'invalid_argument', message, String(message))
  // Free-form metadata keeps fractional numbers, nested keys and nulls as given.
  const meta = { ratio: 0.25, big: 1e21, deep: { snake_case: null, list: [true, 'x'] } }
  const { keyId: id } = vault.mint({ owner: 'o', metadata: meta })
  assert.deepEqual(vault.get(id).metadata, meta)
})

test('calls with missing or extra arguments', (t) => {
  const { vault, keyId, secret } = setup(t)
  throwsCode(() => vault.verify(), 'invalid_argument', /secret/)
  throwsCode(() => vault.mint(), 'invalid_argument', /spec/)
  throwsCode(() => vault.charge(keyId), 'invalid_argument', /usage/)
  throwsCode(() => vault.update(keyId), 'invalid_argument', /patch/)
  throwsCode(() => vault.subscribe(), 'invalid_argument', /callback/)
  throwsCode(() => vault.subscribe('f'), 'invalid_argument', /callback/)
  // Extra arguments are ignored, as in any JavaScript function.
  assert.equal(vault.verify(secret, {}, 'extra').code, 'valid')
})
