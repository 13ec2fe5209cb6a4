// The gateway (gateway.mjs) on several worker processes with node:cluster. Each worker opens the
// vault file itself in nanu's `shared` mode, so the workers keep one set of limits: a budget
// admits exactly what it allows however the connections are spread, and a key minted or revoked
// through one worker is served or refused by the next request to any worker.
//
//   WORKERS=4 NANU_VAULT=keys.vault NANU_PASSPHRASE=... ADMIN_TOKEN=... \
//   UPSTREAM_URL=http://127.0.0.1:9000 PORT=8080 node cluster.mjs
//
// The environment is gateway.mjs's; NANU_CONCURRENCY is always `shared` here. The primary
// creates the vault when it is missing and imports NANU_PRICES, once, before it forks; it
// opens no vault while the workers run. It prints `listening <port>` once every worker
// listens, and on SIGTERM or SIGINT stops the workers (each finishes the charges under way
// and closes its vault) and exits, with status 1 if a worker failed.

import cluster from 'node:cluster'

import { Vault } from 'nanu'

import { prepareVault, serve, vaultOptions } from './gateway.mjs'

const env = { ...process.env, NANU_CONCURRENCY: 'shared' }

async function primary() {
  const count = Number(env.WORKERS ?? 4)
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new Error(`WORKERS must be a positive whole number, not ${env.WORKERS}`)
  }
  const vault = await prepareVault(env)
  vault.close()

  let listening = 0
  let alive = count
  let stopping = false
  let failed = false
  const stop = () => {
    stopping = true
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM')
  }
  cluster.on('listening', (_worker, address) => {
    listening += 1
    if (listening === count) console.log(`listening ${address.port}`)
  })
  cluster.on('exit', (worker, code, signal) => {
    if (code !== 0) {
      failed = true
      console.error(`worker ${worker.process.pid} ended with ${signal ?? code}`)
    }
    // A worker that dies while the others serve leaves them to it; the cluster stops.
    if (!stopping) stop()
    alive -= 1
    if (alive === 0) process.exit(failed ? 1 : 0)
  })
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  for (let i = 0; i < count; i++) cluster.fork(env)
}

async function worker() {
  const vault = await Vault.openAsync(env.NANU_VAULT, vaultOptions(env))
  // The primary announces the port once all workers listen.
  serve(vault, env, () => {})
}

;(cluster.isPrimary ? primary() : worker()).catch((err) => {
  console.error(err)
  process.exit(1)
})
