// Opening, closing and unlocking vault files; options; the process-exit flush.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { Vault, closeAll } from 'nanu'

import { KDF, freshVault, rejectsCode, runNode, tempDir, throwsCode } from './helpers.mjs'

test('create gives a vault with the default settings', (t) => {
  const vault = freshVault(t)
  assert.ok(vault instanceof Vault)
  assert.equal(vault.prefix, 'nanu')
  assert.equal(vault.currency, 'usd')
  assert.equal(vault.durability, 'durable')
  assert.equal(vault.closed, false)
  assert.match(vault.path, /test\.vault$/)
  const { secret } = vault.mint({ owner: 'acme' })
  assert.match(secret, /^nanu_live_[0-9A-Za-z]{49}$/)
})

test('create honours prefix, currency and durability', (t) => {
  for (const durability of ['durable', 'process', 'relaxed']) {
    const vault = freshVault(t, { prefix: 'acme', currency: 'eur', durability })
    assert.equal(vault.durability, durability)
    assert.equal(vault.currency, 'eur')
    assert.match(vault.mint({ owner: 'o', env: 'test' }).secret, /^acme_test_/)
    vault.close()
  }
})

test('a vault reopens with its passphrase and keeps its keys', (t) => {
  const path = join(tempDir(t), 'keys.vault')
  const first = Vault.create(path, { passphrase: 'right', kdf: KDF })
  const { keyId, secret } = first.mint({ owner: 'acme', limits: ['requests=10'] })
  first.verify(secret)
  first.close()

  throwsCode(() => Vault.open(path, { passphrase: 'wrong' }), 'wrong_passphrase')
  const again = Vault.open(path, { passphrase: 'right' })
  t.after(() => again.close())
  assert.equal(again.get(keyId).owner, 'acme')
  assert.equal(again.verify(secret).remaining.requests, 8)
})

test('open and create report missing, existing, foreign and locked files', (t) => {
  const dir = tempDir(t)
  throwsCode(() => Vault.open(join(dir, 'missing.vault'), { passphrase: 'x' }), 'not_found')
  const junk = join(dir, 'junk')
  writeFileSync(junk, randomBytes(8192))
  throwsCode(() => Vault.open(junk, { passphrase: 'x' }), 'not_a_vault')
  const path = join(dir, 'one.vault')
  const vault = Vault.create(path, { passphrase: 'x', kdf: KDF })
  t.after(() => vault.close())
  throwsCode(() => Vault.create(path, { passphrase: 'x', kdf: KDF }), 'invalid_argument')
  throwsCode(() => Vault.open(path, { passphrase: 'x' }), 'locked')
})

test('another process cannot open a vault this one holds', async (t) => {
  const path = join(tempDir(t), 'held.vault')
  const vault = Vault.create(path, { passphrase: 'x', kdf: KDF })
  t.after(() => vault.close())
  const child = await runNode(`
    import { Vault } from 'nanu'
    try { Vault.open(${JSON.stringify(path)}, { passphrase: 'x' }); console.log('opened') }
    catch (err) { console.log(err.code) }
  `)
  assert.equal(child.stdout.trim(), 'locked', child.stderr)
})

test('a raw 32-byte key unlocks as a Buffer or as hex', (t) => {
  const path = join(tempDir(t), 'raw.vault')
  const key = randomBytes(32)
  const vault = Vault.create(path, { key })
  vault.mint({ owner: 'o' })
  vault.close()
  const again = Vault.open(path, { key: key.toString('hex') })
  assert.deepEqual(again.owners(), ['o'])
  again.close()
  Vault.open(path, { key: new Uint8Array(key) }).close()
  throwsCode(() => Vault.open(path, { key: randomBytes(32) }), 'wrong_passphrase')
  throwsCode(() => Vault.open(path, { passphrase: 'not the key' }), 'wrong_passphrase')
})

