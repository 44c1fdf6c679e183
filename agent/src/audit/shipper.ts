/**
 * The shipper: drains the audit outbox into Postgres. It reads the records a sink has not
 * acknowledged, in seq order, inserts a batch in ONE Postgres transaction (`unnest` arrays, one
 * statement; `ON CONFLICT (id) DO NOTHING`, so a batch sent twice — Postgres committed, the node
 * died before it noted so — is not duplicated), then notes in SQLite how far it got. Postgres
 * down: the batch is retried with exponential backoff and jitter, and the outbox grows; nothing
 * is dropped.
 *
 * ```ts
 * const shipper = auditShipper({ url: 'postgres://…' })({ log, logger })
 * await shipper.start()          // connects and migrates when it can; never fails for a down database
 * await shipper.drain()          // ship until the outbox is empty (tests, bench)
 * shipper.stats()                // { shipped, depth, lag_ms, last_error, failures }
 * await shipper.stop()
 * ```
 */
import pg from 'pg'
import { AbortError, DisposedError, InvalidInputError, errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import type { Service, StartOptions } from '../service.ts'
import {
  DEFAULT_BACKOFF_FACTOR, DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_JITTER, DEFAULT_BACKOFF_MAX_MS, DEFAULT_BATCH_SIZE,
  DEFAULT_SHIP_INTERVAL_MS, MAX_BATCH_SIZE, PG_CONNECT_TIMEOUT_MS, PG_QUERY_TIMEOUT_MS, POSTGRES_SINK, STOP_GRACE_MS
} from './constants.ts'
import type { AuditLog, OutboxRow } from './log.ts'
import { migrate } from './pg-schema.ts'
import { recordId } from './record.ts'
import {
  AuditConflictError, AuditSchemaError, AuditShipError, AuditSinkUnavailableError, InvalidAuditUrlError, redactUrl,
  type AuditShipperStats
} from './types.ts'

export interface BackoffOptions {
  /** the first retry's wait (ms). @default 250 */
  initialMs?: number
  /** the longest wait (ms). @default 30000 */
  maxMs?: number
  /** each failure in a row multiplies the wait by this. @default 2 */
  factor?: number
  /** each wait is cut by up to this fraction at random (0–1). @default 0.5 */
  jitter?: number
}

export interface AuditShipperInit {
  /** `postgres://user:password@host:port/database` (or `postgresql://`) */
  url: string
  /** records per Postgres transaction, 1–10000. @default 1000 */
  batchSize?: number
  /** ms between two looks at the outbox once it is drained. @default 500 */
  intervalMs?: number
  backoff?: BackoffOptions
  /** the sink's name in the outbox's `audit_shipped` table. @default 'postgres' */
  sink?: string
}

export interface AuditShipperComponents {
  log: AuditLog
  logger: ComponentLogger
}

/** Postgres error classes that mean the connection, not the batch, failed. */
function isConnectionError (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return err instanceof Error && /Connection terminated|connection|timeout|ECONN|socket/i.test(err.message)
  return code.startsWith('08') || code.startsWith('57P') || code.startsWith('53') || /^E[A-Z]+$/.test(code)
}

export function checkAuditUrl (url: unknown): string {
  if (typeof url !== 'string' || url === '') throw new InvalidAuditUrlError(String(url), 'it is empty')
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new InvalidAuditUrlError(url, 'it does not parse as a URL')
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new InvalidAuditUrlError(url, `its scheme is ${u.protocol.replace(/:$/, '')}, not postgres`)
  if (u.hostname === '') throw new InvalidAuditUrlError(url, 'it names no host')
  return url
}

const INSERT = `INSERT INTO audit_record (id, node, seq, at, kind, actor, subject, detail, trace_id, prev, hash, signature)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
ON CONFLICT (id) DO NOTHING`

export class AuditShipper implements Service {
  readonly url: string
  private readonly log: AuditLog
  private readonly logger: ComponentLogger
  private readonly batchSize: number
  private readonly intervalMs: number
  private readonly backoff: Required<BackoffOptions>
  private readonly sink: string
  private client: pg.Client | undefined
  private connecting: Promise<pg.Client> | undefined
  private shipped = 0
  private failures = 0
  private lastError: Error | null = null
  private running = false
  private stopped = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private busy: Promise<number> | undefined
  private offAppend: (() => void) | undefined
  /** the sink's high-water mark as last read or written (appends compare against it, without a query) */
  private markSeq = 0

  constructor (init: AuditShipperInit, components: AuditShipperComponents) {
    this.url = checkAuditUrl(init.url)
    const batchSize = init.batchSize ?? DEFAULT_BATCH_SIZE
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) throw new InvalidInputError(`audit batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}`, { field: 'batchSize' })
    const intervalMs = init.intervalMs ?? DEFAULT_SHIP_INTERVAL_MS
    if (!Number.isFinite(intervalMs) || intervalMs < 1) throw new InvalidInputError('audit intervalMs must be a positive number', { field: 'intervalMs' })
    const b = init.backoff ?? {}
    this.backoff = {
      initialMs: b.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS,
      maxMs: b.maxMs ?? DEFAULT_BACKOFF_MAX_MS,
      factor: b.factor ?? DEFAULT_BACKOFF_FACTOR,
      jitter: b.jitter ?? DEFAULT_BACKOFF_JITTER
    }
    if (!(this.backoff.initialMs > 0 && this.backoff.maxMs >= this.backoff.initialMs && this.backoff.factor >= 1 && this.backoff.jitter >= 0 && this.backoff.jitter <= 1)) {
      throw new InvalidInputError('audit backoff needs 0 < initialMs ≤ maxMs, factor ≥ 1 and 0 ≤ jitter ≤ 1', { field: 'backoff' })
    }
    this.batchSize = batchSize
    this.intervalMs = intervalMs
    this.sink = init.sink ?? POSTGRES_SINK
    this.log = components.log
    this.logger = components.logger.forComponent('flexnode:audit:shipper')
  }

  stats (): AuditShipperStats {
    let depth = 0
    let lag = 0
    try {
      depth = this.log.depth(this.sink)
      lag = this.log.lagMs(this.sink)
    } catch { /* the log is closed: the node is stopping */ }
    return { shipped: this.shipped, depth, lag_ms: lag, last_error: this.lastError?.message ?? null, failures: this.failures }
  }

  /** The last failure (typed), null after a success. */
  get lastFailure (): Error | null { return this.lastError }

  /**
   * Start shipping in the background. A database this node cannot reach is not an error here
   * (the outbox keeps the records; the loop retries); a database with a schema this node does not
   * know is (`AuditSchemaError`): no record will ever reach it until someone acts.
   */
  async start (_options?: StartOptions): Promise<void> {
    if (this.stopped) throw new DisposedError('AuditShipper')
    if (this.running) return
    try {
      await this.connect()
    } catch (err) {
      if (err instanceof AuditSchemaError) throw err
      this.fail(err)
    }
    this.running = true
    this.markSeq = this.log.shippedSeq(this.sink)
    // a full batch waiting ships at once rather than at the next interval
    this.offAppend = this.log.onAppend((record) => {
      if (this.wake !== undefined && this.failures === 0 && record.seq - this.markSeq >= this.batchSize) this.wake()
    })
    this.loop = this.run()
  }

  private fail (err: unknown): void {
    this.failures++
    this.lastError = err instanceof Error ? err : new Error(String(err))
    this.logger.warn({ err: errorMessage(err), name: this.lastError.name, failures: this.failures, depth: this.stats().depth }, 'audit shipping failed; the outbox keeps the records')
  }

  private async connect (): Promise<pg.Client> {
    if (this.client !== undefined) return this.client
    this.connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, query_timeout: PG_QUERY_TIMEOUT_MS, application_name: 'flexnode-audit' })
      // a server that goes away errors the idle client: it is dropped and made again at the next batch
      client.on('error', (err: Error) => {
        if (this.client === client) this.client = undefined
        this.logger.debug({ err: err.message }, 'the audit database connection failed')
      })
      try {
        await client.connect()
      } catch (err) {
        await client.end().catch(() => undefined)
        throw new AuditSinkUnavailableError(this.url, err)
      }
      try {
        await migrate(client)
      } catch (err) {
        await client.end().catch(() => undefined)
        if (err instanceof AuditSchemaError) throw err
        throw isConnectionError(err) ? new AuditSinkUnavailableError(this.url, err) : new AuditShipError(errorMessage(err), err)
      }
      this.client = client
      return client
    })().finally(() => { this.connecting = undefined })
    return await this.connecting
  }

  private async drop (): Promise<void> {
    const c = this.client
    this.client = undefined
    await c?.end().catch(() => undefined)
  }

  /**
   * Ship one batch now (at most `batchSize` records); resolves with how many records it sent.
   * Failures are typed: `AuditSinkUnavailableError` (connection), `AuditSchemaError`,
   * `AuditConflictError` (the sink holds a different record under one of these ids),
   * `AuditShipError` (anything else). The outbox is only marked after Postgres committed.
   */
  async shipOnce (): Promise<number> {
    if (this.stopped) throw new DisposedError('AuditShipper')
    // one batch at a time: the loop's and a caller's never interleave
    while (this.busy !== undefined) await this.busy.catch(() => undefined)
    const run = this.batch()
    this.busy = run
    try {
      return await run
    } finally {
      this.busy = undefined
    }
  }

  private async batch (): Promise<number> {
    const rows = this.log.rowsAfter(this.log.shippedSeq(this.sink), this.batchSize)
    if (rows.length === 0) return 0
    const client = await this.connect()
    try {
      await client.query('BEGIN')
      const cols = columns(rows)
      const inserted = await client.query(INSERT, cols)
      // some were there already (a batch sent again): they must be the very same records
      if (inserted.rowCount !== rows.length) await this.checkConflicts(client, rows)
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      if (err instanceof AuditConflictError) throw err
      await this.drop()
      if (isConnectionError(err)) throw new AuditSinkUnavailableError(this.url, err)
      throw new AuditShipError(errorMessage(err), err)
    }
    this.markSeq = rows[rows.length - 1]!.seq
    this.log.markShipped(this.markSeq, this.sink)
    this.shipped += rows.length
    this.failures = 0
    this.lastError = null
    return rows.length
  }

  /** Records already in Postgres must be the very same records (same hash), or shipping stops. */
  private async checkConflicts (client: pg.Client, rows: OutboxRow[]): Promise<void> {
    const { rows: there } = await client.query<{ id: string, hash: string }>('SELECT id, hash FROM audit_record WHERE id = ANY($1::text[])', [rows.map(r => recordId(r.node, r.seq))])
    const theirs = new Map(there.map(r => [r.id, r.hash]))
    for (const r of rows) {
      const id = recordId(r.node, r.seq)
      const hash = theirs.get(id)
      if (hash !== undefined && hash !== r.hash) throw new AuditConflictError(id, r.hash, hash)
    }
  }

  /** Ship until the outbox is empty (what was in it when called, and what came meanwhile). Throws the first failure. */
  async drain (options: { signal?: AbortSignal } = {}): Promise<number> {
    let total = 0
    for (;;) {
      if (options.signal?.aborted === true) throw new AbortError('draining the audit outbox was aborted')
      const n = await this.shipOnce()
      total += n
      if (n === 0) return total
    }
  }

  private delay (): number {
    if (this.failures === 0) return this.intervalMs
    const { initialMs, maxMs, factor, jitter } = this.backoff
    const base = Math.min(maxMs, initialMs * factor ** Math.min(this.failures - 1, 60))
    return Math.max(1, Math.round(base * (1 - jitter * Math.random())))
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(timer); this.wake = undefined; resolve() }
    })
  }

  private async run (): Promise<void> {
    while (!this.stopped) {
      let full = false
      try {
        full = await this.shipOnce() === this.batchSize
      } catch (err) {
        if (this.stopped) break
        this.fail(err)
      }
      if (this.stopped) break
      if (!full) await this.sleep(this.delay())
    }
  }

  /** Stops the loop; a batch in flight gets `STOP_GRACE_MS` to finish, then its connection is dropped. Idempotent. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.offAppend?.()
    this.wake?.()
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>(resolve => { timer = setTimeout(resolve, STOP_GRACE_MS) })
    await Promise.race([this.loop, grace])
    clearTimeout(timer)
    await this.drop()
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }

  toString (): string { return `AuditShipper(${redactUrl(this.url)})` }
}

/** The twelve column arrays of a batch, for `unnest`. */
function columns (rows: OutboxRow[]): unknown[][] {
  const n = rows.length
  const cols: unknown[][] = Array.from({ length: 12 }, () => new Array<unknown>(n))
  for (let i = 0; i < n; i++) {
    const r = rows[i]!
    cols[0]![i] = recordId(r.node, r.seq)
    cols[1]![i] = r.node
    cols[2]![i] = r.seq
    cols[3]![i] = r.at
    cols[4]![i] = r.kind
    cols[5]![i] = r.actor
    cols[6]![i] = r.subject
    cols[7]![i] = r.detail
    cols[8]![i] = r.trace_id
    cols[9]![i] = r.prev
    cols[10]![i] = r.hash
    cols[11]![i] = r.signature
  }
  return cols
}

export function auditShipper (init: AuditShipperInit): (components: AuditShipperComponents) => AuditShipper {
  return (components) => new AuditShipper(init, components)
}
