// End to end with node:cluster: the gateway runs as four worker processes (cluster.mjs) that
// open the vault file in nanu's shared mode, in front of the stand-in upstream, both on
// 127.0.0.1. A budget worth 40 requests admits exactly 40 of 100 sent at once on separate
// connections, whichever workers take them; a key minted and then revoked through one worker is
// served and then refused by all; after the servers stop (by PID), the vault's usage totals are
// what the upstream reports it served.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { Vault } from 'nanu'

const HERE = join(dirname(fileURLToPath(import.meta.url)), '..')
const REPO = process.env.NANU_REPO ?? join(HERE, '..', '..')
const TRACE = join(REPO, '..', 'shared', 'data', 'azure-llm-trace-2023-code.csv')
const ADMIN = 'admin-token-for-tests'
const PASSPHRASE = 'cluster test'
const WORKERS = 4
/** A model priced per request only, so that every request costs the same: one cent. */
const FLAT = 'flat-model'
const CENT = 10_000

const dir = mkdtempSync(join(tmpdir(), 'nanu-cluster-'))
const vaultPath = join(dir, 'cluster.vault')
const children = []
let gateway
let upstream

/** Starts `node script` and resolves with the port it prints once listening. */
function start(script, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(HERE, script), ...args], {
      cwd: HERE,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.push(child)
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec(String(d))
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}`, stderr: () => stderr })
    })
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}: ${stderr}`)))
  })
}

/** Stops a child by its PID and resolves with its exit code. */
function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => {
    child.removeAllListeners('exit')
    child.once('exit', (code) => resolve(code))
    process.kill(child.pid, 'SIGTERM')
  })
}

/** One HTTP request on a connection of its own (no keep-alive), so that the cluster hands
 * each to the next worker. Resolves with `{ status, headers, body }`. */
function call(base, path, { method = 'POST', key, body } = {}) {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      new URL(path, base),
      {
        method,
        agent: false,
        headers: {
          'content-type': 'application/json',
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
      },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8')
          const parsed = raw ? JSON.parse(raw) : null
          resolve({ status: res.statusCode, headers: res.headers, body: parsed })
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(text)
  })
}

const chat = (secret) =>
  call(gateway.url, '/v1/chat/completions', {
    key: secret,
    body: { model: FLAT, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
  })

/** `count` chat requests at once. */
const burst = (secret, count) => Promise.all(Array.from({ length: count }, () => chat(secret)))

const mint = async (spec) => {
  const r = await call(gateway.url, '/admin/keys', { key: ADMIN, body: spec })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  return r.body
}

before(async () => {
  const vault = Vault.create(vaultPath, {
    passphrase: PASSPHRASE,
    kdf: { mCostKib: 8, tCost: 1, pCost: 1 },
  })
  vault.setPrice(FLAT, { perRequest: CENT })
  vault.close()
  upstream = await start('upstream.mjs', ['--trace', TRACE, '--port', '0'], {})
  gateway = await start('cluster.mjs', [], {
    WORKERS: String(WORKERS),
    NANU_VAULT: vaultPath,
    NANU_PASSPHRASE: PASSPHRASE,
    ADMIN_TOKEN: ADMIN,
    UPSTREAM_URL: upstream.url,
    PORT: '0',
  })
})

after(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  rmSync(dir, { recursive: true, force: true })
})

test('four cluster workers keep one budget exact and see each other’s changes', async () => {
  const { keyId, secret } = await mint({ owner: 'acme', models: [FLAT], limits: ['cost=$0.40'] })
  const answers = await burst(secret, 100)
  const allowed = answers.filter((a) => a.status === 200)
  const denied = answers.filter((a) => a.status !== 200)
  assert.equal(allowed.length, 40, answers.map((a) => a.status).join(' '))
  for (const a of denied) {
    assert.equal(a.status, 429)
    assert.equal(a.body.error.code, 'budget_exceeded')
  }
  const workers = new Set(allowed.map((a) => a.headers['x-gateway-worker']))
  assert.ok(workers.size > 1, 'one worker served every request: nothing was shared')

  // Minted through one worker: served by the next request to any worker. Revoked through one:
  // refused by all.
  const other = await mint({ owner: 'beta', models: [FLAT] })
  const served = await burst(other.secret, 8)
  assert.deepEqual(
    served.map((a) => a.status),
    Array(8).fill(200),
  )
  const revoked = await call(gateway.url, '/admin/revoke', {
    key: ADMIN,
    body: { keyId: other.keyId },
  })
  assert.equal(revoked.status, 200)
  const refused = await burst(other.secret, 8)
  for (const a of refused) {
    assert.equal(a.status, 401)
    assert.equal(a.body.error.code, 'revoked')
  }

  const stats = (await call(upstream.url, '/stats', { method: 'GET' })).body
  assert.equal(stats.completions, 48)

  // Each worker finishes its charges and closes its vault before the cluster exits.
  assert.equal(await stop(gateway.child), 0, gateway.stderr())
  assert.equal(await stop(upstream.child), 0)
  const vault = Vault.open(vaultPath, { passphrase: PASSPHRASE })
  try {
    const [total] = vault.usage()
    assert.equal(Number(total.requests), stats.completions)
    assert.equal(Number(total.inputTokens), stats.promptTokens)
    assert.equal(Number(total.outputTokens), stats.completionTokens)
    assert.equal(Number(total.cost), 48 * CENT)
    const [row] = vault.usage({ keyId })
    assert.equal(Number(row.requests), 40)
    assert.equal(Number(row.cost), 40 * CENT)
    assert.equal(Number(vault.remaining(keyId).cost), 0)
    assert.equal(vault.get(other.keyId).status, 'revoked')
  } finally {
    vault.close()
  }
})