test('the async forms open off the JavaScript thread and reject with codes', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'async.vault')
  const vault = await Vault.createAsync(path, { passphrase: 'p', kdf: KDF })
  assert.ok(vault instanceof Vault)
  const { keyId } = vault.mint({ owner: 'o' })
  vault.close()
  await rejectsCode(Vault.openAsync(path, { passphrase: 'nope' }), 'wrong_passphrase')
  const again = await Vault.openAsync(path, { passphrase: 'p' })
  assert.equal(again.get(keyId).owner, 'o')
  again.close()
  // A bad argument rejects the promise rather than throwing.
  const pending = Vault.createAsync(join(dir, 'x.vault'), { passphrase: 'p', bogus: 1 })
  assert.ok(pending instanceof Promise)
  await rejectsCode(pending, 'invalid_argument', /bogus/)
  await rejectsCode(Vault.openAsync(42, { passphrase: 'p' }), 'invalid_argument', /path/)
})

test('bad options are invalid arguments', (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'bad.vault')
  const cases = [
    [undefined, /options/],
    [null, /options/],
    ['passphrase', /options/],
    [{}, /passphrase or a key/],
    [{ passphrase: '' }, /empty/],
    [{ passphrase: 42 }, /passphrase/],
    [{ passphrase: 'p', key: randomBytes(32) }, /not both/],
    [{ key: randomBytes(31) }, /32 bytes/],
    [{ key: 'abcd' }, /64 hex/],
    [{ key: 12 }, /key/],
    [{ passphrase: 'p', durability: 'fast' }, /durability/],
    [{ passphrase: 'p', kdf: { mCostKib: -1 } }, /mCostKib/],
    [{ passphrase: 'p', kdf: { memory: 8 } }, /memory/],
    [{ passphrase: 'p', flushIntervalMs: 1.5 }, /flushIntervalMs/],
    [{ passphrase: 'p', holdTimeoutMs: -1 }, /holdTimeoutMs/],
    [{ passphrase: 'p', prefix: 'Bad Prefix' }, /prefix/],
    [{ passphrase: 'p', currency: '' }, /currency/],
    [{ passphrase: 'p', clock: () => 0 }, /clock/],
  ]
  for (const [options, message] of cases) {
    throwsCode(() => Vault.create(path, options), 'invalid_argument', message)
  }
  throwsCode(() => Vault.create('', { passphrase: 'p' }), 'invalid_argument', /path/)
  throwsCode(() => Vault.create(7, { passphrase: 'p' }), 'invalid_argument', /path/)
})

test('rekey re-seals the vault under a new passphrase', (t) => {
  const path = join(tempDir(t), 'rekey.vault')
  const vault = Vault.create(path, { passphrase: 'old', kdf: KDF })
  const { keyId } = vault.mint({ owner: 'o' })
  throwsCode(() => vault.rekey({ kdf: KDF }), 'invalid_argument', /passphrase or a key/)
  vault.rekey({ passphrase: 'new', kdf: KDF, actor: 'ops' })
  assert.equal(vault.audit().at(-1).action, 'rekey')
  assert.equal(vault.audit().at(-1).actor, 'ops')
  vault.close()
  throwsCode(() => Vault.open(path, { passphrase: 'old' }), 'wrong_passphrase')
  const again = Vault.open(path, { passphrase: 'new' })
  assert.equal(again.get(keyId).keyId, keyId)
  again.close()
})

