/**
 * The zome worker: runs every zome of one conductor in QuickJS (`agent/src/conductor/sandbox/
 * engine.ts`), off the node's main thread, so a zome that stalls inside a QuickJS built-in can be
 * stopped by terminating this thread. The conductor side is `agent/src/conductor/sandbox/host.ts`.
 *
 * Coordinator calls are messages; the HDK functions they await go back to the conductor as
 * messages too, except the pure ones (time, randomness, anchor hashes, entry decoding, hash
 * strings, signature checks), answered here. Validation arrives as a message while the conductor
 * blocks on the shared `SyncChannel`: its look-ups and its verdict travel through that channel.
 */
import '../../agent/src/polyfill.ts'
import { parentPort, workerData } from 'node:worker_threads'
import type { HostApi, SandboxedZome, SandboxRuntime } from '../../agent/src/conductor/sandbox/engine.ts'
import { QuickJsEngine, type EngineLimits } from '../../agent/src/conductor/sandbox/engine.ts'
import { toWireError, ZomeSandboxError } from '../../agent/src/conductor/sandbox/errors.ts'
import { SYNC_ASK, SYNC_DONE, SyncChannel, type DnaStatic, type ExportsInfo, type FromWorker, type ToWorker, type WireError } from '../../agent/src/conductor/sandbox/protocol.ts'
import { decode } from '../../agent/src/conductor/codec.ts'
import { entryOf, hdkDecodeHash, hdkEncodeHash, hdkRandomBytes, hdkVerifySignature, pathEntryHash, sysTime } from '../../agent/src/conductor/hdk-local.ts'
import type { ComponentLogger } from '../../agent/src/logger.ts'

interface WorkerData { limits: EngineLimits, channel: SharedArrayBuffer }

/** HDK functions the conductor answers (they read or write the call's workspace). */
const REMOTE_HDK = ['create_entry', 'update_entry', 'delete_entry', 'create_link', 'delete_link', 'get', 'get_details', 'get_latest', 'get_links', 'query', 'agent_info', 'sign', 'create_cap_grant'] as const

/** What the worker knows of a running call: its `agent_info`, kept current by the conductor. */
interface CallState { agent: unknown }
/** Validation-context functions the conductor answers (they read its store). */
const REMOTE_CTX = ['must_get_action', 'must_get_entry', 'must_get_valid_record'] as const

/** A host error passed into a zome; its id lets the conductor recognise it when it comes back. */
class HostError extends Error {
  readonly hostError: number

  constructor (w: WireError) {
    super(w.message)
    this.name = w.name
    this.hostError = w.hostError ?? 0
  }
}

function wireOf (err: unknown): WireError {
  return toWireError(err, err instanceof HostError ? err.hostError : undefined)
}

const port = parentPort
if (port === null) throw new Error('zome-worker must run in a worker thread')
const { limits, channel: sab } = workerData as WorkerData
const channel = new SyncChannel(sab)
const post = (m: FromWorker): void => { port.postMessage(m) }

function forwardingLogger (fields: Record<string, unknown> = {}): ComponentLogger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (objOrMsg: unknown, msg?: string): void => {
    const obj = typeof objOrMsg === 'object' && objOrMsg !== null ? objOrMsg as Record<string, unknown> : {}
    const message = typeof objOrMsg === 'string' ? objOrMsg : msg ?? ''
    post({ type: 'log', level, fields: { ...fields, ...obj }, message })
  }
  return {
    trace: (() => {}) as never,
    debug: at('debug') as never,
    info: at('info') as never,
    warn: at('warn') as never,
    error: at('error') as never,
    forComponent: (name: string) => forwardingLogger({ ...fields, component: name })
  }
}

const engine = await QuickJsEngine.create(limits, { logger: forwardingLogger() })
engine.onBusy = (since, tag) => { channel.setBusy(since, tag) }

interface LoadedDna { runtime: SandboxRuntime, zomes: Map<string, SandboxedZome>, info: DnaStatic }
const dnas = new Map<string, LoadedDna>()
const pendingHdk = new Map<number, { call: number, resolve: (v: unknown) => void, reject: (e: unknown) => void }>()
const states = new Map<number, CallState>()
const calls = new Map<number, AbortController>()
let nextHdk = 1

function dnaOf (key: string): LoadedDna {
  const d = dnas.get(key)
  if (d === undefined) throw new ZomeSandboxError('load', '', `DNA ${key} is not loaded in the zome worker`)
  return d
}

function zomeOf (key: string, zome: string): SandboxedZome {
  const z = dnaOf(key).zomes.get(zome)
  if (z === undefined) throw new ZomeSandboxError('load', zome, `DNA ${key} has no zome ${zome}`)
  return z
}

/** The HDK of one coordinator call: the conductor answers what touches the workspace. */
function hdkFor (call: number, info: DnaStatic, state: CallState): HostApi {
  const api: Record<string, (...args: never[]) => unknown> = {}
  for (const name of REMOTE_HDK) {
    api[name] = async (...args: unknown[]) => await new Promise((resolve, reject) => {
      const id = nextHdk++
      pendingHdk.set(id, { call, resolve, reject })
      post({ type: 'hdk', id, call, name, args })
    })
  }
  const remoteAgentInfo = api.agent_info!
  return {
    ...api,
    agent_info: async () => state.agent !== undefined ? state.agent : await remoteAgentInfo(),
    dna_info: () => info,
    emit_signal: (payload: unknown) => { post({ type: 'signal', call, payload }) },
    sys_time: sysTime,
    random_bytes: hdkRandomBytes,
    verify_signature: async (key: never, signature: never, data: unknown) => hdkVerifySignature(key, signature, data),
    path_entry_hash: pathEntryHash,
    entry_of: entryOf as (record: never) => unknown,
    encode_hash: hdkEncodeHash,
    decode_hash: hdkDecodeHash
  }
}

