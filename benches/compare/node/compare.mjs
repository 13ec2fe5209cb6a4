// The Node side of the comparison: one implementation at one configuration per process.
//
//   node compare.mjs WORKLOAD.json IMPL CONFIG --modules DIR [--verify] [--port N]
//                    [--dir DIR] [--user NAME]
//
// IMPL and CONFIG as in python/drivers.py: `nanu` durable|process|relaxed, `sqlite`
// NORMAL|FULL (better-sqlite3, WAL mode), `redis` everysec|always (node-redis, EVALSHA),
// `postgres` on|off (pg, synchronous_commit for the session, named prepared statements).
// `--modules` is the folder whose node_modules holds nanu, redis, pg and better-sqlite3
// (run.sh installs them there, outside the repository).
//
// Loads the workload's keys into a fresh store, runs the untimed warm-up, then times each
// verify+charge of `charge_ops` one by one (awaiting each before the next), and with
// `--verify` each verify of `verify_ops`. Prints one JSON line per timed run; fails if any
// operation is denied, since the implementations would then no longer do the same work.

import { createHash } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const LEVELS = {
  'nanu durable': 'durable',
  'nanu process': 'process',
  'nanu relaxed': 'relaxed',
  'sqlite FULL': 'durable',
  'sqlite NORMAL': 'process',
  'redis always': 'durable',
  'redis everysec': 'process',
  'postgres on': 'durable',
  'postgres off': 'process',
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    modules: { type: 'string' },
    verify: { type: 'boolean', default: false },
    port: { type: 'string' },
    dir: { type: 'string', default: tmpdir() },
    user: { type: 'string', default: 'nanubench' },
  },
})
const [workloadPath, impl, config] = positionals
if (!(`${impl} ${config}` in LEVELS)) {
  throw new Error(`usage: compare.mjs WORKLOAD IMPL CONFIG; no configuration ${impl} ${config}`)
}
if (!values.modules) throw new Error('--modules DIR is required')
const require = createRequire(join(values.modules, 'package.json'))
const workload = JSON.parse(readFileSync(workloadPath, 'utf8'))

/** The `-- name: X` blocks of a SQL file. */
function namedBlocks(file) {
  const blocks = {}
  let current = null
  for (const line of readFileSync(join(here, '..', 'sql', file), 'utf8').split('\n')) {
    if (line.startsWith('-- name:')) {
      current = line.slice('-- name:'.length).trim()
      blocks[current] = []
    } else if (current !== null) {
      blocks[current].push(line)
    }
  }
  return Object.fromEntries(Object.entries(blocks).map(([k, v]) => [k, v.join('\n').trim()]))
}

const version = (name) => require(`${name}/package.json`).version
const digest = (secret) => createHash('sha256').update(secret).digest()

/** nanu in this process: verify, then charge the key the verdict names. */
function openNanu(level) {
  const { Vault } = require('nanu')
  const path = join(values.dir, `compare-node-${level}.vault`)
  rmSync(path, { force: true })
  const vault = Vault.create(path, {
    passphrase: 'compare',
    kdf: { mCostKib: 8, tCost: 1, pCost: 1 },
    durability: level,
  })
  if (workload.per_ms !== 60_000) throw new Error("nanu's limits below are written per minute")
  const limits = [`cost=${workload.budget}u`, `requests=${workload.rate}/min`]
  const specs = Array.from({ length: workload.keys }, (_, i) => ({ owner: `user-${i}`, limits }))
  const secrets = vault.mintMany(specs).map((m) => m.secret)
  // At `durable` a charge waits for an fsync: a Node service would keep that off the event
  // loop with chargeAsync, as the package's documentation says, so that is what is timed.
  if (level === 'durable') {
    return {
      client: `nanu ${version('nanu')}`,
      verify: (i) => vault.verify(secrets[i]).allowed,
      verifyCharge: async (i, cost) => {
        const verdict = vault.verify(secrets[i])
        if (!verdict.allowed) return false
        await vault.chargeAsync(verdict.keyId, { cost })
        return true
      },
      close: () => vault.close(),
    }
  }
  return {
    client: `nanu ${version('nanu')}`,
    verify: (i) => vault.verify(secrets[i]).allowed,
    verifyCharge: (i, cost) => {
      const verdict = vault.verify(secrets[i])
      if (!verdict.allowed) return false
      vault.charge(verdict.keyId, { cost })
      return true
    },
    close: () => vault.close(),
  }
}

