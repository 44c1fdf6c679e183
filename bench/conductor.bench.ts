/**
 * Signed zome calls per second against the embedded conductor with the flexstack app
 * (agent_registry), in process (`InProcessAppClient`) and through the app WebSocket with the
 * real `@holochain/client` (signing credentials from `authorizeSigningCredentials`, so every call
 * also goes through a cap-grant check).
 *
 * Each transport gets its own fresh conductor so both start from the same chain length.
 * Write = `heartbeat.beat` (one Update per call, after one `capabilities.advertise`);
 * read = `capabilities.get_capability` of the agent. Sequential and 16 concurrent callers.
 */
import os from 'node:os'
import { AdminWebsocket, AppWebsocket, type AppClient, type CellId } from '@holochain/client'
import { InProcessAppClient } from '../agent/src/conductor/in-process-client.ts'
import type { MachineProfile } from '../agent/src/probe/probe.ts'
import { buildCapability } from '../agent/src/registry/registry-service.ts'
import { createTestConductor, FLEXSTACK_HAPP, TEST_ORIGIN, tempDir, type TestConductor } from '../fixtures/index.ts'
import { measureAsync, type Report } from './util.ts'

const APP_ID = 'flexstack'
const ROLE = 'agent_registry'
const CONCURRENCY = 16
const BUDGET_MS = 2000
const MAX_OPS = 20_000

type Client = Pick<AppClient, 'callZome'>

/** A fresh conductor on its own temp dir with the flexstack app installed and enabled. */
async function flexstackConductor (): Promise<TestConductor> {
  const dir = await tempDir('flexnode-bench-conductor-')
  let t: TestConductor | undefined
  try {
    t = await createTestConductor({ dataDir: dir.path })
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

async function callCases (report: Report, transport: string, client: Client, agent: Uint8Array): Promise<void> {
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
      report.add(await measureAsync({ id, name, group: `conductor ${transport}`, fn: c.fn, concurrency: c.concurrency, warmup: 100, budgetMs: BUDGET_MS, maxOps: MAX_OPS }))
    } catch (err) {
      report.fail(name, err)
    }
  }
}

async function inProcess (report: Report): Promise<void> {
  await using t = await flexstackConductor()
  const client = await InProcessAppClient.connect(t.conductor, APP_ID)
  await callCases(report, 'in-process', client, t.agent)
}

async function websocket (report: Report): Promise<void> {
  await using t = await flexstackConductor()
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
    await callCases(report, 'websocket', app, t.agent)
  } finally {
    await app?.client.close()
    await admin.client.close()
  }
}

export async function run (report: Report): Promise<void> {
  await inProcess(report)
  await websocket(report)
}