test('after close every call fails with closed, and close is idempotent', (t) => {
  const vault = freshVault(t)
  const { keyId, secret } = vault.mint({ owner: 'o' })
  vault.close()
  vault.close()
  assert.equal(vault.closed, true)
  const calls = {
    mint: () => vault.mint({ owner: 'o' }),
    mintMany: () => vault.mintMany([{ owner: 'o' }]),
    get: () => vault.get(keyId),
    list: () => vault.list(),
    update: () => vault.update(keyId, { name: 'x' }),
    revoke: () => vault.revoke(keyId),
    revokeOwner: () => vault.revokeOwner('o'),
    rotate: () => vault.rotate(keyId),
    rotateDue: () => vault.rotateDue(),
    verify: () => vault.verify(secret),
    charge: () => vault.charge(keyId, { inputTokens: 1 }),
    release: () => vault.release(1),
    tick: () => vault.tick(),
    remaining: () => vault.remaining(keyId),
    setOwnerPolicy: () => vault.setOwnerPolicy('o', []),
    setDefaultOwnerPolicy: () => vault.setDefaultOwnerPolicy([]),
    defaultOwnerPolicy: () => vault.defaultOwnerPolicy(),
    owner: () => vault.owner('o'),
    owners: () => vault.owners(),
    setPrice: () => vault.setPrice('m', null),
    importPrices: () => vault.importPrices('{}'),
    price: () => vault.price('m'),
    prices: () => vault.prices(),
    usage: () => vault.usage(),
    usageRecords: () => vault.usageRecords(),
    events: () => vault.events(),
    subscribe: () => vault.subscribe(() => {}),
    audit: () => vault.audit(),
    verifyAudit: () => vault.verifyAudit(),
    stats: () => vault.stats(),
    rekey: () => vault.rekey({ passphrase: 'x' }),
    flush: () => vault.flush(),
  }
  for (const [name, call] of Object.entries(calls)) {
    throwsCode(call, 'closed', /closed/, name)
  }
  const methods = Object.getOwnPropertyNames(Vault.prototype).filter(
    (n) =>
      n !== 'constructor' &&
      typeof Object.getOwnPropertyDescriptor(Vault.prototype, n).value === 'function',
  )
  const untested = methods.filter(
    (n) =>
      !(n in calls) &&
      !['close', 'unsubscribe', 'mintManyAsync', 'chargeAsync', 'usageAsync'].includes(n),
  )
  assert.deepEqual(untested, [], 'every method is checked on a closed vault')
})

test('the async calls reject on a closed vault', async (t) => {
  const vault = freshVault(t)
  const { keyId } = vault.mint({ owner: 'o' })
  vault.close()
  await rejectsCode(vault.mintManyAsync([{ owner: 'o' }]), 'closed')
  await rejectsCode(vault.chargeAsync(keyId, { inputTokens: 1 }), 'closed')
  await rejectsCode(vault.usageAsync(), 'closed')
})

test('closeAll closes every open vault', (t) => {
  const a = freshVault(t)
  const b = freshVault(t)
  closeAll()
  assert.equal(a.closed, true)
  assert.equal(b.closed, true)
  throwsCode(() => a.stats(), 'closed')
})

test('process exit flushes what relaxed durability had not written', async (t) => {
  const path = join(tempDir(t), 'exit.vault')
  const child = await runNode(`
    import { Vault } from 'nanu'
    const vault = Vault.create(${JSON.stringify(path)}, {
      passphrase: 'p', kdf: ${JSON.stringify(KDF)}, durability: 'relaxed', flushIntervalMs: 600000,
    })
    const { keyId, secret } = vault.mint({ owner: 'o', limits: ['requests=100'] })
    for (let i = 0; i < 3; i++) vault.verify(secret)
    vault.charge(keyId, { inputTokens: 7, outputTokens: 3, cost: 42, requestId: 'exit-1' })
    console.log(keyId)
    process.exit(0)
  `)
  assert.equal(child.code, 0, child.stderr)
  const keyId = child.stdout.trim()
  const vault = Vault.open(path, { passphrase: 'p' })
  t.after(() => vault.close())
  assert.equal(vault.remaining(keyId).requests, 97)
  const [row] = vault.usage({ keyId })
  assert.equal(row.requests, 1)
  assert.equal(row.cost, 42)
  assert.equal(row.tokens, 10)
})

test('flush and stats', (t) => {
  const vault = freshVault(t)
  const { secret } = vault.mint({ owner: 'o' })
  vault.verify(secret)
  vault.verify('not a key')
  vault.flush()
  assert.deepEqual(vault.stats(), {
    keys: 1,
    owners: 1,
    malformed: 1,
    notFound: 0,
    holds: 0,
    corruptKeys: 0,
  })
})

test('a worker thread that ends leaves the vaults of the main thread open', async (t) => {
  const { Worker } = await import('node:worker_threads')
  const vault = freshVault(t)
  const worker = new Worker("require('nanu')", { eval: true })
  await new Promise((resolve, reject) => {
    worker.on('exit', resolve)
    worker.on('error', reject)
  })
  assert.equal(vault.closed, false)
  const minted = vault.mint({ owner: 'after-worker' })
  assert.equal(vault.verify(minted.secret).allowed, true)
})
