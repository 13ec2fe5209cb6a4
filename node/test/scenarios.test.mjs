// The Node runner of the shared conformance scenarios in tests/scenarios/*.json, following
// tests/scenarios/README.md: the same files run through Rust, C, Python and Node, which must
// give identical answers.
//
// Scenario payloads are the JSON form (snake_case); the runner writes them as a JavaScript
// caller would (camelCase fields, RFC 3339 strings for times) and calls the public API.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { Vault } from 'nanu'

import { KDF, REPO, parseJson, tempDir } from './helpers.mjs'

const FOLDER = join(REPO, 'tests', 'scenarios')
const FIRST_TIME = '2025-01-01T00:00:00Z'
const COMMON = ['op', 'at', 'expect', 'expect_error', 'note']

/** What an op may carry besides the common fields, and whether it defines `expect`. */
const OPS = {
  mint: [['spec', 'as'], false],
  verify: [['key', 'secret', 'request', 'as_hold'], true],
  charge: [['key', 'usage'], true],
  release: [['hold'], true],
  rotate: [['key', 'grace_ms', 'as'], false],
  revoke: [['key'], false],
  revoke_owner: [['owner'], true],
  update: [['key', 'patch'], false],
  set_owner_policy: [['owner', 'limits'], false],
  set_default_owner_policy: [['limits'], false],
  set_price: [['model', 'price'], false],
  remaining: [['key'], true],
  tick: [[], false],
  usage: [['query'], true],
}

const UNITS = ['requests', 'tokens', 'input_tokens', 'output_tokens', 'cost']

/** Maps whose keys are data, not field names. */
const FREE = new Set(['metadata', 'aliases'])

const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())

/** The JSON form of a payload, written with the camelCase field names of the Node API. */
function camelize(value) {
  if (Array.isArray(value)) return value.map(camelize)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [camel(k), FREE.has(k) ? v : camelize(v)]),
  )
}

const scenarios = readdirSync(FOLDER)
  .filter((f) => f.endsWith('.json'))
  .sort()

test('the scenario folder holds scenarios', () => {
  assert.ok(scenarios.length > 0, `no scenario in ${FOLDER}`)
})

for (const file of scenarios) {
  test(`scenario ${file}`, (t) => {
    const scenario = parseJson(readFileSync(join(FOLDER, file), 'utf8'))
    assert.ok(Array.isArray(scenario.steps) && scenario.steps.length > 0, 'no steps')
    const vault = Vault.create(join(tempDir(t), 'scenario.vault'), {
      passphrase: 'scenario',
      kdf: KDF,
    })
    t.after(() => vault.close())
    const run = { vault, at: FIRST_TIME, labels: new Map(), holds: new Map() }
    scenario.steps.forEach((step, i) => {
      const where = `${file} step ${i + 1} (${step.op})`
      try {
        runStep(run, step)
      } catch (err) {
        err.message = `${where}: ${err.message}`
        throw err
      }
    })
  })
}

function checkShape(step) {
  const spec = OPS[step.op]
  if (!spec) throw new Error(`unknown op ${JSON.stringify(step.op)}`)
  const [fields, hasExpect] = spec
  for (const key of Object.keys(step)) {
    if (!COMMON.includes(key) && !fields.includes(key)) {
      throw new Error(`field ${JSON.stringify(key)} is not one of ${step.op}'s`)
    }
  }
  if ('expect' in step && !hasExpect) throw new Error(`${step.op} defines no expect`)
  if ('expect' in step && 'expect_error' in step) throw new Error('expect and expect_error')
}

function label(run, name) {
  const found = run.labels.get(name)
  if (!found) throw new Error(`unknown label ${JSON.stringify(name)}`)
  return found
}

function holdId(run, name) {
  if (!run.holds.has(name)) throw new Error(`unknown hold ${JSON.stringify(name)}`)
  return run.holds.get(name)
}

function remember(run, name, value) {
  if (run.labels.has(name)) throw new Error(`label ${JSON.stringify(name)} used twice`)
  run.labels.set(name, value)
}

function runStep(run, step) {
  checkShape(step)
  if (step.at !== undefined) run.at = step.at
  const at = run.at
  let answer
  try {
    answer = perform(run, step, at)
  } catch (err) {
    if (step.expect_error === undefined) throw err
    assert.equal(err.code, step.expect_error, `expected ${step.expect_error}, got ${err}`)
    return
  }
  if (step.expect_error !== undefined) {
    assert.fail(`expected error ${step.expect_error}, but the step succeeded`)
  }
  if (step.expect !== undefined) compare(step.op, answer, step.expect)
}

