/**
 * A worker thread that checks the structure of `.gguf` files (`readGgufStructure`: bounded
 * counts and lengths, tensor data inside the file), one request at a time: it takes
 * `{ id, path, options }` and answers `{ id, ok: GgufStructure }` or `{ id, err: { defect, detail } }`.
 * The parent (`agent/src/inference/gguf/inspect.ts`) gives it a heap limit and a deadline per
 * file, and terminates it past the deadline: no native code runs here, so that is always safe.
 */
import { parentPort } from 'node:worker_threads'
import { readGgufStructure, type GgufReadOptions } from '../../agent/src/inference/gguf/reader.ts'

export interface InspectRequest { id: number, path: string, options: GgufReadOptions }

parentPort!.on('message', (req: InspectRequest) => {
  readGgufStructure(req.path, req.options).then((ok) => {
    parentPort!.postMessage({ id: req.id, ok })
  }, (err: unknown) => {
    const e = err as { defect?: unknown, detail?: unknown, message?: unknown }
    const detail = typeof e.detail === 'string' ? e.detail : `cannot be read: ${String(e.message ?? err)}`
    parentPort!.postMessage({ id: req.id, err: { defect: typeof e.defect === 'string' ? e.defect : 'io', detail } })
  })
})
