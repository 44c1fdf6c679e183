/**
 * `flexnode memory create | insert | search | info | list | delete`: the mesh's vector memory
 * through the HTTP API of the node running on a data dir (`/v1/memory/collections`, see
 * `memory/routes.ts`), like `resources.ts`.
 *
 * ```
 * flexnode memory create docs --dimensions 384 --embedding-model all-minilm
 * flexnode memory insert docs --file points.jsonl          # {"id":"a","vector":[…],"metadata":{…}} per line
 * flexnode memory search docs --text 'how do leases end' -k 5 --filter '{"lang":"en"}'
 * flexnode memory info docs                                # epoch, count, every shard's replicas
 * ```
 * The points of `insert` are checked whole before the first batch goes, with the capability's own
 * checks (`memory/validate.ts`: ids, vectors against the collection's dimensions, metadata): a bad
 * point exits 1 naming its line (`InvalidVectorError`) and nothing is written.
 * A node that is not running exits 1 with `no flexnode is running on <dir>`; an error of the
 * node exits 1 with one line naming it (`flexnode: UnknownCollectionError: …`).
 */
import type { NodeApiOptions } from '../config.ts'
import { UsageError } from '../config.ts'
import { InvalidInputError } from '../errors.ts'
import { InvalidVectorError, type Collection, type CollectionConfig, type CollectionInfo, type Distance, type PointInput, type SearchQuery, type SearchResult, type WriteConsistency, type WriteResult } from '../memory/types.ts'
import { MAX_BATCH, validateId, validateMetadata, validateVector } from '../memory/validate.ts'
import { NodeApi, printJson } from './inference.ts'
import { readBounded } from './resources.ts'
import { readRuntimeInfo, renderTable, shortId } from './runtime.ts'

/** The largest points file (or stdin) `insert` reads: larger sets go in several files. */
export const MAX_POINTS_BYTES = 256 * 1_048_576

/** `flexnode memory <action>`: what each action was given, checked (`memory-command.ts`). */
export type MemoryOptions = NodeApiOptions & (
  | { action: 'create', config: CollectionConfig & { distance: Distance } }
  /** `file` resolved; undefined: the points come from stdin */
  | { action: 'insert', collection: string, file?: string, writeConsistency?: WriteConsistency }
  | { action: 'search', collection: string, query: SearchQuery & { vector?: number[] } }
  | { action: 'info', collection: string }
  | { action: 'delete', collection: string }
  | { action: 'list' }
)

type Options<A extends MemoryOptions['action']> = Extract<MemoryOptions, { action: A }>

const writeOut = (text: string): void => { process.stdout.write(text) }
const collectionPath = (name: string): string => `/v1/memory/collections/${encodeURIComponent(name)}`

// ---------------------------------------------------------------------------------------------
// points

const POINT_FIELDS = ['id', 'vector', 'text', 'metadata']

/**
 * One point as read, checked for its shape with the memory capability's own checks (a vector's
 * dimensions are checked against the collection later): a bad one is `InvalidVectorError`, as
 * the node would answer, naming where it is (`points.jsonl line 3: vector[1]: …`).
 */
function checkPoint (value: unknown, where: string): PointInput {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidVectorError(where, 'a point must be a JSON object {"id", "vector" | "text", "metadata"?}')
  const p = value as Record<string, unknown>
  const unknown = Object.keys(p).find(k => !POINT_FIELDS.includes(k))
  if (unknown !== undefined) throw new InvalidVectorError(where, `${JSON.stringify(unknown)} is not a field of a point (known: ${POINT_FIELDS.join(', ')})`)
  const point: PointInput = { id: validateId(p.id, `${where}: id`) }
  if ((p.vector === undefined) === (p.text === undefined)) throw new InvalidVectorError(where, p.vector === undefined ? 'a point needs a vector or a text' : 'give a vector or a text, not both')
  if (p.vector !== undefined) {
    if (!Array.isArray(p.vector) || p.vector.length === 0) throw new InvalidVectorError(`${where}: vector`, 'must be a non-empty array of numbers')
    validateVector(p.vector, p.vector.length, `${where}: vector`)
    point.vector = p.vector as number[]
  } else {
    if (typeof p.text !== 'string' || p.text.trim() === '') throw new InvalidVectorError(`${where}: text`, 'must be a non-empty string')
    point.text = p.text
  }
  if (p.metadata !== undefined) point.metadata = validateMetadata(p.metadata, `${where}: metadata`)
  return point
}

/** Points read, each with where it was (`points.jsonl line 3`, `stdin [2]`). */
export interface ParsedPoints { points: PointInput[], where: string[] }