function perform(run, step, at) {
  const { vault } = run
  const ctx = { at }
  switch (step.op) {
    case 'mint': {
      const minted = vault.mint(camelize(step.spec), ctx)
      remember(run, step.as, minted)
      return undefined
    }
    case 'verify': {
      const secret = step.key !== undefined ? label(run, step.key).secret : step.secret
      const request = { ...(step.request === undefined ? {} : camelize(step.request)), at }
      const verdict = vault.verify(secret, request)
      if (step.as_hold !== undefined) {
        if (run.holds.has(step.as_hold)) throw new Error(`hold ${step.as_hold} used twice`)
        run.holds.set(step.as_hold, verdict.holdId)
      }
      return verdict
    }
    case 'charge': {
      const { hold, ...rest } = step.usage ?? {}
      const usage = { ...camelize(rest), at }
      if (hold !== undefined) {
        const id = holdId(run, hold)
        if (id !== null) usage.holdId = id
      }
      return vault.charge(label(run, step.key).keyId, usage)
    }
    case 'release': {
      const id = holdId(run, step.hold)
      return id === null ? false : vault.release(id)
    }
    case 'rotate': {
      const minted = vault.rotate(label(run, step.key).keyId, {
        graceMs: step.grace_ms ?? 0,
        at,
      })
      remember(run, step.as, minted)
      return undefined
    }
    case 'revoke':
      return vault.revoke(label(run, step.key).keyId, ctx)
    case 'revoke_owner':
      return vault.revokeOwner(step.owner, ctx)
    case 'update':
      return vault.update(label(run, step.key).keyId, camelize(step.patch), ctx)
    case 'set_owner_policy':
      return vault.setOwnerPolicy(step.owner, camelize(step.limits), ctx)
    case 'set_default_owner_policy':
      return vault.setDefaultOwnerPolicy(camelize(step.limits), ctx)
    case 'set_price':
      return vault.setPrice(step.model, step.price === null ? null : camelize(step.price), ctx)
    case 'remaining':
      return vault.remaining(label(run, step.key).keyId, at)
    case 'tick':
      return vault.tick(at)
    case 'usage':
      return vault.usage({ ...camelize(step.query ?? {}) })
    default:
      throw new Error(`unknown op ${step.op}`)
  }
}

/** An instant given as RFC 3339 (or null) against epoch milliseconds (or null). */
function sameInstant(actual, expected, what) {
  if (expected === null) {
    assert.equal(actual, null, what)
    return
  }
  const ms = Date.parse(expected)
  assert.ok(!Number.isNaN(ms), `${what}: bad time ${expected}`)
  // Times come back in whole milliseconds; the scenarios' are whole milliseconds too.
  assert.equal(actual, ms, `${what}: ${new Date(actual).toISOString()} vs ${expected}`)
}

function compareUnits(remaining, expected, what) {
  for (const [unit, want] of Object.entries(expected)) {
    assert.ok(UNITS.includes(unit), `${what}: unknown unit ${unit}`)
    const have = remaining === null ? null : remaining[camel(unit)]
    assert.equal(have, want, `${what}.${unit}`)
  }
}

function compare(op, answer, expect) {
  switch (op) {
    case 'verify':
      for (const [field, want] of Object.entries(expect)) {
        const what = `verdict.${field}`
        switch (field) {
          case 'allowed':
          case 'code':
          case 'grace':
          case 'model':
            assert.equal(answer[field], want, what)
            break
          case 'hold':
            assert.equal(answer.holdId !== null, want, what)
            break
          case 'retry_after_ms':
            assert.equal(answer.retryAfterMs, want, what)
            break
          case 'resets_at':
            sameInstant(answer.resetsAt, want, what)
            break
          case 'denied_by':
            if (want === null) {
              assert.equal(answer.deniedBy, null, what)
              break
            }
            assert.notEqual(answer.deniedBy, null, what)
            for (const [k, v] of Object.entries(want)) {
              const have = k === 'unit' ? answer.deniedBy.limit.unit : answer.deniedBy[k]
              assert.equal(have, v, `${what}.${k}`)
            }
            break
          case 'remaining':
            compareUnits(answer.remaining, want, what)
            break
          default:
            throw new Error(`verify has no expectation ${field}`)
        }
      }
      return
    case 'charge':
      for (const [field, want] of Object.entries(expect)) {
        const what = `outcome.${field}`
        if (field === 'exceeded') assert.equal(answer.exceeded.length, want, what)
        else if (['cost', 'priced', 'replayed'].includes(field)) {
          assert.equal(answer[field], want, what)
        } else throw new Error(`charge has no expectation ${field}`)
      }
      return
    case 'release':
    case 'revoke_owner':
      assert.equal(answer, expect, op)
      return
    case 'remaining':
      compareUnits(answer, expect, 'remaining')
      return
    case 'usage': {
      const rows = expect.rows
      assert.ok(Array.isArray(rows), 'usage expects rows')
      assert.equal(answer.length, rows.length, `row count: ${JSON.stringify(answer, big)}`)
      rows.forEach((want, i) => {
        for (const [field, value] of Object.entries(want)) {
          const what = `rows[${i}].${field}`
          if (field === 'bucket') sameInstant(answer[i].bucket, value, what)
          else if (field === 'group') assert.deepEqual(answer[i].group, value, what)
          else assert.equal(answer[i][camel(field)], value, what)
        }
      })
      return
    }
    default:
      throw new Error(`${op} defines no expect`)
  }
}

function big(_key, value) {
  return typeof value === 'bigint' ? `${value}n` : value
}
