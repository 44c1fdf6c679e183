/**
 * Signed zome calls per second against the embedded conductor with the flexstack app
 * (agent_registry), in process (`InProcessAppClient`) and through the app WebSocket with the
 * real `@holochain/client` (signing credentials from `authorizeSigningCredentials`, so every call
 * also goes through a cap-grant check).
 *
 * Each transport gets its own fresh conductor so both start from the same chain length.
 * Write = `heartbeat.beat` (one Update per call, after one `capabilities.advertise`);
 * read = `capabilities.get_capability` of the agent. Sequential and 16 concurrent callers.
 *
 * The goals (issue 9) are ratios measured in this run: each sandboxed rate against raw ed25519
 * sign+verify (measured right before and right after the zome calls, their mean; writes ≥ 0.5,
 * reads ≥ 0.8), and each WebSocket rate against the same case in process (≥ 0.7). Each ratio is
 * also given by CPU time per operation, which other load on a shared machine disturbs far less than
 * wall-clock rates (with WebSocket, the client's own signing and framing run in this process too).
 *
 * Every case also runs with zomes imported straight into the node's realm (`DirectZomeRuntime`, the
 * runtime before the sandbox), so the sandbox's own cost is a ratio measured in the same run too.
 */
import os from 'node:os'
import { AdminWebsocket, AppWebsocket, type AppClient, type CellId } from '@holochain/client'
import { InProcessAppClient } from '../agent/src/conductor/in-process-client.ts'
import type { MachineProfile } from '../agent/src/probe/probe.ts'
import { buildCapability } from '../agent/src/registry/registry-service.ts'
import { createTestConductor, FLEXSTACK_HAPP, TEST_ORIGIN, tempDir, type TestConductor } from '../fixtures/index.ts'
import type { ZomeRuntime } from '../agent/src/conductor/dna.ts'
import { measureSignVerify } from './baseline.bench.ts'
import { DirectZomeRuntime } from './direct-zome-runtime.ts'
import { BENCH_SCALE, measureAsync, type BenchResult, type Report } from './util.ts'

const APP_ID = 'flexstack'
const ROLE = 'agent_registry'
const CONCURRENCY = 16
const BUDGET_MS = 2000
const MAX_OPS = 20_000
/** write+read pairs run untimed before anything is measured (see warmUp) */
const WARM_UP_CALLS = 1000
/** Goals of issue 9 for the zome-call path, as ratios measured in this run. */
const GOAL_WRITE_VS_SIGN = 0.5
const GOAL_READ_VS_SIGN = 0.8
const GOAL_WS_VS_IN_PROCESS = 0.7

type Client = Pick<AppClient, 'callZome'>

/** A fresh conductor on its own temp dir with the flexstack app installed and enabled. */
async function flexstackConductor (zomeRuntime?: ZomeRuntime): Promise<TestConductor> {
  const dir = await tempDir('flexnode-bench-conductor-')
  let t: TestConductor | undefined
  try {
    t = await createTestConductor({ dataDir: dir.path, zomeRuntime })
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: APP_ID, network_seed: 'flexnode-bench' })
    await t.conductor.enableApp({ installed_app_id: APP_ID })
  } catch (err) {
    await t?.stop()
    await dir[Symbol.asyncDispose]()
    throw err
  }
  const stop = t.stop
  return { ...t, [Symbol.asyncDispose]: async () => { await stop(); await dir[Symbol.asyncDispose]() } }
}

function machine (): MachineProfile {
  return {
    cpu_cores: os.availableParallelism(),
    cpu_arch: 'x86_64',
    ram_gb: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    gpu: null,
    local_ssd_gb: 100,
    hostname: 'bench',
    platform: process.platform
  }
}

