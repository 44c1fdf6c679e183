/**
 * The piscina worker of every `PiscinaPool` (`native/pool.ts`): loads the worker module named in
 * `workerData.module` and runs each task through its `handler`, with progress events and log
 * lines sent back on the task's port. A result that is a buffer is moved back (`Piscina.move`).
 */
import '../../agent/src/polyfill.ts'
import { Piscina } from 'piscina'
import { loadWorkerModule, settle, type PortMessage, type TaskOutcome, type WorkerLog } from './task.ts'
import type { MessagePort } from 'node:worker_threads'

const { module } = Piscina.workerData as { module: string }
const mod = await loadWorkerModule(module)

const isBuffer = (v: unknown): v is ArrayBuffer | ArrayBufferView => v instanceof ArrayBuffer || ArrayBuffer.isView(v)

export default async function run (envelope: { task: unknown, port: MessagePort } | { refill: true }): Promise<TaskOutcome | ReturnType<typeof Piscina.move> | null> {
  // the pool's no-op that only made piscina start this thread
  if ('refill' in envelope) return null
  const { task, port } = envelope
  const post = (m: PortMessage): void => { port.postMessage(m) }
  const log: WorkerLog = (level, msg, fields) => { post({ log: { level, msg, ...(fields !== undefined ? { fields } : {}) } }) }
  // piscina ends an aborted task by terminating this thread: the handler's signal never fires here
  const signal = new AbortController().signal
  try {
    const o = await settle(async () => await mod.handler(task, { signal, progress: (event) => { post({ event }) }, log }), signal)
    // a buffer result is moved back as the whole result (piscina moves only a top-level value)
    if ('ok' in o && isBuffer(o.ok)) return Piscina.move(o.ok)
    return o
  } finally {
    post({ end: true })
    port.close()
  }
}
