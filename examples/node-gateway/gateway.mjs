// An LLM gateway in front of an OpenAI-style upstream, with nanu checking every key in
// process: verify before forwarding (key, model, client address, budget hold), charge the
// tokens the upstream reports after answering.
//
//   NANU_VAULT=keys.vault NANU_PASSPHRASE=... ADMIN_TOKEN=... \
//   UPSTREAM_URL=http://127.0.0.1:9000 \
//   NANU_PRICES=../../../shared/data/litellm-model-prices-1.110.2.json node gateway.mjs
//
// `node cluster.mjs` (same environment) runs it on several worker processes that share the
// vault file (nanu's `shared` mode).
//
// Routes (the admin ones take `Authorization: Bearer <ADMIN_TOKEN>`):
//   POST /v1/chat/completions   Authorization: Bearer <key>; body { model, max_tokens, ... }
//   POST /admin/keys            body: a key spec -> { keyId, secret }
//   POST /admin/revoke          body { keyId }
//   GET  /admin/usage           ?keyId=... -> usage rows
//
// In the default `exclusive` mode the vault file is held by this process alone, so
// administration goes through it; with NANU_CONCURRENCY=shared every process that opens the
// file (the cluster's workers, the `nanu` CLI) sees the same keys and limits.

import { randomUUID, timingSafeEqual } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'

import { Vault } from 'nanu'

const MAX_BODY = 1 << 20
const DEFAULT_MAX_TOKENS = 1024

class HttpError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(text)
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk) => {
      size += chunk.length
      // Keep reading (and dropping) the rest so that the 413 answer reaches the client;
      // destroying the socket here would reset the connection before the answer is sent.
      if (size > MAX_BODY) tooLarge = true
      else chunks.push(chunk)
    })
    req.on('end', () => {
      if (tooLarge) {
        reject(new HttpError(413, 'too_large', 'the body is over 1 MiB'))
        return
      }
      const text = Buffer.concat(chunks).toString('utf8')
      let body
      try {
        body = text ? JSON.parse(text) : {}
      } catch {
        reject(new HttpError(400, 'bad_request', 'the body is not JSON'))
        return
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        reject(new HttpError(400, 'bad_request', 'the body must be a JSON object'))
      } else resolve(body)
    })
    req.on('error', reject)
  })
}

function bearer(req) {
  const header = req.headers.authorization ?? ''
  const m = /^Bearer\s+(\S.*)$/i.exec(header)
  return m ? m[1].trim() : null
}

/** The cost a request may reach, to hold it against the budget until the charge. */
function holdFor(vault, model, body) {
  const price = vault.price(model)
  const inputTokens = Math.ceil(JSON.stringify(body.messages ?? '').length / 4)
  const outputTokens =
    Number.isSafeInteger(body.max_tokens) && body.max_tokens > 0
      ? body.max_tokens
      : DEFAULT_MAX_TOKENS
  if (!price) return { inputTokens, outputTokens }
  // Integer micro-units, computed in bigint so that large prices never round.
  const micro =
    BigInt(inputTokens) * BigInt(price.inputPerMtok) +
    BigInt(outputTokens) * BigInt(price.outputPerMtok)
  const cost = (micro + 999_999n) / 1_000_000n + BigInt(price.perRequest)
  return { inputTokens, outputTokens, cost }
}

/**
 * The gateway's request handler over an open vault. `upstream` is the base URL of the model
 * server; `adminToken` guards /admin.
 */
