// Renders index.d.ts from the type definitions napi-derive writes while compiling the crate
// (into $NAPI_TYPE_DEF_TMP_FOLDER), with inputs.d.ts as the header, using @napi-rs/cli's
// renderer (resolved from the current directory).
//
//   NAPI_TYPE_DEF_TMP_FOLDER=/tmp/typedefs cargo build -p nanu-node
//   node node/scripts/dts.mjs /tmp/typedefs --write    # regenerate node/index.d.ts
//   node node/scripts/dts.mjs /tmp/typedefs --check    # fail when it differs

import { readFile, readdir, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const node = join(dirname(fileURLToPath(import.meta.url)), '..')
const [typeDefDir, mode] = process.argv.slice(2)
if (!typeDefDir || !['--write', '--check'].includes(mode)) {
  console.error('usage: node scripts/dts.mjs <type-def-dir> --write|--check')
  process.exit(2)
}

const entries = await readdir(typeDefDir).catch(() => [])
if (entries.length === 0) {
  console.error(
    `dts: ${typeDefDir} holds no type definitions (was the crate compiled with ` +
      'NAPI_TYPE_DEF_TMP_FOLDER set?)',
  )
  process.exit(1)
}

const require = createRequire(join(process.cwd(), 'package.json'))
const cli = await import(pathToFileURL(require.resolve('@napi-rs/cli')).href)
const config = JSON.parse(await readFile(join(node, 'package.json'), 'utf8')).napi
const { dts } = await cli.generateTypeDef({
  typeDefDir,
  cwd: node,
  configDtsHeaderFile: config.dtsHeaderFile,
  constEnum: false,
})

const target = join(node, 'index.d.ts')
if (mode === '--write') {
  await writeFile(target, dts)
  console.log(`dts: wrote ${target}`)
} else {
  const committed = await readFile(target, 'utf8')
  if (committed !== dts) {
    const a = committed.split('\n')
    const b = dts.split('\n')
    const line = a.findIndex((l, i) => l !== b[i])
    console.error(`dts: node/index.d.ts differs from the build, first at line ${line + 1}:`)
    console.error(`  committed: ${JSON.stringify(a[line])}`)
    console.error(`  generated: ${JSON.stringify(b[line])}`)
    console.error('regenerate it with node/scripts/dts.mjs --write (see node/README.md)')
    process.exit(1)
  }
  console.log('dts: node/index.d.ts matches the build')
}
