// Several Node processes on one vault file with `concurrency: 'shared'`: the option and its
// getter, limits exact across real processes, a revoke seen by another process's next
// verify, and the two modes refusing each other.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'

import { Vault } from 'nanu'

import { KDF, tempDir, throwsCode } from './helpers.mjs'

const PASSPHRASE = 'test passphrase'

// A child process: opens the vault, says `ready` (or `error <code> <message>`), then runs the
// commands it reads from its standard input, one a line, answering each with one line.
const AGENT = `
  import { createInterface } from 'node:readline'
  import { Vault } from 'nanu'

  const [path, concurrency] = process.argv.slice(1)
  let vault
  try {
    vault = Vault.open(path, { passphrase: 'test passphrase', concurrency, leaseTimeoutMs: 1000 })
  } catch (err) {
    console.log(\`error \${err.code} \${err.message}\`)
    process.exit(0)
  }
  console.log('ready')
  for await (const line of createInterface({ input: process.stdin })) {
    const [command, secret] = line.split(' ')
    if (command === 'verify') {
      console.log(vault.verify(secret).code)
    } else if (command === 'drain') {
      // Verifies until 50 denials in a row; answers how many were admitted.
      let admitted = 0
      let denied = 0
      while (denied < 50) {
        const verdict = vault.verify(secret)
        if (verdict.allowed) {
          admitted++
          denied = 0
        } else if (verdict.code === 'usage_exceeded') {
          denied++
        } else {
          throw new Error(\`denied for another reason: \${verdict.code}\`)
        }
      }
      console.log(String(admitted))
    }
  }
  vault.close()
`

/** A child Node process with the vault open. */
class Agent {
  constructor(path, concurrency) {
    this.child = spawn(process.execPath, ['--input-type=module', '-e', AGENT, path, concurrency], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]()
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)))
  }

  async answer() {
    const { value, done } = await this.lines.next()
    assert.ok(!done, 'the agent ended without answering')
    return value
  }

  ask(command) {
    this.child.stdin.write(`${command}\n`)
    return this.answer()
  }

  /** Ends the agent (it closes its vault) and resolves with its exit code. */
  finish() {
    this.child.stdin.end()
    return this.exited
  }

  /** Kills an agent a failed test left behind. */
  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

function agents(t, path, count, concurrency = 'shared') {
  const started = Array.from({ length: count }, () => new Agent(path, concurrency))
  t.after(() => started.forEach((a) => a.kill()))
  return started
}

function sharedVault(t, options = {}) {
  const path = join(tempDir(t), 'shared.vault')
  const vault = Vault.create(path, {
    passphrase: PASSPHRASE,
    kdf: KDF,
    concurrency: 'shared',
    leaseTimeoutMs: 1000,
    ...options,
  })
  return { path, vault }
}

test('concurrency defaults to exclusive and the getter names the mode', (t) => {
  const path = join(tempDir(t), 'modes.vault')
  const vault = Vault.create(path, { passphrase: PASSPHRASE, kdf: KDF })
  assert.equal(vault.concurrency, 'exclusive')
  vault.close()
  const shared = Vault.open(path, {
    passphrase: PASSPHRASE,
    concurrency: 'shared',
    leaseTimeoutMs: 1500n,
  })
  assert.equal(shared.concurrency, 'shared')
  assert.equal(shared.durability, 'durable')
  shared.close()
})

test('bad concurrency options are invalid arguments', (t) => {
  const dir = tempDir(t)
  const cases = [
    [{ concurrency: 'both' }, /unknown concurrency/],
    [{ concurrency: 1 }, /concurrency/],
    [{ concurrency: 'shared', durability: 'process' }, /durable/],
    [{ concurrency: 'shared', durability: 'relaxed' }, /durable/],
    [{ leaseTimeoutMs: 5 }, /at least 10 ms/],
    [{ leaseTimeoutMs: -1 }, /leaseTimeoutMs/],
  ]
  for (const [i, [options, message]] of cases.entries()) {
    const path = join(dir, `bad-${i}.vault`)
    throwsCode(
      () => Vault.create(path, { passphrase: PASSPHRASE, kdf: KDF, ...options }),
      'invalid_argument',
      message,
      JSON.stringify(options),
    )
  }
})

test('four processes admit exactly a request limit between them', async (t) => {
  const { path, vault } = sharedVault(t)
  const { keyId, secret } = vault.mint({ owner: 'acme', limits: ['requests=300'] })
  vault.close()
  const started = agents(t, path, 4)
  for (const agent of started) assert.equal(await agent.answer(), 'ready')
  const admitted = await Promise.all(started.map((a) => a.ask(`drain ${secret}`)))
  assert.equal(
    admitted.reduce((sum, n) => sum + Number(n), 0),
    300,
    admitted.join(' '),
  )
  for (const agent of started) assert.equal(await agent.finish(), 0)
  const reopened = Vault.open(path, { passphrase: PASSPHRASE })
  assert.equal(reopened.remaining(keyId).requests, 0)
  reopened.close()
})

test('a revoke in this process is seen by the next verify of another', async (t) => {
  const { path, vault } = sharedVault(t)
  t.after(() => vault.close())
  const { keyId, secret } = vault.mint({ owner: 'acme' })
  const [other] = agents(t, path, 1)
  assert.equal(await other.answer(), 'ready')
  assert.equal(await other.ask(`verify ${secret}`), 'valid')
  vault.revoke(keyId)
  assert.equal(await other.ask(`verify ${secret}`), 'revoked')
  const minted = vault.mint({ owner: 'acme' })
  assert.equal(await other.ask(`verify ${minted.secret}`), 'valid')
  assert.equal(await other.finish(), 0)
})

test('the exclusive and shared modes refuse each other', async (t) => {
  const { path, vault } = sharedVault(t)
  const [exclusive] = agents(t, path, 1, 'exclusive')
  const refused = await exclusive.answer()
  assert.match(refused, /^error locked .*shared/)
  await exclusive.finish()
  vault.close()

  const alone = Vault.open(path, { passphrase: PASSPHRASE })
  t.after(() => alone.close())
  const [shared] = agents(t, path, 1, 'shared')
  assert.match(await shared.answer(), /^error locked .*exclusive/)
  await shared.finish()
})
