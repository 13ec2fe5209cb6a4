// Owners, prices, usage reports, the event log, the audit trail, and the alert callback.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { freshVault, rejectsCode, runNode, tempDir, throwsCode, KDF, REPO } from './helpers.mjs'

const AT = Date.parse('2025-01-01T00:00:00Z')

test('owner policies are shared by every key of the owner', (t) => {
  const vault = freshVault(t)
  vault.setDefaultOwnerPolicy(['requests=3'])
  assert.deepEqual(
    vault.defaultOwnerPolicy().map((l) => l.text),
    ['requests=3'],
  )
  const a = vault.mint({ owner: 'acme' })
  const b = vault.mint({ owner: 'acme' })
  vault.verify(a.secret)
  vault.verify(b.secret)
  vault.verify(a.secret)
  const denied = vault.verify(b.secret)
  assert.equal(denied.code, 'usage_exceeded')
  assert.equal(denied.deniedBy.level, 'owner')
  const info = vault.owner('acme')
  assert.equal(info.owner, 'acme')
  assert.equal(info.keys, 2)
  assert.deepEqual(
    info.limits.map((l) => l.text),
    ['requests=3'],
  )
  assert.equal(info.remaining.requests, 0)
  vault.setOwnerPolicy('acme', [{ unit: 'requests', amount: 10, window: 'lifetime' }], {
    actor: 'ops',
  })
  assert.equal(vault.verify(b.secret).code, 'valid')
  vault.setOwnerPolicy('newco', ['cost=$5/month'])
  assert.deepEqual(vault.owners(), ['acme', 'newco'])
  throwsCode(() => vault.owner('nobody'), 'not_found')
})

test('prices: set, read, remove and import LiteLLM', (t) => {
  const vault = freshVault(t)
  vault.setPrice('gpt-4o', { inputPerMtok: 2_500_000, outputPerMtok: 10_000_000 })
  assert.deepEqual(vault.price('gpt-4o'), {
    inputPerMtok: 2_500_000,
    outputPerMtok: 10_000_000,
    perRequest: 0,
  })
  assert.equal(vault.price('nope'), null)
  vault.setPrice('gpt-4o', null)
  assert.equal(vault.price('gpt-4o'), null)

  const litellm = readFileSync(
    join(REPO, '..', 'shared', 'data', 'litellm-model-prices-1.110.2.json'),
    'utf8',
  )
  const report = vault.importPrices(litellm, { actor: 'importer' })
  assert.ok(report.imported > 1000, `imported ${report.imported}`)
  assert.ok(Array.isArray(report.skipped) && report.skipped.every((s) => s.model && s.note))
  const prices = vault.prices()
  assert.equal(Object.keys(prices).length, report.imported)
  assert.equal(prices['gpt-4o'].inputPerMtok, 2_500_000)
  // The parsed object works as well as the text.
  const small = vault.importPrices({
    'tiny-model': { input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 },
  })
  assert.equal(small.imported, 1)
  assert.deepEqual(vault.price('tiny-model'), {
    inputPerMtok: 1_000_000,
    outputPerMtok: 2_000_000,
    perRequest: 0,
  })
})

test('usage reports group, bucket and filter exactly', async (t) => {
  const vault = freshVault(t)
  const a = vault.mint({ owner: 'acme', env: 'live' }, { at: AT })
  const b = vault.mint({ owner: 'beta', env: 'test' }, { at: AT })
  const charge = (key, model, i, at) =>
    vault.charge(key.keyId, {
      model,
      endpoint: '/v1/chat',
      inputTokens: 10 * i,
      outputTokens: i,
      cost: 100 * i,
      requestId: `${key.keyId}-${i}`,
      at,
    })
  charge(a, 'gpt-4o', 1, AT + 1000)
  charge(a, 'gpt-4o', 2, AT + 86_400_000 + 1000)
  charge(b, 'claude', 3, AT + 2000)
  const total = vault.usage()
  assert.deepEqual(total, [
    {
      bucket: null,
      group: {},
      requests: 3,
      denied: 0,
      inputTokens: 60,
      outputTokens: 6,
      tokens: 66,
      cost: 600,
    },
  ])
  const byOwner = vault.usage({ groupBy: ['owner', 'model'] })
  assert.deepEqual(
    byOwner.map((r) => [r.group, r.cost]),
    [
      [{ owner: 'acme', model: 'gpt-4o' }, 300],
      [{ owner: 'beta', model: 'claude' }, 300],
    ],
  )
  const daily = vault.usage({ bucket: 'day', tz: 'Asia/Kolkata', keyId: a.keyId })
  assert.deepEqual(
    daily.map((r) => [r.bucket, r.requests]),
    [
      [Date.parse('2024-12-31T18:30:00Z'), 1],
      [Date.parse('2025-01-01T18:30:00Z'), 1],
    ],
  )
  assert.equal(vault.usage({ from: AT + 1500, to: new Date(AT + 3000) })[0].requests, 1)
  assert.deepEqual(await vault.usageAsync({ env: 'test' }), vault.usage({ env: 'test' }))
  await rejectsCode(vault.usageAsync({ bucket: 'never' }), 'invalid_argument')

  const records = vault.usageRecords({ keyId: a.keyId })
  assert.equal(records.length, 2)
  assert.deepEqual(records[0], {
    at: AT + 1000,
    keyId: a.keyId,
    owner: 'acme',
    env: 'live',
    model: 'gpt-4o',
    endpoint: '/v1/chat',
    inputTokens: 10,
    outputTokens: 1,
    cost: 100,
    requestId: `${a.keyId}-1`,
    outcome: 'charged',
  })
  assert.equal(vault.usageRecords({}, 1).length, 1)
})

