// Latency of nanu's hot path from Node: verify of a valid key with three limits and every
// check (IP allowlist, scope, model allowlist with a priced model, environment), and
// verify+charge at each durability level. One caller, per-call timing, p50 and p99.
//
//   node node/scripts/install.js          # release build of the addon into node/nanu.node
//   node benches/node/bench.mjs [--calls 200000] [--durable-calls 2000] [--json]
//
// NANU_PACKAGE names another install of the package (for example a project's
// node_modules/nanu) to measure instead of the repository's node/.

import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const packagePath = process.env.NANU_PACKAGE ?? join(here, '..', '..', 'node')
const { Vault } = createRequire(import.meta.url)(packagePath)

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '200000' },
    'durable-calls': { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '20000' },
    json: { type: 'boolean', default: false },
  },
})
const CALLS = Number(values.calls)
const DURABLE_CALLS = Number(values['durable-calls'])
const WARMUP = Number(values.warmup)
const KDF = { mCostKib: 8, tCost: 1, pCost: 1 }
const REQUEST = { ip: '10.1.2.3', scope: 'chat', model: 'gpt-4o', env: 'live' }

const dir = mkdtempSync(join(tmpdir(), 'nanu-node-bench-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

let opened = 0
function open(durability) {
  opened += 1
  const vault = Vault.create(join(dir, `${opened}-${durability}.vault`), {
    passphrase: 'bench',
    kdf: KDF,
    durability,
  })
  vault.setPrice('gpt-4o', { inputPerMtok: 2_500_000, outputPerMtok: 10_000_000 })
  const minted = vault.mint({
    owner: 'bench',
    env: 'live',
    ips: ['10.0.0.0/8'],
    scopes: ['chat'],
    models: ['gpt-4o'],
    limits: ['cost=$1000000000/month', 'requests=1000000000/min', 'tokens=1000T/day'],
  })
  return { vault, ...minted }
}

/** Times `calls` calls of `fn(i)` one by one; returns nanosecond percentiles. */
function measure(calls, fn) {
  for (let i = 0; i < Math.min(WARMUP, calls); i++) fn(-1 - i)
  const times = new Float64Array(calls)
  for (let i = 0; i < calls; i++) {
    const start = process.hrtime.bigint()
    fn(i)
    times[i] = Number(process.hrtime.bigint() - start)
  }
  times.sort()
  const at = (q) => times[Math.min(calls - 1, Math.floor(q * calls))]
  return { calls, p50: at(0.5), p99: at(0.99), max: times[calls - 1] }
}

const results = []
const record = (name, r) => results.push({ name, ...r })

record(
  'timer alone',
  measure(CALLS, () => {}),
)

{
  const { vault, secret } = open('process')
  record(
    'verify (3 limits, every check)',
    measure(CALLS, () => vault.verify(secret, REQUEST)),
  )
  // A key with the same limits but no allowlists, verified without a request.
  const plain = vault.mint({
    owner: 'plain',
    limits: ['cost=$1000000000/month', 'requests=1000000000/min', 'tokens=1000T/day'],
  })
  record(
    'verify (3 limits, no request)',
    measure(CALLS, () => vault.verify(plain.secret)),
  )
  record(
    'verify (denied: ip not allowed)',
    measure(CALLS, () => vault.verify(secret)),
  )
  record(
    'verify (malformed secret)',
    measure(CALLS, () => vault.verify('nanu_live_garbage')),
  )
  vault.close()
}

for (const durability of ['relaxed', 'process', 'durable']) {
  const { vault, keyId, secret } = open(durability)
  const calls = durability === 'durable' ? DURABLE_CALLS : CALLS
  const usage = { model: 'gpt-4o', inputTokens: 1200, outputTokens: 300, requestId: '' }
  record(
    `verify+charge (${durability})`,
    measure(calls, (i) => {
      const verdict = vault.verify(secret, REQUEST)
      if (!verdict.allowed) throw new Error(`denied: ${verdict.code}`)
      usage.requestId = `r${i}`
      vault.charge(keyId, usage)
    }),
  )
  vault.close()
}

if (values.json) {
  console.log(JSON.stringify({ node: process.version, results }, null, 2))
} else {
  const us = (ns) => (ns / 1000).toFixed(2).padStart(9)
  console.log(`node ${process.version}, ${packagePath}`)
  console.log(
    `${'call'.padEnd(34)} ${'calls'.padStart(8)} ${'p50 us'.padStart(9)} ${'p99 us'.padStart(9)}`,
  )
  for (const r of results) {
    console.log(`${r.name.padEnd(34)} ${String(r.calls).padStart(8)} ${us(r.p50)} ${us(r.p99)}`)
  }
}