export function createGateway(vault, { upstream, adminToken, log = () => {} }) {
  const admin = Buffer.from(adminToken)
  // Charges still running, so that shutting down waits for them before closing the vault.
  const charging = new Set()

  function checkAdmin(req) {
    const given = Buffer.from(bearer(req) ?? '')
    if (given.length !== admin.length || !timingSafeEqual(given, admin)) {
      throw new HttpError(403, 'forbidden', 'admin token required')
    }
  }

  async function completions(req, res) {
    const secret = bearer(req)
    if (!secret) throw new HttpError(401, 'missing_key', 'send Authorization: Bearer <key>')
    const body = await readBody(req)
    if (typeof body.model !== 'string' || body.model === '') {
      throw new HttpError(400, 'bad_request', 'the body needs a model')
    }
    // The client's X-Request-Id is echoed for tracing, but the charge's request id is the
    // gateway's own: a client reusing an id must not get a second answer charged as a repeat
    // of the first (a conflict, found only after the answer was sent).
    const requestId = req.headers['x-request-id'] || randomUUID()
    const chargeId = randomUUID()
    const verdict = vault.verify(secret, {
      model: body.model,
      ip: req.socket.remoteAddress,
      hold: holdFor(vault, body.model, body),
    })
    if (!verdict.allowed) {
      const headers = { 'x-request-id': requestId }
      const waitMs =
        verdict.retryAfterMs ??
        (verdict.resetsAt !== null ? Math.max(0, verdict.resetsAt - Date.now()) : null)
      if (verdict.httpStatus === 429 && waitMs !== null) {
        headers['retry-after'] = String(Math.max(1, Math.ceil(waitMs / 1000)))
      }
      log(`deny ${verdict.code} ${verdict.keyId ?? '-'}`)
      send(
        res,
        verdict.httpStatus,
        { error: { code: verdict.code, message: `request denied: ${verdict.code}` } },
        headers,
      )
      return
    }

    let answer
    try {
      const response = await fetch(new URL('/v1/chat/completions', upstream), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, model: verdict.model }),
      })
      if (!response.ok) throw new Error(`upstream answered ${response.status}`)
      answer = await response.json()
    } catch (err) {
      if (verdict.holdId !== null) vault.release(verdict.holdId)
      log(`upstream failed: ${err.message}`)
      throw new HttpError(502, 'upstream_failed', 'the model server failed')
    }

    const usage = {
      model: verdict.model,
      endpoint: '/v1/chat/completions',
      inputTokens: answer.usage?.prompt_tokens ?? 0,
      outputTokens: answer.usage?.completion_tokens ?? 0,
      requestId: chargeId,
    }
    if (verdict.holdId !== null) usage.holdId = verdict.holdId
    // Charge once the answer is on its way: what was delivered is recorded even past a limit,
    // and the next verify denies. chargeAsync keeps a durable commit off the event loop.
    res.on('finish', () => {
      const charge = vault
        .chargeAsync(verdict.keyId, usage)
        .catch((err) => log(`charge failed: ${err.code} ${err.message}`))
        .finally(() => charging.delete(charge))
      charging.add(charge)
    })
    // x-gateway-worker: which process answered, when several share the vault.
    send(res, 200, answer, { 'x-request-id': requestId, 'x-gateway-worker': String(process.pid) })
  }

  async function route(req, res) {
    const url = new URL(req.url, 'http://gateway')
    if (req.method === 'POST' && url.pathname === '/v1/chat/completions')
      return completions(req, res)
    if (url.pathname.startsWith('/admin/')) {
      checkAdmin(req)
      if (req.method === 'POST' && url.pathname === '/admin/keys') {
        const minted = vault.mint(await readBody(req), { actor: 'admin-api' })
        return send(res, 201, minted)
      }
      if (req.method === 'POST' && url.pathname === '/admin/revoke') {
        const { keyId } = await readBody(req)
        vault.revoke(keyId, { actor: 'admin-api' })
        return send(res, 200, { keyId, revoked: true })
      }
      if (req.method === 'GET' && url.pathname === '/admin/usage') {
        const keyId = url.searchParams.get('keyId') ?? undefined
        return send(res, 200, vault.usage(keyId ? { keyId } : {}))
      }
    }
    throw new HttpError(404, 'not_found', `no route ${req.method} ${url.pathname}`)
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err) => {
      if (err instanceof HttpError)
        return send(res, err.status, { error: { code: err.code, message: err.message } })
      // A vault error: a bad admin payload or an unknown key id.
      const status = err.code === 'invalid_argument' ? 400 : err.code === 'not_found' ? 404 : 500
      if (status === 500) log(`error: ${err.stack}`)
      send(res, status, { error: { code: err.code ?? 'internal', message: err.message } })
    })
  })
  /** Resolves once every charge started so far has finished. */
  server.settled = () => Promise.allSettled([...charging])
  return server
}

/** The vault options from the environment (NANU_PASSPHRASE, NANU_DURABILITY,
 * NANU_CONCURRENCY, and NANU_KDF_CHEAP=1 for tests). */
export function vaultOptions(env) {
  for (const name of ['NANU_VAULT', 'NANU_PASSPHRASE', 'ADMIN_TOKEN', 'UPSTREAM_URL']) {
    if (!env[name]) throw new Error(`set ${name}`)
  }
  const options = {
    passphrase: env.NANU_PASSPHRASE,
    durability: env.NANU_DURABILITY ?? 'durable',
    concurrency: env.NANU_CONCURRENCY ?? 'exclusive',
  }
  if (env.NANU_KDF_CHEAP === '1') options.kdf = { mCostKib: 8, tCost: 1, pCost: 1 }
  return options
}

/** Opens the vault, creating it when the file does not exist, and imports NANU_PRICES when
 * set. */
export async function prepareVault(env) {
  const options = vaultOptions(env)
  const vault = existsSync(env.NANU_VAULT)
    ? await Vault.openAsync(env.NANU_VAULT, options)
    : await Vault.createAsync(env.NANU_VAULT, options)
  if (env.NANU_PRICES)
    vault.importPrices(readFileSync(env.NANU_PRICES, 'utf8'), { actor: 'gateway' })
  return vault
}

/** Serves the gateway over `vault` on PORT until SIGTERM or SIGINT, then waits for the charges
 * under way, closes the vault and exits. Calls `onListening(port)` once listening. */
export function serve(vault, env, onListening) {
  const server = createGateway(vault, {
    upstream: env.UPSTREAM_URL,
    adminToken: env.ADMIN_TOKEN,
    log: (line) => console.error(line),
  })
  server.listen(Number(env.PORT ?? 8080), '127.0.0.1', () => onListening(server.address().port))
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    server.close(async () => {
      await server.settled()
      vault.close()
      process.exit(0)
    })
    server.closeIdleConnections()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  return server
}

async function main() {
  const vault = await prepareVault(process.env)
  serve(vault, process.env, (port) => console.log(`listening ${port}`))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