/** A table of hashed keys; verify+charge is one BEGIN IMMEDIATE transaction. */
function openSqlite(synchronous) {
  const Database = require('better-sqlite3')
  const sql = namedBlocks('sqlite.sql')
  const path = join(values.dir, `compare-node-${synchronous}.sqlite`)
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true })
  const db = new Database(path)
  if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal') throw new Error('no WAL')
  db.pragma(`synchronous = ${synchronous}`)
  db.exec(sql.schema)
  const at = Date.now()
  const insert = db.prepare(sql.insert)
  db.transaction(() => {
    workload.secrets.forEach((s, i) => {
      insert.run(digest(s), `key_${i}`, workload.budget, workload.rate, workload.per_ms,
        workload.rate, at)
    })
  })()
  const verify = db.prepare(sql.verify)
  const select = db.prepare(sql.select_for_charge)
  const charge = db.prepare(sql.charge)
  const checkAndCharge = db.transaction((key, cost) => {
    const row = select.get(key)
    if (row === undefined || row.status !== 'active' || row.spent >= row.budget) return false
    const now = Date.now()
    const elapsed = Math.max(now - row.at_ms, 0)
    const bucket = Math.min(row.rate, row.tokens + (elapsed * row.rate) / row.per_ms)
    if (bucket < 1) return false
    charge.run(cost, bucket - 1, now, key)
    return true
  }).immediate
  const sqliteVersion = db.prepare('SELECT sqlite_version() AS v').get().v
  return {
    client: `better-sqlite3 ${version('better-sqlite3')}, SQLite ${sqliteVersion}`,
    verify: (i) => {
      const row = verify.get(digest(workload.secrets[i]))
      return row !== undefined && row.status === 'active' && row.spent < row.budget
    },
    verifyCharge: (i, cost) => checkAndCharge(digest(workload.secrets[i]), cost),
    close: () => db.close(),
  }
}

/** Keys as hashes named by the digest; verify+charge is one EVALSHA. */
async function openRedis(appendfsync) {
  const { createClient } = require('redis')
  const client = createClient({ socket: { host: '127.0.0.1', port: Number(values.port) } })
  await client.connect()
  const configured = (await client.configGet('appendfsync')).appendfsync
  if (configured !== appendfsync) throw new Error(`server runs appendfsync ${configured}`)
  await client.flushAll()
  const at = String(Date.now())
  for (let start = 0; start < workload.keys; start += 1000) {
    const batch = client.multi()
    for (let i = start; i < Math.min(start + 1000, workload.keys); i++) {
      batch.hSet(`key:${digest(workload.secrets[i]).toString('hex')}`, {
        key_id: `key_${i}`,
        status: 'active',
        budget: String(workload.budget),
        spent: '0',
        rate: String(workload.rate),
        per_ms: String(workload.per_ms),
        tokens: String(workload.rate),
        at_ms: at,
      })
    }
    await batch.execAsPipeline()
  }
  const script = readFileSync(join(here, '..', 'redis', 'verify_charge.lua'), 'utf8')
  const sha = await client.scriptLoad(script)
  const name = (i) => `key:${digest(workload.secrets[i]).toString('hex')}`
  const fields = ['key_id', 'status', 'budget', 'spent']
  const server = (await client.info('server')).match(/redis_version:(\S+)/)[1]
  return {
    client: `node-redis ${version('redis')}, Redis ${server}`,
    verify: async (i) => {
      const [keyId, status, budget, spent] = await client.hmGet(name(i), fields)
      return keyId !== null && status === 'active' && Number(spent) < Number(budget)
    },
    verifyCharge: async (i, cost) => {
      const reply = await client.evalSha(sha, { keys: [name(i)], arguments: [String(cost)] })
      return reply[0] === 1
    },
    close: () => client.quit(),
  }
}

