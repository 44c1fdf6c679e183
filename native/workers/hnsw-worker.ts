/**
 * The worker module of the `hnsw` pools (`agent/src/memory/shard-host.ts`), run by single-thread
 * `PiscinaPool`s (`native/pool.ts`): it holds the open shard replicas of the memory capability,
 * each an hnswlib-node `HierarchicalNSW` index in memory plus one SQLite file on disk.
 *
 * A replica's files, under `<dir>/<collection uid>/`:
 * - `<shard>.db`: `points(label INTEGER PRIMARY KEY, id TEXT UNIQUE, ts, writer, vector BLOB NULL,
 *   metadata TEXT, seq)` (a null vector is a tombstone) and `meta(key, value)`: `instance` (a
 *   random id, new with each creation of the replica), `seq` (the last change's), `index_seq`
 *   (the last change the index file holds), `dims`, `space`, `collection`, `shard`.
 * - `<shard>.hnsw`: the index, written on `flush` to `<shard>.hnsw.tmp` then renamed over it.
 *
 * Opening a replica reads the index file and replays the rows changed after its `index_seq`, so a
 * restart does not insert every point again; a thread that restarts (crash, idle timeout) opens
 * its replicas again the same way, lazily, on their next task. Every write is last-writer-wins
 * per id (`{ ts, writer }`, ts first) and gets the next `seq` of the replica. A delete marks the
 * label deleted in the index and writes a tombstone; once more than 30 % (and more than 1000) of
 * the index's elements are deleted, the index is rebuilt from the live rows. The index grows by
 * `resizeIndex`, doubling. Filters run on the metadata held in memory, inside `searchKnn`'s filter
 * callback. Vectors come as one `Float32Array` of `n * dims` (moved to the thread, not copied).
 *
 * ```ts
 * const pool = createPiscinaPool<HnswTask, HnswResult>({ module: HNSW_WORKER, name: 'hnsw', maxThreads: 1 })({ logger })
 * const config = { dir, m: 16, efConstruction: 200 }
 * await pool.run({ op: 'open', config, spec: { collection: 'docs.lx2k3', shard: 0, dimensions: 3, distance: 'cosine' } })
 * const vectors = new Float32Array([1, 0, 0])
 * await pool.run({ op: 'upsert', config, key, ids: ['a'], metadata: [{}], versions: [{ ts: 1, writer: 'w' }], vectors }, { transfer: [vectors.buffer] })
 * ```
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import hnswlib from 'hnswlib-node'
import type { TaskHandler, WorkerLog } from './task.ts'

const { HierarchicalNSW } = hnswlib
type Index = InstanceType<typeof HierarchicalNSW>

/** Elements an index is created with; it doubles when full. */
export const HNSW_INITIAL_CAPACITY = 1024
/** Compaction: the index is rebuilt when more than this share of its elements are deleted… */
export const HNSW_COMPACT_RATIO = 0.3
/** …and more than this many. */
export const HNSW_COMPACT_MIN = 1000
/** Buckets of a replica's digest (by a hash of the id). */
export const DIGEST_BUCKETS = 64

export type Space = 'cosine' | 'l2' | 'ip'
export type Scalar = string | number | boolean | null
export type WorkerMetadata = Record<string, Scalar>
export type WorkerFilter = Record<string, Scalar | { in: Scalar[] }>
export interface WorkerVersion { ts: number, writer: string }
export interface WorkerKey { collection: string, shard: number }
export interface WorkerSpec extends WorkerKey { dimensions: number, distance: Space }
export interface WorkerPoint { id: string, vector: Float32Array | null, metadata: WorkerMetadata, version: WorkerVersion, seq: number }
export interface WorkerStats { count: number, deleted: number, seq: number, instance: string }

/** Where the replicas live and how new indexes are built; sent with every task. */
export interface HnswConfig { dir: string, m: number, efConstruction: number }

