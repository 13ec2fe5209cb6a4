// Compiled with `tsc --noEmit --strict` against the installed package's index.d.ts by
// scripts/test-node.sh: the typings must describe the API as the tests and examples use it.

import {
  type AdminContext,
  type ChargeOutcome,
  type Concurrency,
  type ErrorCode,
  type Event,
  type KeyInfo,
  type KeySpec,
  type Remaining,
  type UsageRow,
  type Verdict,
  type VerdictCode,
  type VerifyRequest,
  Vault,
  closeAll,
} from 'nanu'

async function main(): Promise<void> {
  const vault: Vault = await Vault.createAsync('/tmp/typed.vault', {
    passphrase: 'p',
    kdf: { mCostKib: 8, tCost: 1, pCost: 1 },
    durability: 'process',
  })
  const spec: KeySpec = {
    owner: 'acme',
    limits: ['cost=$10/month', { unit: 'requests', amount: 100n, window: 'rolling', every: '1m' }],
    models: ['gpt-4o'],
    expiresAt: new Date(),
    metadata: { team: 'infra' },
  }
  const ctx: AdminContext = { at: Date.now(), actor: 'ops' }
  const { keyId, secret } = vault.mint(spec, ctx)
  const request: VerifyRequest = {
    model: 'gpt-4o',
    ip: '10.0.0.1',
    hold: { cost: 5_000 },
    at: '2025-01-01T00:00:00Z',
  }
  const verdict: Verdict = vault.verify(secret, request)
  const code: VerdictCode = verdict.code
  const status: number = verdict.httpStatus
  const retry: number | null = verdict.retryAfterMs
  const left: number | bigint | null | undefined = verdict.remaining?.cost
  if (verdict.holdId !== null) vault.release(verdict.holdId)
  const outcome: ChargeOutcome = vault.charge(keyId, {
    model: 'gpt-4o',
    inputTokens: 10,
    outputTokens: 2,
    requestId: 'r1',
  })
  const later: ChargeOutcome = await vault.chargeAsync(keyId, { cost: 1n })
  const info: KeyInfo = vault.update(keyId, { models: null, expiresAt: null })
  const remaining: Remaining = vault.remaining(keyId)
  const rows: UsageRow[] = await vault.usageAsync({ groupBy: ['model'], bucket: 'day', tz: 'UTC' })
  const id: number = vault.subscribe((event: Event) => {
    const kind: string = event.kind
    void kind
  })
  vault.unsubscribe(id)
  const rotated = vault.rotate(keyId, { graceMs: 60_000 })
  vault.setOwnerPolicy('acme', ['requests=1000/day'])
  vault.setPrice('gpt-4o', { inputPerMtok: 2_500_000, outputPerMtok: 10_000_000 })
  vault.setPrice('old', null)
  const durability: 'durable' | 'process' | 'relaxed' = vault.durability
  try {
    vault.get('missing')
  } catch (err) {
    const failed = err as Error & { code: ErrorCode }
    void failed.code
  }
  void [code, status, retry, left, outcome, later, info, remaining, rows, rotated, durability]
  vault.close()
  const shared: Vault = await Vault.openAsync('/tmp/typed.vault', {
    passphrase: 'p',
    concurrency: 'shared',
    leaseTimeoutMs: 5_000,
  })
  const concurrency: Concurrency = shared.concurrency
  void concurrency
  shared.close()
  closeAll()
}

void main()
