'use strict'

// Runs before `npm pack` (and `--clean` after it): makes vendor/ a self-contained Cargo
// workspace, so that the tarball builds from source outside this repository.
//
//   vendor/nanu-core/   the nanu crate as `cargo package` normalizes it (workspace settings
//                       written out)
//   vendor/nanu-node/   this binding: src/, build.rs, a standalone Cargo.toml with the
//                       repository's profiles, and a Cargo.lock cut from the repository's
//
// Needs cargo and tar on the PATH.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const node = path.join(__dirname, '..')
const root = path.join(node, '..')
const vendor = path.join(node, 'vendor')

function fail(message) {
  console.error(`nanu vendor: ${message}`)
  process.exit(1)
}

function run(program, args, options = {}) {
  const result = spawnSync(program, args, { stdio: 'inherit', encoding: 'utf8', ...options })
  if (result.error) fail(`cannot run ${program}: ${result.error.message}`)
  if (result.status !== 0) fail(`${program} ${args.join(' ')} failed with status ${result.status}`)
  return result.stdout
}

// The repository's workspace manifest: its [workspace.package] values and [profile.*] tables.
function workspace() {
  const text = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8')
  if (!/^\[workspace\]/m.test(text)) fail(`${root}/Cargo.toml is not a workspace manifest`)
  const tables = text.split(/^(?=\[)/m)
  const packageTable = tables.find((t) => t.startsWith('[workspace.package]')) || ''
  const values = {}
  for (const line of packageTable.split('\n').slice(1)) {
    const m = line.match(/^([a-z-]+)\s*=\s*(.+?)\s*$/)
    if (m) values[m[1]] = m[2]
  }
  const profiles = tables
    .filter((t) => t.startsWith('[profile.'))
    .join('')
    .trimEnd()
  return { values, profiles }
}

// Writes the binding's standalone manifest from node/Cargo.toml: inherited fields spelled out,
// the core taken from vendor/nanu-core, and a [workspace] of its own.
function bindingManifest(ws) {
  let text = fs.readFileSync(path.join(node, 'Cargo.toml'), 'utf8')
  text = text.replace(/^([a-z-]+)\.workspace\s*=\s*true\s*$/gm, (line, key) => {
    if (!(key in ws.values)) fail(`node/Cargo.toml inherits ${key}, which the workspace lacks`)
    return `${key} = ${ws.values[key]}`
  })
  text = text.replace(/^\[lints\]\s*\nworkspace\s*=\s*true\s*\n?/m, '')
  text = text.replace('path = "../core"', 'path = "../nanu-core"')
  if (/workspace\s*=\s*true/.test(text) || text.includes('../core')) {
    fail('node/Cargo.toml has a workspace reference this script does not know how to write out')
  }
  return `${text.trimEnd()}\n\n[workspace]\n\n${ws.profiles}\n`
}

function copyTree(from, to) {
  fs.cpSync(from, to, { recursive: true })
}

function vendorCore() {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nanu-vendor-'))
  try {
    run('cargo', [
      'package',
      '--package',
      'nanu',
      '--no-verify',
      '--allow-dirty',
      '--manifest-path',
      path.join(root, 'Cargo.toml'),
      '--target-dir',
      scratch,
    ])
    const dir = path.join(scratch, 'package')
    const crate = fs.readdirSync(dir).find((f) => /^nanu-[0-9].*\.crate$/.test(f))
    if (!crate) fail('cargo package produced no nanu crate')
    const core = path.join(vendor, 'nanu-core')
    fs.mkdirSync(core, { recursive: true })
    run('tar', ['-xzf', path.join(dir, crate), '-C', core, '--strip-components=1'])
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

function vendorBinding(ws) {
  const binding = path.join(vendor, 'nanu-node')
  fs.mkdirSync(binding, { recursive: true })
  copyTree(path.join(node, 'src'), path.join(binding, 'src'))
  fs.copyFileSync(path.join(node, 'build.rs'), path.join(binding, 'build.rs'))
  fs.writeFileSync(path.join(binding, 'Cargo.toml'), bindingManifest(ws))

  // Start from the repository's lock so that the tarball builds exactly the versions tested
  // here; cargo drops the entries this smaller workspace does not use.
  const lock = path.join(binding, 'Cargo.lock')
  fs.copyFileSync(path.join(root, 'Cargo.lock'), lock)
  const manifest = path.join(binding, 'Cargo.toml')
  run('cargo', ['metadata', '--format-version', '1', '--manifest-path', manifest], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  run('cargo', ['metadata', '--format-version', '1', '--locked', '--manifest-path', manifest], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

function main() {
  fs.rmSync(vendor, { recursive: true, force: true })
  if (process.argv.includes('--clean')) return
  const ws = workspace()
  vendorCore()
  vendorBinding(ws)
  for (const f of ['index.js', 'index.d.ts', 'README.md']) {
    if (!fs.existsSync(path.join(node, f))) fail(`${f} is missing`)
  }
}

main()
