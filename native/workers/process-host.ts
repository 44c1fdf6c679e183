/**
 * The child process of a `ProcessPool` (`native/pool.ts`): loads the worker module named on its
 * command line and runs tasks through its `handler`, several at once. IPC (advanced
 * serialization), pool → here: `{id, task}`, `{id, abort: true}` (that task's signal aborts),
 * `{id, dispose: true}` (run the module's `dispose`); here → pool: `{id, event}`, `{id, outcome}`
 * and `{log}`. The process exits when the pool disconnects.
 */
import '../../agent/src/polyfill.ts'
import { loadWorkerModule, settle, type HostReply, type HostRequest, type WorkerLog } from './task.ts'

const send = (m: HostReply): void => { if (process.connected) process.send!(m) }
const log: WorkerLog = (level, msg, fields) => { send({ log: { level, msg, ...(fields !== undefined ? { fields } : {}) } }) }
// listening before the module is loaded: a task sent right after the fork waits, it is not lost
const loading = loadWorkerModule(process.argv[2] ?? '')
const running = new Map<number, AbortController>()

process.on('message', (m: HostRequest) => {
  if ('abort' in m) {
    running.get(m.id)?.abort()
    return
  }
  const ac = new AbortController()
  const work = 'dispose' in m
    ? async () => { await (await loading).dispose?.(); return null }
    : async () => await (await loading).handler(m.task, { signal: ac.signal, progress: (event) => { send({ id: m.id, event }) }, log })
  running.set(m.id, ac)
  void settle(work, ac.signal).then((outcome) => {
    running.delete(m.id)
    send({ id: m.id, outcome })
  })
})
// the node is gone (or let this process go): nothing is left to serve
process.on('disconnect', () => { process.exit(0) })
// Ctrl-C in a terminal and a SIGTERM to the node's process group reach this process too: the
// node disposes its pools in order as it stops, and this process follows its IPC channel
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {})