/** The table and plpgsql function of sql/postgres.sql, one prepared call per operation. */
async function openPostgres(sync) {
  const { Client } = require('pg')
  const sql = namedBlocks('postgres.sql')
  const client = new Client({
    host: '127.0.0.1',
    port: Number(values.port),
    user: values.user,
    database: 'postgres',
  })
  await client.connect()
  await client.query(`SET synchronous_commit = ${sync}`)
  await client.query(sql.schema)
  const at = Date.now()
  const column = (f) => workload.secrets.map(f)
  await client.query(
    `INSERT INTO keys (digest, key_id, status, budget, spent, rate, per_ms, tokens, at_ms)
     SELECT d, id, 'active', $3, 0, $4, $5, $4, $6
     FROM unnest($1::bytea[], $2::text[]) AS u(d, id)`,
    [column(digest), column((_, i) => `key_${i}`), workload.budget, workload.rate,
      workload.per_ms, at],
  )
  await client.query('ANALYZE keys')
  const server = (await client.query('SHOW server_version')).rows[0].server_version
  return {
    client: `pg ${version('pg')}, PostgreSQL ${server.split(' ')[0]}`,
    verify: async (i) => {
      const { rows } = await client.query({
        name: 'verify',
        text: sql.verify,
        values: [digest(workload.secrets[i])],
      })
      const row = rows[0]
      return row !== undefined && row.status === 'active' && Number(row.spent) < Number(row.budget)
    },
    verifyCharge: async (i, cost) => {
      const { rows } = await client.query({
        name: 'verify_charge',
        text: sql.verify_charge,
        values: [digest(workload.secrets[i]), cost],
      })
      return rows[0]?.allowed === true
    },
    close: () => client.end(),
  }
}

/** Times each call one by one; a call may return a promise, which is awaited first. */
async function report(workloadName, ops, call) {
  const times = new Float64Array(ops.length)
  let allowed = 0
  const begin = process.hrtime.bigint()
  for (let n = 0; n < ops.length; n++) {
    const start = process.hrtime.bigint()
    let ok = call(ops[n])
    if (ok instanceof Promise) ok = await ok
    times[n] = Number(process.hrtime.bigint() - start)
    if (ok) allowed += 1
  }
  const total = Number(process.hrtime.bigint() - begin)
  if (allowed !== ops.length) {
    throw new Error(`${impl} ${config} ${workloadName}: ${ops.length - allowed} of ` +
      `${ops.length} operations were denied; the workload should allow them all`)
  }
  times.sort()
  const n = times.length
  console.log(JSON.stringify({
    kind: 'result',
    lang: 'node',
    impl,
    config,
    level: LEVELS[`${impl} ${config}`],
    workload: workloadName,
    n,
    p50_ns: times[Math.floor(n / 2)],
    p99_ns: times[Math.min(n - 1, Math.floor((n * 99) / 100))],
    ops_per_s: (n * 1e9) / total,
    client: store.client,
    node: process.version,
  }))
}

const store = impl === 'nanu' ? openNanu(config)
  : impl === 'sqlite' ? openSqlite(config)
    : impl === 'redis' ? await openRedis(config)
      : await openPostgres(config)
try {
  for (const [i, cost] of workload.warmup_ops) await store.verifyCharge(i, cost)
  await report('verify_charge', workload.charge_ops, ([i, cost]) => store.verifyCharge(i, cost))
  if (values.verify) {
    for (const [i] of workload.warmup_ops) await store.verify(i)
    await report('verify', workload.verify_ops, (i) => store.verify(i))
  }
} finally {
  await store.close()
}