/**
 * The points of a file or stdin: JSON lines (blank lines skipped) or one JSON array, told apart by
 * the first character. Every point is checked for its shape, and ids must be unique.
 */
export function parsePoints (text: string, source: string): ParsedPoints {
  const seen = new Map<string, string>()
  const out: PointInput[] = []
  const where: string[] = []
  const add = (value: unknown, at: string): void => {
    const point = checkPoint(value, at)
    const first = seen.get(point.id)
    if (first !== undefined) throw new InvalidVectorError(`${at}: id`, `${JSON.stringify(point.id)} is given twice (first at ${first})`)
    seen.set(point.id, at)
    out.push(point)
    where.push(at)
  }
  const body = text.replace(/^\uFEFF/, '')
  if (body.trimStart().startsWith('[')) {
    let all: unknown
    try {
      all = JSON.parse(body)
    } catch (err) {
      throw new InvalidInputError(`${source} is not a JSON array of points: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (!Array.isArray(all)) throw new InvalidInputError(`${source} is not a JSON array of points`)
    all.forEach((value, i) => { add(value, `${source} [${i}]`) })
  } else {
    const lines = body.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim()
      if (line === '') continue
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch (err) {
        throw new InvalidInputError(`${source} line ${i + 1} is not JSON: ${err instanceof Error ? err.message : String(err)}`, { field: `${source} line ${i + 1}` })
      }
      add(value, `${source} line ${i + 1}`)
    }
  }
  if (out.length === 0) throw new InvalidInputError(`${source} holds no points`)
  return { points: out, where }
}

/** Every point against the collection: its vector's dimensions, its text against an embedding model. */
export function checkAgainstCollection ({ points, where }: ParsedPoints, c: Collection): void {
  points.forEach((p, i) => {
    const problem = p.vector !== undefined
      ? p.vector.length === c.dimensions ? undefined : `vector has ${p.vector.length} numbers; collection ${JSON.stringify(c.name)} has ${c.dimensions} dimensions`
      : c.embedding_model === undefined ? `collection ${JSON.stringify(c.name)} has no embedding model: give vectors, not text` : undefined
    if (problem !== undefined) throw new InvalidVectorError(where[i]!, problem)
  })
}

/** Consecutive slices of at most `size`. */
export function batchesOf<T> (items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size))
  return out
}

async function readStdin (): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('memory insert reads the points from --file <file> or from stdin; stdin is a terminal', '--file')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_POINTS_BYTES) throw new InvalidInputError(`stdin holds more than ${MAX_POINTS_BYTES} bytes of points; insert them in several parts`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

// ---------------------------------------------------------------------------------------------
// rendering

const fieldLines = (rows: Array<[string, string]>): string => {
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join('')
}

function collectionRows (c: Collection): Array<[string, string]> {
  return [
    ['collection', c.name],
    ['dimensions', String(c.dimensions)],
    ['distance', c.distance],
    ['shards', `${c.shard_count}, ${c.replication_factor} cop${c.replication_factor === 1 ? 'y' : 'ies'} of each`],
    ['embedding_model', c.embedding_model ?? '- (vectors only)'],
    ['created_at', new Date(c.created_at).toISOString()]
  ]
}

export function renderCollection (c: Collection): string {
  return fieldLines(collectionRows(c))
}

export function renderCollections (list: Collection[]): string {
  if (list.length === 0) return 'no collections\n'
  return renderTable(['NAME', 'DIMENSIONS', 'DISTANCE', 'SHARDS', 'REPLICATION', 'EMBEDDING MODEL'],
    list.map(c => [c.name, String(c.dimensions), c.distance, String(c.shard_count), String(c.replication_factor), c.embedding_model ?? '-']))
}

/** The collection, then one row per replica of each shard; `self`, this node's agent key, is marked. */
export function renderCollectionInfo (info: CollectionInfo, self?: string): string {
  const under = info.shards.filter(s => s.under_replicated)
  const head = fieldLines([
    ...collectionRows(info),
    ['epoch', String(info.epoch)],
    ['count', String(info.count)],
    ['under_replicated', under.length === 0
      ? 'no'
      : `yes: ${under.length} of ${info.shards.length} shards have fewer than ${info.replication_factor} replicas (too few nodes; full replication comes when nodes join)`]
  ])
  const rows: string[][] = []
  for (const s of info.shards) {
    const replicas = `${s.replicas.length}/${info.replication_factor}${s.under_replicated ? ' under-replicated' : ''}`
    if (s.replicas.length === 0) rows.push([String(s.shard), replicas, '-', '-', '-', '-'])
    s.replicas.forEach((r, i) => {
      rows.push([
        i === 0 ? String(s.shard) : '',
        i === 0 ? replicas : '',
        shortId(r.node_id) + (r.node_id === self ? ' (self)' : ''),
        r.state,
        r.live ? 'yes' : 'no',
        r.count === undefined ? '?' : String(r.count)
      ])
    })
  }
  return `${head}\n${renderTable(['SHARD', 'REPLICAS', 'NODE', 'STATE', 'LIVE', 'COUNT'], rows)}`
}

export function formatScore (score: number): string {
  return Math.abs(score) >= 1e6 ? score.toExponential(4) : score.toFixed(4)
}

export function renderSearch (r: SearchResult): string {
  const table = r.results.length === 0
    ? 'no points found\n'
    : renderTable(['ID', 'SCORE', 'METADATA'], r.results.map(h => [h.id, formatScore(h.score), Object.keys(h.metadata).length === 0 ? '' : JSON.stringify(h.metadata)]))
  return r.partial ? `${table}partial: ${r.shards_answered} of ${r.shards_total} shards answered\n` : table
}

// ---------------------------------------------------------------------------------------------
// the commands

export async function createCommand (opts: Options<'create'>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const collection = await api.json<Collection>('POST', '/v1/memory/collections', opts.config)
  if (opts.json) printJson(collection)
  else writeOut(`created collection ${collection.name}\n${renderCollection(collection)}`)
  return 0
}

export async function insertCommand (opts: Options<'insert'>): Promise<number> {
  const source = opts.file ?? 'stdin'
  // read and parse before asking the node: a bad file costs nothing
  const text = opts.file === undefined ? await readStdin() : Buffer.from(await readBounded(opts.file, '--file', MAX_POINTS_BYTES)).toString('utf8')
  const parsed = parsePoints(text, source)
  const api = await NodeApi.connect(opts)
  // checked against the collection too (dimensions, text without a model) before the first batch
  // goes, so a bad point at the end does not leave the first batches written; an unknown
  // collection is left to the node's own error
  const { collections } = await api.json<{ collections: Collection[] }>('GET', '/v1/memory/collections')
  const collection = collections.find(c => c.name === opts.collection)
  if (collection !== undefined) checkAgainstCollection(parsed, collection)
  const { points } = parsed
  const batches = batchesOf(points, MAX_BATCH)
  let written = 0
  let acknowledged = 0
  for (const batch of batches) {
    const body: { points: PointInput[], write_consistency?: WriteConsistency } = { points: batch }
    if (opts.writeConsistency !== undefined) body.write_consistency = opts.writeConsistency
    try {
      const result = await api.json<WriteResult>('POST', `${collectionPath(opts.collection)}/points`, body)
      written += result.written
      acknowledged += result.acknowledged
    } catch (err) {
      if (written > 0) process.stderr.write(`flexnode: ${written} of ${points.length} points were written before this batch failed\n`)
      throw err
    }
  }
  if (opts.json) printJson({ collection: opts.collection, written, acknowledged, batches: batches.length })
  else writeOut(`wrote ${written} point${written === 1 ? '' : 's'} to ${opts.collection}${batches.length > 1 ? ` in ${batches.length} batches` : ''}\n`)
  return 0
}

export async function searchCommand (opts: Options<'search'>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const result = await api.json<SearchResult>('POST', `${collectionPath(opts.collection)}/search`, opts.query)
  if (opts.json) printJson(result)
  else writeOut(renderSearch(result))
  return 0
}

export async function infoCommand (opts: Options<'info'>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const info = await api.json<CollectionInfo>('GET', collectionPath(opts.collection))
  if (opts.json) printJson(info)
  else writeOut(renderCollectionInfo(info, await readRuntimeInfo(opts.dataDir).then(r => r.agent_pub_key, () => undefined)))
  return 0
}

export async function listCommand (opts: Options<'list'>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const { collections } = await api.json<{ collections: Collection[] }>('GET', '/v1/memory/collections')
  if (opts.json) printJson({ collections })
  else writeOut(renderCollections(collections))
  return 0
}

export async function deleteCommand (opts: Options<'delete'>): Promise<number> {
  const api = await NodeApi.connect(opts)
  const result = await api.json<{ name: string, deleted: boolean }>('DELETE', collectionPath(opts.collection))
  if (opts.json) printJson(result)
  else writeOut(`deleted collection ${result.name}\n`)
  return 0
}

/** The command of `opts.action`. */
export async function memoryCommand (opts: MemoryOptions): Promise<number> {
  switch (opts.action) {
    case 'create': return await createCommand(opts)
    case 'insert': return await insertCommand(opts)
    case 'search': return await searchCommand(opts)
    case 'info': return await infoCommand(opts)
    case 'list': return await listCommand(opts)
    case 'delete': return await deleteCommand(opts)
  }
}
