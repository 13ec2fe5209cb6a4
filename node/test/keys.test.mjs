// Minting, reading, listing, changing, rotating and revoking keys.

import assert from 'node:assert/strict'
import { test } from 'node:test'

import { freshVault, throwsCode } from './helpers.mjs'

const AT = Date.parse('2025-01-01T00:00:00Z')
const EXPIRES = Date.parse('2099-01-01T00:00:00Z')

test('mint stores the spec and returns the secret once', (t) => {
  const vault = freshVault(t)
  const minted = vault.mint(
    {
      owner: 'acme',
      name: 'ci key',
      env: 'test',
      scopes: ['chat', 'embed'],
      models: ['openai/*', 'gpt-4o'],
      aliases: { fast_model: 'gpt-4o' },
      ips: ['10.0.0.0/8', '2001:db8::/32'],
      expiresAt: new Date(EXPIRES),
      limits: [
        'cost=$10/month',
        { unit: 'requests', amount: 100, window: 'rolling', every: '1m', alertAt: [90] },
      ],
      rotateEvery: '90 days',
      metadata: { team: 'infra', ratio: 0.5, nested: { snake_key: [1, 'two', null] } },
    },
    { at: AT, actor: 'admin' },
  )
  assert.deepEqual(Object.keys(minted), ['keyId', 'secret'])
  assert.match(minted.keyId, /^key_[0-9A-Za-z]{22}$/)
  assert.match(minted.secret, /^nanu_test_/)

  const info = vault.get(minted.keyId)
  assert.equal(info.keyId, minted.keyId)
  assert.equal(info.owner, 'acme')
  assert.equal(info.name, 'ci key')
  assert.equal(info.env, 'test')
  assert.equal(info.status, 'active')
  assert.equal(info.createdAt, AT)
  assert.equal(info.updatedAt, AT)
  assert.equal(info.rotatedAt, AT)
  assert.equal(info.graceUntil, null)
  assert.equal(info.expiresAt, EXPIRES)
  assert.deepEqual(info.scopes, ['chat', 'embed'])
  assert.deepEqual(info.models, ['openai/*', 'gpt-4o'])
  assert.deepEqual(info.aliases, { fast_model: 'gpt-4o' })
  assert.deepEqual(info.ips, ['10.0.0.0/8', '2001:db8::/32'])
  assert.equal(info.rotateEvery, '90 days')
  assert.deepEqual(info.metadata, {
    team: 'infra',
    ratio: 0.5,
    nested: { snake_key: [1, 'two', null] },
  })
  assert.equal(info.limits.length, 2)
  assert.deepEqual(info.limits[0], {
    unit: 'cost',
    amount: 10_000_000,
    window: 'month',
    tz: 'UTC',
    anchor: null,
    every: null,
    alertAt: [50, 80, 100],
    text: 'cost=$10/month',
  })
  assert.equal(info.limits[1].window, 'rolling')
  assert.equal(info.limits[1].every, '1m')
  assert.deepEqual(info.limits[1].alertAt, [90])
  assert.equal(info.limits[1].text, 'requests=100/min;alert=90')
  // The secret is never stored: no field of the key holds it.
  assert.ok(!JSON.stringify(info).includes(minted.secret))
  const [record] = vault.audit().filter((r) => r.action === 'mint')
  assert.equal(record.actor, 'admin')
  assert.ok(!JSON.stringify(record).includes(minted.secret))
})

test('mintMany mints all or nothing, and mintManyAsync resolves', async (t) => {
  const vault = freshVault(t)
  const minted = vault.mintMany([{ owner: 'a' }, { owner: 'b', env: 'test' }])
  assert.equal(minted.length, 2)
  assert.notEqual(minted[0].secret, minted[1].secret)
  throwsCode(
    () => vault.mintMany([{ owner: 'c' }, { owner: 'd', limits: ['bogus'] }]),
    'invalid_argument',
    /^specs\[1\]\.limits\[0\]: limit "bogus" has no "="/,
  )
  assert.deepEqual(vault.owners(), ['a', 'b'])
  const many = await vault.mintManyAsync(
    Array.from({ length: 50 }, (_, i) => ({ owner: `o${i % 5}` })),
  )
  assert.equal(many.length, 50)
  assert.equal(vault.stats().keys, 52)
  assert.equal(vault.verify(many[49].secret).allowed, true)
})

test('list pages through keys in id order, with filters', (t) => {
  const vault = freshVault(t)
  const ids = vault
    .mintMany(
      Array.from({ length: 7 }, (_, i) => ({
        owner: i < 4 ? 'acme' : 'other',
        env: i % 2 ? 'test' : 'live',
      })),
    )
    .map((m) => m.keyId)
    .sort()
  const seen = []
  let after
  for (;;) {
    const page = vault.list({ limit: 3, after })
    seen.push(...page.keys.map((k) => k.keyId))
    if (page.next === null) break
    assert.equal(page.next, page.keys.at(-1).keyId)
    after = page.next
  }
  assert.deepEqual(seen, ids)
  assert.equal(vault.list({ owner: 'acme' }).keys.length, 4)
  assert.equal(vault.list({ env: 'test' }).keys.length, 3)
  vault.revoke(ids[0])
  assert.deepEqual(
    vault.list({ status: 'revoked' }).keys.map((k) => k.keyId),
    [ids[0]],
  )
  assert.equal(vault.list().keys.length, 7)
  throwsCode(() => vault.list({ limit: 0 }), 'invalid_argument', /limit/)
  throwsCode(() => vault.list({ status: 'gone' }), 'invalid_argument', /gone/)
})

