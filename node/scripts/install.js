'use strict'

// Builds the native addon from the Rust sources of this package and puts it at nanu.node.
//
// Installed from the npm tarball, the sources are in vendor/: the binding (vendor/nanu-node,
// a Cargo workspace of its own with its Cargo.lock) and a copy of the nanu core
// (vendor/nanu-core), so the build needs nothing but cargo and crates.io. In a checkout of the
// repository the crate is a member of the repository's workspace and is built there.
//
// NANU_NODE_PROFILE picks `release` (the default) or `debug`; CARGO_TARGET_DIR and CARGO are
// honoured as cargo itself does.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const LIBRARY = {
  linux: 'libnanu_node.so',
  darwin: 'libnanu_node.dylib',
  win32: 'nanu_node.dll',
}

function fail(message) {
  console.error(`nanu: ${message}`)
  process.exit(1)
}

function cargo(args, capture) {
  const program = process.env.CARGO || 'cargo'
  const result = spawnSync(program, args, {
    stdio: capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.error) {
    fail(
      `cannot run ${program} (${result.error.message}); building the native addon needs ` +
        'Rust 1.90 or later with cargo on the PATH (https://rustup.rs)',
    )
  }
  if (result.status !== 0) {
    fail(`${program} ${args.join(' ')} failed with status ${result.status}`)
  }
  return result.stdout
}

function main() {
  const pkg = path.join(__dirname, '..')
  const vendored = path.join(pkg, 'vendor', 'nanu-node', 'Cargo.toml')
  const standalone = fs.existsSync(vendored)
  const manifest = standalone ? vendored : path.join(pkg, 'Cargo.toml')
  const profile = process.env.NANU_NODE_PROFILE || 'release'
  if (profile !== 'release' && profile !== 'debug') {
    fail(`NANU_NODE_PROFILE must be release or debug, not ${JSON.stringify(profile)}`)
  }
  const library = LIBRARY[process.platform]
  if (!library) {
    fail(`no build recipe for platform ${process.platform}`)
  }

  const build = ['build', '--manifest-path', manifest, '--lib']
  if (profile === 'release') build.push('--release')
  // The tarball's Cargo.lock pins what was tested; the build must not drift from it.
  if (standalone) build.push('--locked')
  cargo(build, false)

  const metadata = JSON.parse(
    cargo(['metadata', '--format-version', '1', '--no-deps', '--manifest-path', manifest], true),
  )
  const built = path.join(metadata.target_directory, profile, library)
  if (!fs.existsSync(built)) {
    fail(`cargo finished but ${built} is missing`)
  }
  // Copy then rename, so that a process loading nanu.node never sees half a file.
  const target = path.join(pkg, 'nanu.node')
  const partial = `${target}.${process.pid}.partial`
  fs.copyFileSync(built, partial)
  fs.renameSync(partial, target)
}

main()
