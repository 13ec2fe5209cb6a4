// End to end over real HTTP on 127.0.0.1: the stand-in upstream and the gateway run as their
// own processes; the test mints keys through the admin API, sends requests, revokes a key
// while the gateway runs, spends a budget to its end, stops both servers by PID, and then
// reads the vault file to check that every answered request was charged.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { Vault } from 'nanu'

import { readTrace } from '../upstream.mjs'

const HERE = join(dirname(fileURLToPath(import.meta.url)), '..')
const REPO = process.env.NANU_REPO ?? join(HERE, '..', '..')
const DATA = join(REPO, '..', 'shared', 'data')
const TRACE = join(DATA, 'azure-llm-trace-2023-code.csv')
const PRICES = join(DATA, 'litellm-model-prices-1.110.2.json')
const ADMIN = 'admin-token-for-tests'
const PASSPHRASE = 'gateway test'

const dir = mkdtempSync(join(tmpdir(), 'nanu-gateway-'))
const vaultPath = join(dir, 'gateway.vault')
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

/** Stops a child by its PID and waits for it to exit. */
function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => {
    child.removeAllListeners('exit')
    child.once('exit', (code) => resolve(code))
    process.kill(child.pid, 'SIGTERM')
  })
}

before(async () => {
  upstream = await start('upstream.mjs', ['--trace', TRACE, '--port', '0'], {})
  gateway = await start('gateway.mjs', [], {
    NANU_VAULT: vaultPath,
    NANU_PASSPHRASE: PASSPHRASE,
    NANU_KDF_CHEAP: '1',
    NANU_PRICES: PRICES,
    ADMIN_TOKEN: ADMIN,
    UPSTREAM_URL: upstream.url,
    PORT: '0',
  })
})

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  rmSync(dir, { recursive: true, force: true })
})

async function call(path, { key, body, method = 'POST', headers = {} } = {}) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: {
      'content-type': 'application/json',
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    body: text ? JSON.parse(text) : null,
  }
}

const mint = async (spec) => {
  const r = await call('/admin/keys', { key: ADMIN, body: spec })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  return r.body
}

const chat = (key, model = 'gpt-4o-mini', headers = {}) =>
  call('/v1/chat/completions', {
    key,
    headers,
    body: { model, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
  })

const answered = { count: 0 }

test('a valid key is served with the upstream token counts, and charged', async () => {
  const { keyId, secret } = await mint({
    owner: 'acme',
    models: ['gpt-4o-mini'],
    limits: ['requests=1000/min'],
  })
  const trace = readTrace(TRACE)
  const r = await chat(secret, 'gpt-4o-mini', { 'x-request-id': 'req-first' })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  answered.count++
  assert.equal(r.headers.get('x-request-id'), 'req-first')
  assert.equal(r.body.usage.prompt_tokens, trace[0].inputTokens)
  assert.equal(r.body.usage.completion_tokens, trace[0].outputTokens)
  // The charge runs after the answer; poll the usage report for it.
  let rows = []
  for (let i = 0; i < 100 && rows.length === 0; i++) {
    rows = (await call(`/admin/usage?keyId=${keyId}`, { key: ADMIN, method: 'GET' })).body
    if (rows.length === 0) await new Promise((res) => setTimeout(res, 20))
  }
  assert.equal(rows.length, 1)
  assert.equal(rows[0].inputTokens, trace[0].inputTokens)
  assert.equal(rows[0].outputTokens, trace[0].outputTokens)
  // gpt-4o-mini from LiteLLM: $0.15 and $0.60 per million tokens, rounded up once.
  const expected = Math.ceil(
    (trace[0].inputTokens * 150_000 + trace[0].outputTokens * 600_000) / 1_000_000,
  )
  assert.equal(Number(rows[0].cost), expected)
})

test('bad keys and forbidden models get 401 and 403', async () => {
  const { secret } = await mint({ owner: 'acme', models: ['gpt-4o-mini'] })
  assert.equal((await chat(undefined)).status, 401)
  const garbage = await chat('nanu_live_garbage')
  assert.equal(garbage.status, 401)
  assert.equal(garbage.body.error.code, 'malformed')
  const forbidden = await chat(secret, 'gpt-4o')
  assert.equal(forbidden.status, 403)
  assert.equal(forbidden.body.error.code, 'model_denied')
  assert.equal((await call('/admin/keys', { key: 'wrong', body: { owner: 'x' } })).status, 403)
  assert.equal(
    (await call('/admin/keys', { key: ADMIN, body: { owner: 'x', bogus: 1 } })).status,
    400,
  )
})

test('a rate limit answers 429 with Retry-After', async () => {
  const { secret } = await mint({ owner: 'rate', limits: ['requests=2/min'] })
  assert.equal((await chat(secret)).status, 200)
  assert.equal((await chat(secret)).status, 200)
  answered.count += 2
  const limited = await chat(secret)
  assert.equal(limited.status, 429)
  assert.equal(limited.body.error.code, 'rate_limited')
  const retry = Number(limited.headers.get('retry-after'))
  assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`)
})

test('a key revoked through the admin API stops at once', async () => {
  const { keyId, secret } = await mint({ owner: 'leaky' })
  assert.equal((await chat(secret)).status, 200)
  answered.count++
  const revoked = await call('/admin/revoke', { key: ADMIN, body: { keyId } })
  assert.equal(revoked.status, 200)
  const after = await chat(secret)
  assert.equal(after.status, 401)
  assert.equal(after.body.error.code, 'revoked')
  assert.equal(
    (await call('/admin/revoke', { key: ADMIN, body: { keyId: 'key_missing' } })).status,
    404,
  )
})

test('a budget runs out and then answers 429', async () => {
  const budget = 10_000 // one cent
  const { keyId, secret } = await mint({ owner: 'budget', limits: [`cost=${budget}u`] })
  let served = 0
  let denied
  for (let i = 0; i < 200; i++) {
    const r = await chat(secret)
    if (r.status === 200) {
      served++
      // Let the charge land before the next verify, as traffic spaced out would.
      for (let j = 0; j < 50; j++) {
        const rows = (await call(`/admin/usage?keyId=${keyId}`, { key: ADMIN, method: 'GET' })).body
        if (rows.length && Number(rows[0].requests) === served) break
        await new Promise((res) => setTimeout(res, 10))
      }
      continue
    }
    denied = r
    break
  }
  answered.count += served
  assert.ok(denied, 'the budget never ran out')
  assert.equal(denied.status, 429)
  assert.equal(denied.body.error.code, 'budget_exceeded')
  assert.ok(served >= 2, `served ${served}`)
  const [row] = (await call(`/admin/usage?keyId=${keyId}`, { key: ADMIN, method: 'GET' })).body
  assert.equal(Number(row.requests), served)
  assert.ok(Number(row.cost) <= budget + 5_000, `spent ${row.cost} of ${budget}`)
})

test('the servers stop by PID and every answered request is in the vault', async () => {
  assert.equal(await stop(gateway.child), 0, gateway.stderr())
  assert.equal(await stop(upstream.child), 0)
  const vault = Vault.open(vaultPath, { passphrase: PASSPHRASE })
  try {
    const [total] = vault.usage()
    assert.equal(Number(total.requests), answered.count)
    assert.equal(vault.verifyAudit().ok, true)
    assert.ok(vault.audit().some((r) => r.action === 'revoke' && r.actor === 'admin-api'))
  } finally {
    vault.close()
  }
})
