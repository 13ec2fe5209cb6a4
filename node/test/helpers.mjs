// Shared test fixtures: real vault files in temporary folders, cheap KDF parameters, and
// assertions on error codes.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Vault } from 'nanu'

/** Argon2id at its cheapest: tests only. */
export const KDF = { mCostKib: 8, tCost: 1, pCost: 1 }

/** The repository (for tests/scenarios); the test script sets NANU_REPO when the suite runs
 * from a copy outside it. */
export const REPO =
  process.env.NANU_REPO ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The folder of the installed `nanu` package. */
export const PACKAGE = dirname(createRequire(import.meta.url).resolve('nanu/package.json'))

/** A temporary folder removed after the test. */
export function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'nanu-node-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A fresh vault in a temporary folder, closed after the test. */
export function freshVault(t, options = {}) {
  const path = join(tempDir(t), 'test.vault')
  const vault = Vault.create(path, { passphrase: 'test passphrase', kdf: KDF, ...options })
  t.after(() => vault.close())
  return vault
}

/** Asserts that `fn` throws an Error whose `code` is `code` (and whose message matches);
 * `label` names the case in a failure. */
export function throwsCode(fn, code, message, label = '') {
  assert.throws(
    fn,
    (err) => {
      assert.ok(err instanceof Error, `${label}: expected an Error, got ${err}`)
      assert.equal(err.code, code, `${label}: code of ${err.message}`)
      if (message) assert.match(err.message, message, label)
      return true
    },
    label,
  )
}

/** Asserts that `promise` rejects with an Error whose `code` is `code`. */
export async function rejectsCode(promise, code, message) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Error, `expected an Error, got ${err}`)
    assert.equal(err.code, code, `code of ${err.message}`)
    if (message) assert.match(err.message, message)
    return true
  })
}

/** Runs `node -e source` with the installed package resolvable; resolves to
 * `{ code, signal, stdout, stderr }`. */
export function runNode(source, { cwd = process.cwd(), env = {}, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`child did not exit within ${timeoutMs} ms: ${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** The field names of an interface in the package's index.d.ts, in order. */
export function declaredFields(name) {
  const dts = readFileSync(join(PACKAGE, 'index.d.ts'), 'utf8')
  const start = dts.indexOf(`export interface ${name} {`)
  assert.notEqual(start, -1, `index.d.ts declares no interface ${name}`)
  const end = dts.indexOf('\n}\n', start)
  const body = dts.slice(start, end)
  return [...body.matchAll(/^ {2}([A-Za-z]+)\??:/gm)].map((m) => m[1])
}

/** The string-literal members of a type union in the package's index.d.ts. */
export function declaredUnion(name) {
  const dts = readFileSync(join(PACKAGE, 'index.d.ts'), 'utf8')
  const m = dts.match(new RegExp(`export type ${name} =([^\\n]*(?:\\n\\s+\\|[^\\n]*)*)`))
  assert.ok(m, `index.d.ts declares no type ${name}`)
  return [...m[1].matchAll(/'([a-z_]+)'/g)].map((x) => x[1])
}

/**
 * Parses JSON keeping integers beyond Number.MAX_SAFE_INTEGER exact, as bigints (the
 * scenarios hold amounts up to 2^64 - 1, which JSON.parse would round).
 */
export function parseJson(text) {
  let i = 0
  const fail = (what) => {
    throw new SyntaxError(`JSON: ${what} at offset ${i}`)
  }
  const space = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++
  }
  const value = () => {
    space()
    const c = text[i]
    if (c === '{') {
      i++
      const out = {}
      space()
      if (text[i] === '}') return (i++, out)
      for (;;) {
        space()
        const key = string()
        space()
        if (text[i++] !== ':') fail('expected :')
        out[key] = value()
        space()
        if (text[i] === ',') i++
        else if (text[i] === '}') return (i++, out)
        else fail('expected , or }')
      }
    }
    if (c === '[') {
      i++
      const out = []
      space()
      if (text[i] === ']') return (i++, out)
      for (;;) {
        out.push(value())
        space()
        if (text[i] === ',') i++
        else if (text[i] === ']') return (i++, out)
        else fail('expected , or ]')
      }
    }
    if (c === '"') return string()
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ]) {
      if (text.startsWith(word, i)) return ((i += word.length), v)
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400))
    if (!m) fail('unexpected character')
    i += m[0].length
    if (!m[2] && !m[3]) {
      const n = Number(m[0])
      return Number.isSafeInteger(n) ? n : BigInt(m[0])
    }
    return Number(m[0])
  }
  const string = () => {
    if (text[i] !== '"') fail('expected a string')
    let j = i + 1
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1
    const s = JSON.parse(text.slice(i, j + 1))
    i = j + 1
    return s
  }
  const out = value()
  space()
  if (i !== text.length) fail('trailing characters')
  return out
}