test('update changes what it names; null clears', (t) => {
  const vault = freshVault(t)
  const { keyId, secret } = vault.mint({ owner: 'o', models: ['gpt-4o'], limits: ['requests=10'] })
  vault.verify(secret, { model: 'gpt-4o' })
  let info = vault.update(
    keyId,
    { name: 'renamed', scopes: ['chat'], metadata: { v: 2 } },
    { actor: 'me' },
  )
  assert.equal(info.name, 'renamed')
  assert.deepEqual(info.models, ['gpt-4o'], 'absent fields stay')
  info = vault.update(keyId, { models: null, expiresAt: '2099-01-01T00:00:00Z' })
  assert.equal(info.models, null)
  assert.equal(info.expiresAt, Date.parse('2099-01-01T00:00:00Z'))
  info = vault.update(keyId, { expiresAt: null })
  assert.equal(info.expiresAt, null)
  // Changing a limit keeps the usage counted under the same unit and window.
  info = vault.update(keyId, { limits: ['requests=20'] })
  assert.equal(vault.remaining(keyId).requests, 19)
  info = vault.update(keyId, { disabled: true })
  assert.equal(info.status, 'disabled')
  assert.equal(vault.verify(secret).code, 'disabled')
  vault.update(keyId, { disabled: false })
  assert.equal(vault.verify(secret).code, 'valid')
  throwsCode(() => vault.update('key_missing', { name: 'x' }), 'not_found')
  throwsCode(() => vault.update(keyId, { owner: 'x' }), 'invalid_argument', /owner/)
  vault.revoke(keyId)
  throwsCode(() => vault.update(keyId, { disabled: false }), 'invalid_argument', /revoked/)
})

test('revoke and revokeOwner', (t) => {
  const vault = freshVault(t)
  const a = vault.mint({ owner: 'acme' })
  const b = vault.mint({ owner: 'acme' })
  const c = vault.mint({ owner: 'other' })
  vault.revoke(a.keyId)
  vault.revoke(a.keyId)
  assert.equal(vault.verify(a.secret).code, 'revoked')
  assert.equal(vault.get(a.keyId).status, 'revoked')
  assert.equal(vault.revokeOwner('acme'), 1)
  assert.equal(vault.revokeOwner('acme'), 0)
  assert.equal(vault.revokeOwner('nobody'), 0)
  assert.equal(vault.verify(b.secret).code, 'revoked')
  assert.equal(vault.verify(c.secret).code, 'valid')
  throwsCode(() => vault.revoke('key_missing'), 'not_found')
})

test('rotate keeps the key id and ledger; the old secret lives for the grace', (t) => {
  const vault = freshVault(t)
  const { keyId, secret } = vault.mint({ owner: 'o', limits: ['requests=10'] }, { at: AT })
  vault.verify(secret, { at: AT })
  const next = vault.rotate(keyId, { graceMs: 60_000, at: AT + 1000, actor: 'rotator' })
  assert.equal(next.keyId, keyId)
  assert.notEqual(next.secret, secret)
  const old = vault.verify(secret, { at: AT + 2000 })
  assert.equal(old.allowed, true)
  assert.equal(old.grace, true)
  assert.equal(vault.verify(next.secret, { at: AT + 2000 }).grace, false)
  assert.equal(vault.verify(secret, { at: AT + 61_000 }).code, 'not_found')
  assert.equal(vault.remaining(keyId, AT + 61_000).requests, 7)
  // Without a grace the old secret stops at once.
  const third = vault.rotate(keyId, { at: AT + 70_000 })
  assert.equal(vault.verify(next.secret, { at: AT + 70_000 }).code, 'not_found')
  assert.equal(vault.verify(third.secret, { at: AT + 70_000 }).code, 'valid')
  // graceUntil is reported while the grace runs (the status is derived at the call's time).
  const live = vault.mint({ owner: 'o' })
  const before = Date.now()
  vault.rotate(live.keyId, { graceMs: 3_600_000 })
  const graceUntil = vault.get(live.keyId).graceUntil
  assert.ok(graceUntil >= before + 3_600_000 && graceUntil <= Date.now() + 3_600_000)
  throwsCode(() => vault.rotate('key_missing'), 'not_found')
  throwsCode(() => vault.rotate(keyId, { grace: 5 }), 'invalid_argument', /grace/)
})

test('rotateDue rotates the keys whose rotateEvery has passed', (t) => {
  const vault = freshVault(t)
  const due = vault.mint({ owner: 'o', rotateEvery: '30 days' }, { at: AT })
  vault.mint({ owner: 'o', rotateEvery: '90 days' }, { at: AT })
  vault.mint({ owner: 'o' }, { at: AT })
  assert.deepEqual(vault.rotateDue({ at: AT + 86_400_000 }), [])
  const rotated = vault.rotateDue({ at: AT + 31 * 86_400_000, graceMs: 1000 })
  assert.equal(rotated.length, 1)
  assert.equal(rotated[0].keyId, due.keyId)
  assert.equal(vault.verify(rotated[0].secret, { at: AT + 31 * 86_400_000 }).allowed, true)
})