/**
 * The validation context: look-ups are questions to the blocked conductor over the channel, except
 * for the actions the conductor sent along (`known`, by action hash).
 */
function ctxFor (info: DnaStatic, known: unknown[]): HostApi {
  const byHash = new Map<string, unknown>()
  for (const k of known) {
    const hash = (k as { hashed?: { hash?: unknown } } | null)?.hashed?.hash
    if (hash instanceof Uint8Array) byHash.set(Buffer.from(hash).toString('base64'), k)
  }
  const ask = (name: string, args: unknown[]): unknown => {
    channel.put(SYNC_ASK, { name, args })
    while (channel.state() === SYNC_ASK) channel.waitChange(SYNC_ASK, 60_000)
    const answer = channel.take() as { ok: boolean, value?: unknown, error?: WireError }
    if (!answer.ok) throw new HostError(answer.error ?? { name: 'Error', message: 'look-up failed' })
    return answer.value
  }
  const api: Record<string, (...args: never[]) => unknown> = {}
  for (const name of REMOTE_CTX) api[name] = (...args: unknown[]) => ask(name, args)
  const remoteAction = api.must_get_action!
  api.must_get_action = (...args: unknown[]) => {
    const hash = args[0]
    const hit = hash instanceof Uint8Array ? byHash.get(Buffer.from(hash).toString('base64')) : undefined
    return hit !== undefined ? hit : remoteAction(...(args as never[]))
  }
  return {
    ...api,
    decode: (entry: { entry_type?: unknown, entry?: unknown }) => entry.entry_type === 'App' && entry.entry instanceof Uint8Array ? decode(entry.entry) : entry.entry,
    dna_info: () => info,
    encode_hash: hdkEncodeHash,
    decode_hash: hdkDecodeHash
  }
}

function load (m: Extract<ToWorker, { type: 'load' }>): void {
  dnas.get(m.dna)?.runtime.dispose()
  dnas.delete(m.dna)
  const runtime = engine.newRuntime(m.label)
  const zomes = new Map<string, SandboxedZome>()
  const exports: Record<string, ExportsInfo> = {}
  try {
    for (const z of m.zomes) {
      const zome = runtime.load(z.name, z.code)
      zomes.set(z.name, zome)
      Object.defineProperty(exports, z.name, { value: { functions: zome.functions, values: zome.values }, enumerable: true })
    }
  } catch (err) {
    runtime.dispose()
    post({ type: 'loaded', id: m.id, ok: false, error: wireOf(err) })
    return
  }
  dnas.set(m.dna, { runtime, zomes, info: m.info })
  post({ type: 'loaded', id: m.id, ok: true, zomes: exports })
}

async function call (m: Extract<ToWorker, { type: 'call' }>): Promise<void> {
  const controller = new AbortController()
  calls.set(m.id, controller)
  const state: CallState = { agent: m.agent ?? undefined }
  states.set(m.id, state)
  try {
    const zome = zomeOf(m.dna, m.zome)
    const value = await zome.call(m.fn, hdkFor(m.id, dnaOf(m.dna).info, state), m.payload, { signal: controller.signal, tag: m.id })
    post({ type: 'result', id: m.id, ok: true, value })
  } catch (err) {
    post({ type: 'result', id: m.id, ok: false, error: wireOf(err) })
  } finally {
    calls.delete(m.id)
    states.delete(m.id)
    for (const [id, p] of pendingHdk) if (p.call === m.id) pendingHdk.delete(id)
  }
}

function validate (m: Extract<ToWorker, { type: 'validate' }>): void {
  let verdict: { ok: boolean, value?: unknown, error?: WireError }
  try {
    const value = zomeOf(m.dna, m.zome).validate(m.base as Record<string, unknown>, m.types, ctxFor(dnaOf(m.dna).info, m.known ?? []), m.id)
    verdict = { ok: true, value }
  } catch (err) {
    verdict = { ok: false, error: wireOf(err) }
  }
  try {
    channel.put(SYNC_DONE, verdict)
  } catch (err) {
    channel.put(SYNC_DONE, { ok: false, error: wireOf(err) })
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'load': load(m); break
    case 'unload':
      dnas.get(m.dna)?.runtime.dispose()
      dnas.delete(m.dna)
      break
    case 'call': void call(m); break
    case 'abandon': calls.get(m.id)?.abort(new ZomeSandboxError('closed', '', 'the call was abandoned by the conductor')); break
    case 'hdk-result': {
      const p = pendingHdk.get(m.id)
      pendingHdk.delete(m.id)
      if (p === undefined) break
      const state = states.get(p.call)
      if (state !== undefined && m.agent !== undefined) state.agent = m.agent
      if (m.ok) p.resolve(m.value)
      else p.reject(new HostError(m.value as WireError))
      break
    }
    case 'validate': validate(m); break
  }
})
