// The README's quick start runs as written, against the installed package.

import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { PACKAGE, runNode, tempDir } from './helpers.mjs'

test('the README quick start runs', async (t) => {
  const readme = readFileSync(join(PACKAGE, 'README.md'), 'utf8')
  const start = readme.indexOf('## Quick start')
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(start))
  assert.ok(block, 'no js block under Quick start')
  // A project of its own, where `nanu` is the installed package.
  const project = tempDir(t)
  mkdirSync(join(project, 'node_modules'))
  symlinkSync(PACKAGE, join(project, 'node_modules', 'nanu'), 'dir')
  const child = await runNode(block[1], { cwd: project })
  assert.equal(child.code, 0, child.stderr)
  assert.equal(child.stdout.trim(), '6000')
})