test('events and the audit trail', (t) => {
  const vault = freshVault(t)
  const { keyId, secret } = vault.mint(
    {
      owner: 'o',
      limits: [{ unit: 'requests', amount: 2, window: 'lifetime', alertAt: [50, 100] }],
    },
    { at: AT, actor: 'admin' },
  )
  vault.verify(secret, { at: AT })
  vault.verify(secret, { at: AT })
  vault.revoke(keyId, { at: AT + 1 })
  vault.flush()
  const events = vault.events()
  assert.deepEqual(
    events.map((e) => [e.kind, e.percent]),
    [
      ['threshold', 50],
      ['threshold', 100],
      ['exhausted', null],
      ['revoked', null],
    ],
  )
  assert.deepEqual(
    events.map((e) => e.seq),
    [1, 2, 3, 4],
  )
  assert.equal(events[0].keyId, keyId)
  assert.equal(events[0].owner, 'o')
  assert.equal(events[0].at, AT)
  assert.equal(events[0].limit.limit.unit, 'requests')
  assert.deepEqual(
    vault.events(2).map((e) => e.seq),
    [3, 4],
  )
  assert.deepEqual(
    vault.events(0, 1).map((e) => e.seq),
    [1],
  )

  const audit = vault.audit()
  assert.deepEqual(
    audit.map((r) => r.action),
    ['create', 'mint', 'revoke'],
  )
  assert.equal(audit[1].actor, 'admin')
  assert.equal(audit[1].at, AT)
  assert.match(audit[1].hash, /^[0-9a-f]{64}$/)
  assert.equal(typeof audit[1].detail, 'object')
  assert.deepEqual(vault.verifyAudit(), { records: 3, ok: true, firstBad: null })
  assert.deepEqual(
    vault.audit(2).map((r) => r.seq),
    [3],
  )
})

function waitFor(events, n, ms = 5000) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const poll = () => {
      if (events.length >= n) resolve(events)
      else if (Date.now() - started > ms)
        reject(new Error(`only ${events.length} of ${n} events arrived`))
      else setTimeout(poll, 5)
    }
    poll()
  })
}

test('subscribe calls back with every committed event, until unsubscribe', async (t) => {
  const vault = freshVault(t)
  const seen = []
  const id = vault.subscribe((event) => seen.push(event))
  assert.equal(typeof id, 'number')
  const { keyId, secret } = vault.mint({
    owner: 'o',
    limits: [{ unit: 'cost', amount: 100, window: 'lifetime', alertAt: [80] }],
  })
  vault.verify(secret)
  vault.charge(keyId, { cost: 90 })
  vault.charge(keyId, { cost: 20 })
  await waitFor(seen, 2)
  assert.deepEqual(
    seen.map((e) => e.kind),
    ['threshold', 'exhausted'],
  )
  assert.equal(seen[0].percent, 80)
  assert.equal(seen[0].keyId, keyId)
  assert.equal(seen[0].limit.limit.unit, 'cost')
  assert.equal(seen[1].limit.used, 110)
  assert.deepEqual(
    vault.events().map((e) => e.seq),
    seen.map((e) => e.seq),
  )

  assert.equal(vault.unsubscribe(id), true)
  assert.equal(vault.unsubscribe(id), false)
  vault.revoke(keyId)
  vault.flush()
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(seen.length, 2, 'no event after unsubscribe')
})

test('a subscription does not keep the process alive', async (t) => {
  const path = join(tempDir(t), 'alive.vault')
  const child = await runNode(
    `
    import { Vault } from 'nanu'
    const options = { passphrase: 'p', kdf: ${JSON.stringify(KDF)} }
    const vault = Vault.create(${JSON.stringify(path)}, options)
    vault.subscribe((e) => console.log('event', e.kind))
    const { keyId } = vault.mint({ owner: 'o' })
    vault.revoke(keyId)
    setTimeout(() => console.log('done'), 200)
  `,
    { timeoutMs: 10_000 },
  )
  assert.equal(child.code, 0, child.stderr)
  assert.match(child.stdout, /event revoked/)
  assert.match(child.stdout, /done/)
})