async function callCases (report: Report, transport: string, client: Client, agent: Uint8Array): Promise<BenchResult[]> {
  const results: BenchResult[] = []
  const call = async (zome: string, fn: string, payload: unknown): Promise<unknown> =>
    await client.callZome({ role_name: ROLE, zome_name: zome, fn_name: fn, payload })
  await call('capabilities', 'advertise', buildCapability(agent, 'bench-node', machine(), { cpu_percent: 1, gpu_percent: 0, memory_percent: 1 }, {}))
  const beat = async (i: number): Promise<unknown> => await call('heartbeat', 'beat', { cpu_percent: i % 100, gpu_percent: 0, memory_percent: (i * 7) % 100 })
  const read = async (): Promise<unknown> => {
    const cap = await call('capabilities', 'get_capability', agent)
    if (cap === null) throw new Error('get_capability returned null after advertise')
    return cap
  }
  const cases: Array<{ kind: string, fn: (i: number) => Promise<unknown>, concurrency: number }> = [
    { kind: 'write heartbeat.beat', fn: beat, concurrency: 1 },
    { kind: 'write heartbeat.beat', fn: beat, concurrency: CONCURRENCY },
    { kind: 'read get_capability', fn: read, concurrency: 1 },
    { kind: 'read get_capability', fn: read, concurrency: CONCURRENCY }
  ]
  for (const c of cases) {
    const name = `${transport} ${c.kind} x${c.concurrency}`
    const id = `conductor.${transport}.${c.kind.split(' ')[0]!}.c${c.concurrency}`
    try {
      const r = await measureAsync({ id, name, group: `conductor ${transport}`, fn: c.fn, concurrency: c.concurrency, warmup: 100, budgetMs: BUDGET_MS, maxOps: MAX_OPS })
      report.add(r)
      results.push(r)
    } catch (err) {
      report.fail(name, err)
    }
  }
  return results
}

/**
 * Untimed writes and reads on a throwaway conductor first: V8 compiles the zome engine's
 * WebAssembly lazily and tiers its hot functions up over the first thousand or so calls (the first
 * hundred heartbeats here cost 2-4x the later ones), and the compiled module is shared by every
 * sandbox of this process, so no case is measured on half-compiled code.
 */
async function warmUp (): Promise<void> {
  await using t = await flexstackConductor()
  const client = await InProcessAppClient.connect(t.conductor, APP_ID)
  const call = async (zome: string, fn: string, payload: unknown): Promise<unknown> =>
    await client.callZome({ role_name: ROLE, zome_name: zome, fn_name: fn, payload })
  await call('capabilities', 'advertise', buildCapability(t.agent, 'bench-node', machine(), { cpu_percent: 1, gpu_percent: 0, memory_percent: 1 }, {}))
  for (let i = 0; i < Math.max(10, Math.round(WARM_UP_CALLS * BENCH_SCALE)); i++) {
    await call('heartbeat', 'beat', { cpu_percent: i % 100, gpu_percent: 0, memory_percent: 1 })
    await call('capabilities', 'get_capability', t.agent)
  }
}

async function inProcess (report: Report, transport: string, zomeRuntime?: ZomeRuntime): Promise<BenchResult[]> {
  await using t = await flexstackConductor(zomeRuntime)
  const client = await InProcessAppClient.connect(t.conductor, APP_ID)
  return await callCases(report, transport, client, t.agent)
}