/** A batch of writes: `vectors` holds `ids.length * dims` floats; a NaN-free vector per id, or a tombstone where `dead[i]`. */
export interface HnswWrites {
  ids: string[]
  metadata: WorkerMetadata[]
  versions: WorkerVersion[]
  vectors: Float32Array
  /** per id: a tombstone (its slice of `vectors` is ignored). @default none */
  dead?: boolean[]
}

export type HnswTask =
  | { op: 'scan', config: HnswConfig }
  | { op: 'open', config: HnswConfig, spec: WorkerSpec }
  | ({ op: 'write', config: HnswConfig, key: WorkerKey } & HnswWrites)
  | { op: 'get', config: HnswConfig, key: WorkerKey, ids: string[] }
  | { op: 'search', config: HnswConfig, key: WorkerKey, query: Float32Array, k: number, ef: number, filter?: WorkerFilter }
  /** one query over several replicas of this thread: one task, not one per shard */
  | { op: 'searchMany', config: HnswConfig, keys: WorkerKey[], query: Float32Array, k: number, ef: number, filter?: WorkerFilter }
  | { op: 'changes', config: HnswConfig, key: WorkerKey, since: number, limit: number }
  /** the changes since a seq as ids and versions only (what a co-replica compares before it fetches) */
  | { op: 'versions', config: HnswConfig, key: WorkerKey, since: number, limit: number }
  /** of these ids and versions, those newer than this replica's (or unknown here) */
  | { op: 'newer', config: HnswConfig, key: WorkerKey, entries: Array<{ id: string, version: WorkerVersion }> }
  /** points by id, tombstones included */
  | { op: 'fetch', config: HnswConfig, key: WorkerKey, ids: string[] }
  | { op: 'digest', config: HnswConfig, key: WorkerKey }
  | { op: 'bucket', config: HnswConfig, key: WorkerKey, bucket: number }
  | { op: 'stats', config: HnswConfig, key: WorkerKey }
  | { op: 'drop', config: HnswConfig, key: WorkerKey }
  | { op: 'flush', config: HnswConfig }
  | { op: 'close', config: HnswConfig }

export type HnswResult =
  | WorkerSpec[]
  | WorkerStats
  | { applied: number, stale: number }
  | WorkerPoint[]
  | Array<{ id: string, distance: number, metadata: WorkerMetadata }>
  | Array<Array<{ id: string, distance: number, metadata: WorkerMetadata }>>
  | { instance: string, points: WorkerPoint[], next: number, done: boolean }
  | { instance: string, entries: Array<{ id: string, version: WorkerVersion, seq: number }>, next: number, done: boolean }
  | string[]
  | { instance: string, seq: number, count: number, buckets: string[] }
  | Array<{ id: string, version: WorkerVersion }>
  | { flushed: number }
  | null

/** A replica's task found no files for it (it was never opened here, or dropped). */
export class ReplicaMissingError extends Error {
  override readonly name = 'ReplicaMissingError'
}

/** `a` newer than `b`: > 0; the same version: 0. Timestamps first, then the writer strings. */
export function compareVersions (a: WorkerVersion, b: WorkerVersion): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1
  return a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0
}

/** The digest bucket of an id: the first 32 bits of its SHA-1, mod 64 (independent of the shard's hash). */
export function bucketOfId (id: string): number {
  return createHash('sha1').update(id).digest().readUInt32BE(0) % DIGEST_BUCKETS
}

/** A filter as a predicate on metadata: every key must match; a missing key matches nothing. */
export function filterPredicate (filter: WorkerFilter): (metadata: WorkerMetadata) => boolean {
  const clauses = Object.entries(filter).map(([key, cond]): (m: WorkerMetadata) => boolean => {
    if (cond !== null && typeof cond === 'object') {
      const allowed = new Set(cond.in)
      return (m) => Object.hasOwn(m, key) && allowed.has(m[key] as Scalar)
    }
    return (m) => Object.hasOwn(m, key) && m[key] === cond
  })
  return (m) => clauses.every(c => c(m))
}

