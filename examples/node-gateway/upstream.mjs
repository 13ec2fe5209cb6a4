// A stand-in LLM upstream: answers POST /v1/chat/completions in the OpenAI shape, with token
// counts replayed from a real trace (ContextTokens -> prompt_tokens, GeneratedTokens ->
// completion_tokens), one row per request, in order, wrapping around. GET /stats answers how
// many completions it served and their token counts, for a test to compare with what a gateway
// charged.
//
//   node upstream.mjs [--trace ../../../shared/data/azure-llm-trace-2023-code.csv] [--port 0]
//
// Listens on 127.0.0.1 only and prints `listening <port>` once ready.

import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const DEFAULT_TRACE = join(
  here,
  '..',
  '..',
  '..',
  'shared',
  'data',
  'azure-llm-trace-2023-code.csv',
)

/** The trace's rows as `{ inputTokens, outputTokens }`. */
export function readTrace(path) {
  const [header, ...lines] = readFileSync(path, 'utf8').trim().split('\n')
  const columns = header.trim().split(',')
  const context = columns.indexOf('ContextTokens')
  const generated = columns.indexOf('GeneratedTokens')
  if (context < 0 || generated < 0) throw new Error(`${path}: no ContextTokens/GeneratedTokens`)
  return lines.map((line, i) => {
    const cells = line.trim().split(',')
    const inputTokens = Number(cells[context])
    const outputTokens = Number(cells[generated])
    if (!Number.isSafeInteger(inputTokens) || !Number.isSafeInteger(outputTokens)) {
      throw new Error(`${path}: line ${i + 2} has no whole token counts`)
    }
    return { inputTokens, outputTokens }
  })
}

/** An HTTP server answering with the trace's token counts. */
export function createUpstream(trace) {
  let next = 0
  const served = { completions: 0, promptTokens: 0, completionTokens: 0 }
  return createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/stats') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(served))
        return
      }
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: 'not found' } }))
        return
      }
      let body
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: 'the body is not JSON' } }))
        return
      }
      const row = trace[next % trace.length]
      next += 1
      served.completions += 1
      served.promptTokens += row.inputTokens
      served.completionTokens += row.outputTokens
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          id: `chatcmpl-${next}`,
          object: 'chat.completion',
          model: body.model,
          choices: [
            { index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' },
          ],
          usage: {
            prompt_tokens: row.inputTokens,
            completion_tokens: row.outputTokens,
            total_tokens: row.inputTokens + row.outputTokens,
          },
        }),
      )
    })
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      trace: { type: 'string', default: DEFAULT_TRACE },
      port: { type: 'string', default: '0' },
    },
  })
  const server = createUpstream(readTrace(values.trace))
  server.listen(Number(values.port), '127.0.0.1', () => {
    console.log(`listening ${server.address().port}`)
  })
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
}