async function websocket (report: Report, transport: string, zomeRuntime?: ZomeRuntime): Promise<BenchResult[]> {
  await using t = await flexstackConductor(zomeRuntime)
  const { port: adminPort } = await t.conductor.startAdminInterface({ port: 0, allowedOrigins: TEST_ORIGIN })
  const wsClientOptions = { origin: TEST_ORIGIN }
  const admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${adminPort}`), wsClientOptions })
  let app: AppWebsocket | undefined
  try {
    const { port } = await admin.attachAppInterface({ allowed_origins: TEST_ORIGIN, installed_app_id: APP_ID })
    const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: APP_ID })
    app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), token, wsClientOptions })
    const cell = (await app.appInfo())?.cell_info[ROLE]?.[0]
    if (cell?.type !== 'provisioned') throw new Error(`app ${APP_ID} has no provisioned ${ROLE} cell`)
    const cellId: CellId = cell.value.cell_id
    await admin.authorizeSigningCredentials(cellId)
    return await callCases(report, transport, app, t.agent)
  } finally {
    await app?.client.close()
    await admin.client.close()
  }
}

/** Each sandboxed figure as a ratio to the same case without the sandbox. */
function compare (report: Report, sandboxed: BenchResult[], direct: BenchResult[]): void {
  for (const r of sandboxed) {
    const d = direct.find(x => x.name.replace(' unsandboxed', '') === r.name)
    if (d !== undefined) report.note(`zome sandbox cost: ${r.name}: ${ratio(r.opsPerSec, d.opsPerSec)} of the unsandboxed rate (${fmt(r.opsPerSec)} vs ${fmt(d.opsPerSec)} calls/s)`)
  }
}

const fmt = (n: number): string => n.toFixed(0)
const ratio = (a: number, b: number): string => (a / b).toFixed(3)

const us = (ms: number | undefined): string => ms === undefined ? '-' : `${(ms * 1000).toFixed(0)} us`
/** a rate from CPU time per op: what the rate would be with a whole core and nothing else running */
const cpuRate = (r: BenchResult): number => r.cpuMsPerOp === undefined ? Number.NaN : 1000 / r.cpuMsPerOp

/**
 * The goals: each rate against sign+verify, and WebSocket against in process; each also as CPU
 * time per call (the process's, whatever else the machine runs), which a shared machine disturbs far less.
 */
function goals (report: Report, signVerify: BenchResult[], inProcess: BenchResult[], ws: BenchResult[]): void {
  const svRate = signVerify.reduce((a, r) => a + r.opsPerSec, 0) / signVerify.length
  const svCpu = signVerify.reduce((a, r) => a + cpuRate(r), 0) / signVerify.length
  for (const r of [...inProcess, ...ws]) {
    const goal = r.name.includes(' write ') ? GOAL_WRITE_VS_SIGN : GOAL_READ_VS_SIGN
    report.note(`zome call ÷ sign+verify: ${r.name}: ${ratio(r.opsPerSec, svRate)} (${fmt(r.opsPerSec)} calls/s ÷ ${fmt(svRate)}/s; goal ≥ ${goal.toFixed(2)}); ` +
      `by CPU time ${ratio(cpuRate(r), svCpu)} (${us(r.cpuMsPerOp)} per call, ${us(1000 / svCpu)} per sign+verify)`)
  }
  for (const w of ws) {
    const p = inProcess.find(x => x.name === w.name.replace('websocket', 'in-process'))
    if (p !== undefined) {
      report.note(`websocket ÷ in-process: ${w.name.replace('websocket ', '')}: ${ratio(w.opsPerSec, p.opsPerSec)} (${fmt(w.opsPerSec)} vs ${fmt(p.opsPerSec)} calls/s; goal ≥ ${GOAL_WS_VS_IN_PROCESS.toFixed(2)}); ` +
        `by CPU time ${ratio(cpuRate(w), cpuRate(p))} (client and conductor in this one process)`)
    }
  }
}

export async function run (report: Report): Promise<void> {
  const signVerify = (when: string): BenchResult => {
    const r = measureSignVerify({ id: `conductor.ed25519.${when}`, name: `ed25519 sign+verify (${when} the zome calls)`, group: 'conductor', budgetMs: 1000 })
    report.add(r)
    return r
  }
  await warmUp()
  const before = signVerify('before')
  const direct = await DirectZomeRuntime.create()
  try {
    const inProc = await inProcess(report, 'in-process')
    const ws = await websocket(report, 'websocket')
    const after = signVerify('after')
    goals(report, [before, after], inProc, ws)
    compare(report, inProc, await inProcess(report, 'in-process unsandboxed', direct))
    compare(report, ws, await websocket(report, 'websocket unsandboxed', direct))
  } finally {
    direct.dispose()
  }
}
