'use strict'

// The native addon is built from this package's Rust sources when it is installed
// (scripts/install.js); nothing prebuilt is downloaded.
const { join } = require('node:path')

let binding
try {
  binding = require(join(__dirname, 'nanu.node'))
} catch (err) {
  throw new Error(
    `nanu: cannot load the native addon ${join(__dirname, 'nanu.node')} (${err.message}); ` +
      'it is built at install time: reinstall the package with cargo on the PATH',
    { cause: err },
  )
}

// Vaults still open when the process exits are closed, so that what the durability level had
// not yet written (verify counters, `relaxed` charges) is flushed. Only the main thread does
// this: `closeAll` closes every vault of the process, and a worker thread that ends must not
// close the vaults of the others (a worker closes its own vaults itself).
if (require('node:worker_threads').isMainThread) {
  process.once('exit', () => binding.closeAll())
}

module.exports.Vault = binding.Vault
module.exports.closeAll = binding.closeAll
