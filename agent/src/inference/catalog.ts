/**
 * The model catalogue: the `.gguf` files of the models directories, each checked structurally
 * before any native code touches it (`gguf/inspect.ts`: a bounded reader in a worker thread with a
 * deadline). A file that fails is listed with its `error`, logged with a `warn`, and never loaded.
 * Listings and errors name files relative to their directory, never by absolute path.
 *
 * ```ts
 * const catalog = modelCatalog({ modelsDirs: ['~/.flexnode/models'] })({ logger })
 * await catalog.refresh()
 * const e = catalog.entry('tiny-llama-s1') // ModelNotFoundError, ModelLoadError for a bad file
 * ```
 */
import { readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import { DEMO_METADATA_KEY } from './gguf/constants.ts'
import { InvalidGgufError } from './gguf/errors.ts'
import { GgufInspector } from './gguf/inspect.ts'
import type { GgufStructure } from './gguf/reader.ts'
import { InvalidRequestError, ModelLoadError, ModelNotFoundError, type ModelFileError, type ModelInfo } from './types.ts'

/** A model id: the file name without `.gguf`. */
export const MODEL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export interface CatalogEntry {
  /** the listing without the live figures */
  info: ModelInfo
  /** absolute path: internal only, never in a listing or an error */
  path: string
  mtimeMs: number
  size: number
}

export interface ModelCatalogInit {
  /** directories holding `.gguf` files, searched in order (the first file of an id wins) */
  modelsDirs: string[]
  /** a file's structural check fails after this many ms. @default 30000 */
  inspectDeadlineMs?: number
}

export interface ModelCatalogComponents {
  logger: ComponentLogger
}

export interface ModelCatalog {
  /** re-scan the directories; concurrent callers share one scan; ids for which `keep` holds stay listed when their file is gone */
  refresh: (options?: { keep?: (id: string) => boolean, signal?: AbortSignal }) => Promise<void>
  entries: () => CatalogEntry[]
  /** some models dir holds a `.gguf` file (a directory listing; nothing is inspected) */
  hasModelFiles: () => Promise<boolean>
  has: (id: string) => boolean
  /** the entry of a servable model: InvalidRequestError, ModelNotFoundError, ModelLoadError otherwise */
  entry: (id: string) => CatalogEntry
  /** `message` with the entry's absolute path replaced by its file name */
  redact: (e: CatalogEntry, message: string) => string
  dispose: () => Promise<void>
}

/** The model id, checked: InvalidRequestError for anything else. */
export function checkModelId (id: string): string {
  if (typeof id !== 'string' || !MODEL_ID_RE.test(id)) throw new InvalidRequestError('model must be a model id', { param: 'model' })
  return id
}

/** The listing fields a checked file's metadata gives. */
function describe (s: GgufStructure): Pick<ModelInfo, 'architecture' | 'context_length' | 'embedding_length' | 'demo'> {
  const arch = s.metadata['general.architecture']
  const architecture = typeof arch === 'string' && arch.length > 0 ? arch : 'unknown'
  const num = (v: unknown): number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0
  return {
    architecture,
    context_length: num(s.metadata[`${architecture}.context_length`]),
    embedding_length: num(s.metadata[`${architecture}.embedding_length`]),
    demo: s.metadata[DEMO_METADATA_KEY] === true
  }
}

export function modelCatalog (init: ModelCatalogInit): (components: ModelCatalogComponents) => ModelCatalog {
  return (components) => {
    const log = components.logger.forComponent('flexnode:inference')
    const inspector = new GgufInspector({ deadlineMs: init.inspectDeadlineMs })
    const catalog = new Map<string, CatalogEntry>()
    let scanning: Promise<void> | undefined

    /** Check one file (off the main thread) and describe it; a file that fails is listed with its error. */
    const examine = async (id: string, path: string, size: number): Promise<ModelInfo> => {
      const base: ModelInfo = { id, file: basename(path), size_bytes: size, architecture: 'unknown', context_length: 0, embedding_length: 0, loaded: false, tokens_per_second: null, queue_depth: 0, in_flight: 0, demo: false }
      try {
        return { ...base, ...describe(await inspector.inspect(path)) }
      } catch (err: unknown) {
        const error: ModelFileError = err instanceof InvalidGgufError
          ? { name: err.name, code: err.defect, message: err.message }
          : { name: err instanceof Error ? err.name : 'Error', code: 'io', message: `${base.file}: ${errorMessage(err).split(path).join(base.file)}` }
        log.warn({ file: path, error: error.code, err: error.message }, 'skipping a model file that fails the structural check')
        return { ...base, error }
      }
    }

    /** The `.gguf` files of one directory (none when it cannot be read), sorted. */
    const filesOf = async (dir: string): Promise<string[]> => {
      try {
        return (await readdir(dir)).filter(f => f.endsWith('.gguf')).sort()
      } catch {
        return []
      }
    }

    const scan = async (keep: (id: string) => boolean, signal: AbortSignal | undefined): Promise<void> => {
      const seen = new Set<string>()
      for (const dir of init.modelsDirs) {
        for (const file of await filesOf(dir)) {
          signal?.throwIfAborted()
          const id = basename(file, '.gguf')
          if (!MODEL_ID_RE.test(id) || seen.has(id)) continue
          const path = join(dir, file)
          const st = await stat(path).catch(() => undefined)
          if (st === undefined) continue
          seen.add(id)
          const known = catalog.get(id)
          if (known !== undefined && known.mtimeMs === st.mtimeMs && known.size === st.size && known.path === path) continue
          catalog.set(id, { info: await examine(id, path, st.size), path, mtimeMs: st.mtimeMs, size: st.size })
        }
      }
      for (const id of [...catalog.keys()]) if (!seen.has(id) && !keep(id)) catalog.delete(id)
    }

    return {
      refresh: async (options = {}) => {
        scanning ??= scan(options.keep ?? (() => false), options.signal).finally(() => { scanning = undefined })
        await scanning
      },
      entries: () => [...catalog.values()],
      hasModelFiles: async () => (await Promise.all(init.modelsDirs.map(filesOf))).some(files => files.length > 0),
      has: (id) => catalog.has(id),
      entry: (id) => {
        const e = catalog.get(checkModelId(id))
        if (e === undefined) throw new ModelNotFoundError(`model ${JSON.stringify(id)} is not on this node`, { model: id })
        if (e.info.error !== undefined) throw new ModelLoadError(`${id} cannot be served: ${e.info.error.message}`, { model: id })
        return e
      },
      redact: (e, message) => message.split(e.path).join(e.info.file),
      dispose: async () => { await inspector.dispose() }
    }
  }
}