/** One id's row, as held in memory (tombstones too: their versions decide later writes). */
interface Row {
  label: number
  ts: number
  writer: string
  /** null: a tombstone */
  metadata: WorkerMetadata | null
  /** the label is an element of the index (live or marked deleted) */
  indexed: boolean
}

interface PointRow { label: number, id: string, ts: number, writer: string, vector: Buffer | null, metadata: string, seq: number }

const replicaDir = (config: HnswConfig, collection: string): string => join(config.dir, collection)
const dbPath = (config: HnswConfig, key: WorkerKey): string => join(replicaDir(config, key.collection), `${key.shard}.db`)
const indexPath = (config: HnswConfig, key: WorkerKey): string => join(replicaDir(config, key.collection), `${key.shard}.hnsw`)
const keyOf = (key: WorkerKey): string => `${key.collection}/${key.shard}`

const blobOf = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength)
const vectorOf = (b: Buffer): Float32Array => {
  // a copy, aligned: the Buffer may sit at any offset of SQLite's memory
  const out = new Float32Array(b.byteLength / 4)
  new Uint8Array(out.buffer).set(b)
  return out
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS points (label INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts REAL NOT NULL, writer TEXT NOT NULL, vector BLOB, metadata TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS points_seq ON points(seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`

/** One open replica: its database, its index, its rows in memory. */
class Replica {
  readonly spec: WorkerSpec
  readonly instance: string
  private readonly config: HnswConfig
  private readonly db: Database.Database
  private index: Index
  private readonly rows = new Map<string, Row>()
  private readonly byLabel = new Map<number, string>()
  private seq: number
  private indexSeq: number
  /** the index was rebuilt since it was last written */
  private rebuilt = false
  private live = 0
  private readonly stmt: {
    upsert: Database.Statement
    setMeta: Database.Statement
    get: Database.Statement
    vector: Database.Statement
    changes: Database.Statement
    versions: Database.Statement
    liveVectors: Database.Statement
  }

  constructor (config: HnswConfig, db: Database.Database, spec: WorkerSpec, instance: string, seq: number, indexSeq: number) {
    this.config = config
    this.db = db
    this.spec = spec
    this.instance = instance
    this.seq = seq
    this.indexSeq = indexSeq
    this.stmt = {
      upsert: db.prepare(`INSERT INTO points (id, ts, writer, vector, metadata, seq) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, writer = excluded.writer, vector = excluded.vector, metadata = excluded.metadata, seq = excluded.seq
        RETURNING label`),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      get: db.prepare('SELECT label, id, ts, writer, vector, metadata, seq FROM points WHERE id = ?'),
      vector: db.prepare('SELECT vector FROM points WHERE label = ?').pluck(),
      changes: db.prepare('SELECT label, id, ts, writer, vector, metadata, seq FROM points WHERE seq > ? ORDER BY seq LIMIT ?'),
      versions: db.prepare('SELECT id, ts, writer, seq FROM points WHERE seq > ? ORDER BY seq LIMIT ?'),
      liveVectors: db.prepare('SELECT label, vector FROM points WHERE vector IS NOT NULL')
    }
    for (const r of db.prepare('SELECT label, id, ts, writer, vector IS NULL AS dead, metadata FROM points').iterate() as Iterable<{ label: number, id: string, ts: number, writer: string, dead: number, metadata: string }>) {
      const dead = r.dead === 1
      this.rows.set(r.id, { label: r.label, ts: r.ts, writer: r.writer, metadata: dead ? null : JSON.parse(r.metadata) as WorkerMetadata, indexed: false })
      this.byLabel.set(r.label, r.id)
      if (!dead) this.live++
    }
    const file = indexPath(config, spec)
    this.index = new HierarchicalNSW(spec.distance, spec.dimensions)
    if (indexSeq > 0 && existsSync(file) && this.read(file)) {
      for (const label of this.index.getIdsList()) {
        const id = this.byLabel.get(label)
        if (id !== undefined) this.rows.get(id)!.indexed = true
      }
      // the rows changed after the index file was written: newest state of each, replayed
      for (const r of db.prepare('SELECT label, id, vector FROM points WHERE seq > ? ORDER BY seq').iterate(indexSeq) as Iterable<{ label: number, id: string, vector: Buffer | null }>) {
        this.toIndex(this.rows.get(r.id)!, r.vector === null ? null : vectorOf(r.vector))
      }
    } else {
      this.index.initIndex(Math.max(HNSW_INITIAL_CAPACITY, this.live * 2), config.m, config.efConstruction)
      this.indexSeq = 0
      for (const r of this.stmt.liveVectors.iterate() as Iterable<{ label: number, vector: Buffer }>) {
        this.toIndex(this.rows.get(this.byLabel.get(r.label)!)!, vectorOf(r.vector))
      }
      this.rebuilt = true
    }
  }

  /** Read the index file; false when it cannot be read (the index is rebuilt from the rows then). */
  private read (file: string): boolean {
    try {
      this.index.readIndexSync(file)
      if (this.index.getNumDimensions() === this.spec.dimensions) return true
    } catch {
      // a damaged file
    }
    this.index = new HierarchicalNSW(this.spec.distance, this.spec.dimensions)
    return false
  }

  /** Create the replica's files, or open them (the spec must match what they hold). */
  static open (config: HnswConfig, spec: WorkerSpec | WorkerKey): Replica {
    const path = dbPath(config, spec)
    const creating = !existsSync(path)
    if (creating && !('dimensions' in spec)) throw new ReplicaMissingError(`no replica ${keyOf(spec)} in ${config.dir}`)
    mkdirSync(replicaDir(config, spec.collection), { recursive: true })
    const db = new Database(path)
    try {
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      db.exec(SCHEMA)
      const meta = new Map((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string, value: string }>).map(r => [r.key, r.value]))
      if (!meta.has('instance')) {
        if (!('dimensions' in spec)) throw new ReplicaMissingError(`replica ${keyOf(spec)} has no metadata`)
        const set = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)')
        db.transaction(() => {
          for (const [k, v] of [['instance', randomBytes(8).toString('hex')], ['seq', '0'], ['index_seq', '0'], ['dims', String(spec.dimensions)], ['space', spec.distance], ['collection', spec.collection], ['shard', String(spec.shard)]]) {
            set.run(k, v)
            meta.set(k!, v!)
          }
        })()
      }
      const held: WorkerSpec = { collection: spec.collection, shard: spec.shard, dimensions: Number(meta.get('dims')), distance: meta.get('space') as Space }
      if ('dimensions' in spec && (spec.dimensions !== held.dimensions || spec.distance !== held.distance)) {
        throw new Error(`replica ${keyOf(spec)} holds ${held.dimensions}-dimensional ${held.distance} vectors, not ${spec.dimensions}-dimensional ${spec.distance}`)
      }
      return new Replica(config, db, held, meta.get('instance')!, Number(meta.get('seq')), Number(meta.get('index_seq')))
    } catch (err) {
      db.close()
      throw err
    }
  }

  /** Bring the index in line with a row's new state. */
  private toIndex (row: Row, vector: Float32Array | null): void {
    if (vector === null) {
      if (!row.indexed) return
      try {
        this.index.markDelete(row.label)
      } catch {
        // already deleted (a replayed tombstone)
      }
      return
    }
    if (!row.indexed) {
      const max = this.index.getMaxElements()
      if (this.index.getCurrentCount() >= max) this.index.resizeIndex(max * 2)
    }
    // an existing label (live or deleted) is updated in place and undeleted
    this.index.addPoint(Array.from(vector), row.label)
    row.indexed = true
  }

  get deleted (): number { return this.index.getCurrentCount() - this.live }

  stats (): WorkerStats {
    return { count: this.live, deleted: this.deleted, seq: this.seq, instance: this.instance }
  }

  /** Last-writer-wins per id, in one transaction; then the index. */
  write (w: HnswWrites): { applied: number, stale: number } {
    const dims = this.spec.dimensions
    const won: Array<{ i: number, id: string }> = []
    let stale = 0
    const seen = new Map<string, WorkerVersion>()
    for (let i = 0; i < w.ids.length; i++) {
      const id = w.ids[i]!
      const v = w.versions[i]!
      const row = this.rows.get(id)
      const prev = seen.get(id) ?? (row !== undefined ? { ts: row.ts, writer: row.writer } : undefined)
      if (prev !== undefined && compareVersions(v, prev) <= 0) { stale++; continue }
      seen.set(id, v)
      won.push({ i, id })
    }
    if (won.length === 0) return { applied: 0, stale }
    const labels: number[] = []
    this.db.transaction(() => {
      for (const { i, id } of won) {
        const dead = w.dead?.[i] === true
        const v = w.versions[i]!
        const vector = dead ? null : blobOf(w.vectors.subarray(i * dims, (i + 1) * dims))
        const label = (this.stmt.upsert.get(id, v.ts, v.writer, vector, dead ? '{}' : JSON.stringify(w.metadata[i] ?? {}), ++this.seq) as { label: number }).label
        labels.push(label)
      }
      this.stmt.setMeta.run('seq', String(this.seq))
    })()
    try {
      won.forEach(({ i, id }, n) => {
        const dead = w.dead?.[i] === true
        const v = w.versions[i]!
        let row = this.rows.get(id)
        if (row === undefined) {
          row = { label: labels[n]!, ts: v.ts, writer: v.writer, metadata: null, indexed: false }
          this.rows.set(id, row)
          this.byLabel.set(row.label, id)
        }
        if (row.metadata !== null) this.live--
        row.ts = v.ts
        row.writer = v.writer
        row.metadata = dead ? null : (w.metadata[i] ?? {})
        if (!dead) this.live++
        this.toIndex(row, dead ? null : w.vectors.subarray(i * dims, (i + 1) * dims))
      })
      this.maybeCompact()
    } catch (err) {
      // the database has the batch; the index is rebuilt from it by the next open
      replicas.delete(keyOf(this.spec))
      this.close(false)
      throw err
    }
    return { applied: won.length, stale }
  }

  /** Rebuild the index from the live rows when too much of it is deleted. */
  private maybeCompact (): void {
    const deleted = this.deleted
    if (deleted <= HNSW_COMPACT_MIN || deleted <= HNSW_COMPACT_RATIO * this.index.getCurrentCount()) return
    const index = new HierarchicalNSW(this.spec.distance, this.spec.dimensions)
    index.initIndex(Math.max(HNSW_INITIAL_CAPACITY, this.live * 2), this.config.m, this.config.efConstruction)
    for (const row of this.rows.values()) row.indexed = false
    for (const r of this.stmt.liveVectors.iterate() as Iterable<{ label: number, vector: Buffer }>) {
      index.addPoint(Array.from(vectorOf(r.vector)), r.label)
      this.rows.get(this.byLabel.get(r.label)!)!.indexed = true
    }
    this.index = index
    this.rebuilt = true
  }

  get (ids: string[]): WorkerPoint[] {
    const out: WorkerPoint[] = []
    for (const id of ids) {
      const row = this.rows.get(id)
      if (row?.metadata == null) continue
      const r = this.stmt.get.get(id) as PointRow
      out.push(this.point(r))
    }
    return out
  }

  private point (r: PointRow): WorkerPoint {
    return { id: r.id, vector: r.vector === null ? null : vectorOf(r.vector), metadata: JSON.parse(r.metadata) as WorkerMetadata, version: { ts: r.ts, writer: r.writer }, seq: r.seq }
  }

  search (query: Float32Array, k: number, ef: number, filter: WorkerFilter | undefined): Array<{ id: string, distance: number, metadata: WorkerMetadata }> {
    if (this.live === 0) return []
    this.index.setEf(Math.max(ef, k))
    const n = Math.min(k, this.index.getMaxElements())
    let found
    if (filter === undefined) {
      found = this.index.searchKnn(Array.from(query), n)
    } else {
      const match = filterPredicate(filter)
      found = this.index.searchKnn(Array.from(query), n, (label) => {
        const id = this.byLabel.get(label)
        const m = id === undefined ? null : this.rows.get(id)!.metadata
        return m !== null && match(m)
      })
    }
    return found.neighbors.map((label, i) => {
      const id = this.byLabel.get(label)!
      return { id, distance: found.distances[i]!, metadata: this.rows.get(id)!.metadata ?? {} }
    })
  }

  changes (since: number, limit: number): { instance: string, points: WorkerPoint[], next: number, done: boolean } {
    const rows = this.stmt.changes.all(since, limit + 1) as PointRow[]
    const done = rows.length <= limit
    const points = rows.slice(0, limit).map(r => this.point(r))
    return { instance: this.instance, points, next: points.at(-1)?.seq ?? since, done }
  }

  versions (since: number, limit: number): { instance: string, entries: Array<{ id: string, version: WorkerVersion, seq: number }>, next: number, done: boolean } {
    const rows = this.stmt.versions.all(since, limit + 1) as Array<{ id: string, ts: number, writer: string, seq: number }>
    const done = rows.length <= limit
    const entries = rows.slice(0, limit).map(r => ({ id: r.id, version: { ts: r.ts, writer: r.writer }, seq: r.seq }))
    return { instance: this.instance, entries, next: entries.at(-1)?.seq ?? since, done }
  }

  newer (entries: Array<{ id: string, version: WorkerVersion }>): string[] {
    return entries.filter(e => {
      const row = this.rows.get(e.id)
      return row === undefined || compareVersions(e.version, { ts: row.ts, writer: row.writer }) > 0
    }).map(e => e.id)
  }

  fetch (ids: string[]): WorkerPoint[] {
    const out: WorkerPoint[] = []
    for (const id of ids) {
      const r = this.stmt.get.get(id) as PointRow | undefined
      if (r !== undefined) out.push(this.point(r))
    }
    return out
  }

  /** Per bucket, ids with their versions (tombstones too), sorted by id. */
  private buckets (only?: number): Map<number, Array<{ id: string, version: WorkerVersion }>> {
    const out = new Map<number, Array<{ id: string, version: WorkerVersion }>>()
    for (const [id, row] of this.rows) {
      const b = bucketOfId(id)
      if (only !== undefined && b !== only) continue
      let list = out.get(b)
      if (list === undefined) out.set(b, list = [])
      list.push({ id, version: { ts: row.ts, writer: row.writer } })
    }
    for (const list of out.values()) list.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    return out
  }

  digest (): { instance: string, seq: number, count: number, buckets: string[] } {
    const byBucket = this.buckets()
    const buckets: string[] = []
    for (let b = 0; b < DIGEST_BUCKETS; b++) {
      const h = createHash('sha256')
      for (const e of byBucket.get(b) ?? []) h.update(`${e.id}\0${e.version.ts}\0${e.version.writer}\n`)
      buckets.push(h.digest('hex').slice(0, 32))
    }
    return { instance: this.instance, seq: this.seq, count: this.live, buckets }
  }

  bucket (b: number): Array<{ id: string, version: WorkerVersion }> {
    return this.buckets(b).get(b) ?? []
  }

  /** Write the index (tmp + rename) when it lags the rows, then record its seq. */
  flush (): boolean {
    if (this.seq === this.indexSeq && !this.rebuilt) return false
    const file = indexPath(this.config, this.spec)
    const seq = this.seq
    this.index.writeIndexSync(`${file}.tmp`)
    renameSync(`${file}.tmp`, file)
    this.stmt.setMeta.run('index_seq', String(seq))
    this.indexSeq = seq
    this.rebuilt = false
    return true
  }

  close (flush: boolean): void {
    try {
      if (flush) this.flush()
    } finally {
      this.db.close()
    }
  }
}

/** The replicas this thread holds open, by `collection/shard`. */
const replicas = new Map<string, Replica>()

/** The open replica of a key, opened from disk when this thread does not hold it yet. */
function replica (config: HnswConfig, key: WorkerKey): Replica {
  const k = keyOf(key)
  let r = replicas.get(k)
  if (r === undefined) {
    r = Replica.open(config, key)
    replicas.set(k, r)
  }
  return r
}

/** The replicas found on disk: their specs, read from each database's meta table. */
function scan (config: HnswConfig): WorkerSpec[] {
  if (!existsSync(config.dir)) return []
  const out: WorkerSpec[] = []
  for (const entry of readdirSync(config.dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    for (const file of readdirSync(join(config.dir, entry.name))) {
      const m = /^(\d+)\.db$/.exec(file)
      if (m === null) continue
      const db = new Database(join(config.dir, entry.name, file), { readonly: true, fileMustExist: true })
      try {
        const meta = new Map((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string, value: string }>).map(r => [r.key, r.value]))
        if (!meta.has('dims')) continue
        out.push({ collection: entry.name, shard: Number(m[1]), dimensions: Number(meta.get('dims')), distance: meta.get('space') as Space })
      } catch {
        // not a replica's database (no meta table): left alone
      } finally {
        db.close()
      }
    }
  }
  return out
}

/** Close a replica and delete its files (and its collection's folder once empty). */
function drop (config: HnswConfig, key: WorkerKey): void {
  const k = keyOf(key)
  replicas.get(k)?.close(false)
  replicas.delete(k)
  const db = dbPath(config, key)
  const index = indexPath(config, key)
  for (const f of [db, `${db}-wal`, `${db}-shm`, index, `${index}.tmp`]) rmSync(f, { force: true })
  try {
    rmdirSync(replicaDir(config, key.collection))
  } catch {
    // other shards of the collection are still there
  }
}

export const handler: TaskHandler<HnswTask, HnswResult> = (task, ctx) => {
  const { config } = task
  switch (task.op) {
    case 'scan': return scan(config)
    case 'open': {
      const k = keyOf(task.spec)
      let r = replicas.get(k)
      if (r === undefined) {
        r = Replica.open(config, task.spec)
        replicas.set(k, r)
      } else if (r.spec.dimensions !== task.spec.dimensions || r.spec.distance !== task.spec.distance) {
        throw new Error(`replica ${k} holds ${r.spec.dimensions}-dimensional ${r.spec.distance} vectors, not ${task.spec.dimensions}-dimensional ${task.spec.distance}`)
      }
      return r.stats()
    }
    case 'write': return replica(config, task.key).write(task)
    case 'get': return replica(config, task.key).get(task.ids)
    case 'search': return replica(config, task.key).search(task.query, task.k, task.ef, task.filter)
    case 'searchMany': return task.keys.map(key => replica(config, key).search(task.query, task.k, task.ef, task.filter))
    case 'changes': return replica(config, task.key).changes(task.since, task.limit)
    case 'versions': return replica(config, task.key).versions(task.since, task.limit)
    case 'newer': return replica(config, task.key).newer(task.entries)
    case 'fetch': return replica(config, task.key).fetch(task.ids)
    case 'digest': return replica(config, task.key).digest()
    case 'bucket': return replica(config, task.key).bucket(task.bucket)
    case 'stats': return replica(config, task.key).stats()
    case 'drop': drop(config, task.key); return null
    case 'flush': return { flushed: flushAll(ctx.log, false) }
    case 'close': return { flushed: flushAll(ctx.log, true) }
  }
}

/** Write the index files that lag their rows (a failure is logged, the others still written); `close`: close them all after. */
function flushAll (log: WorkerLog, close: boolean): number {
  let flushed = 0
  for (const [k, r] of replicas) {
    try {
      if (r.flush()) flushed++
    } catch (err: unknown) {
      log('warn', 'writing a shard index failed', { shard: k, err: err instanceof Error ? err.message : String(err) })
    }
    if (close) r.close(false)
  }
  if (close) replicas.clear()
  return flushed
}

/** Free the open replicas (their index files written first). */
export function dispose (): void {
  for (const r of replicas.values()) r.close(true)
  replicas.clear()
}
