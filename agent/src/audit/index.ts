/**
 * The `audit` capability: a tamper-evident audit log of what this node does. Every zome call
 * that writes (and every warrant this node issues) appends a record to an outbox in the
 * conductor's SQLite database IN THE SAME TRANSACTION as the commit (the conductor's
 * `onCommitting` hook): a call that fails validation leaves no record, and no committed call is
 * without one. Other capabilities append their own records (`inference`, `pin`…) through
 * `append`. Records are hash-chained and signed by the node's agent key (`record.ts`,
 * `verify.ts`). With a Postgres URL the shipper drains the outbox into Postgres (`shipper.ts`);
 * without one the outbox is the audit log (`flexnode audit`, `GET /v1/audit`).
 *
 * ```ts
 * const a = audit({ url: 'postgres://flexnode@db/audit' })({ conductor, keystore, logger })
 * await a.start()
 * a.append({ kind: 'inference', actor: requester, subject: model, detail: { tokens: 42, latency_ms: 180 }, trace_id })
 * a.log.verify().ok   // true
 * a.stats()           // { head, depth, shipper: { shipped, depth, lag_ms, last_error, failures } }
 * ```
 */
import type { EmbeddedConductor } from '../conductor/conductor.ts'
import type { Keystore } from '../identity/keystore.ts'
import type { ComponentLogger } from '../logger.ts'
import { DisposedError, errorMessage } from '../errors.ts'
import type { Service, StartOptions } from '../service.ts'
import { commitEvent, warrantEvent } from './kinds.ts'
import { auditLog, type AuditLog, type AuditLogInit } from './log.ts'
import { auditShipper, type AuditShipper, type AuditShipperInit } from './shipper.ts'
import type { AuditEvent, AuditRecord, AuditShipperStats } from './types.ts'

export * from './types.ts'
export type { AuditLog } from './log.ts'
export type { AuditShipper, AuditShipperInit, BackoffOptions } from './shipper.ts'
export { verifyChain } from './verify.ts'

export interface AuditInit extends AuditLogInit, Partial<Omit<AuditShipperInit, 'url'>> {
  /** ship the outbox to this Postgres database (`--audit-db`). @default none: the outbox is the audit log */
  url?: string
  /** record zome calls and warrants through the conductor's hooks. @default true */
  hooks?: boolean
}

export interface AuditComponents {
  conductor: Pick<EmbeddedConductor, 'database' | 'onCommitting' | 'onWarrantIssued'>
  keystore: Pick<Keystore, 'sign' | 'primary'>
  logger: ComponentLogger
}

export interface AuditStats {
  /** the outbox's last record, null when empty */
  head: { seq: number, hash: string } | null
  /** the highest seq Postgres has acknowledged (0: none, or no shipper) */
  shipped_seq: number
  /** the shipper's figures; null without `url` */
  shipper: AuditShipperStats | null
}

export interface AuditService extends Service {
  readonly log: AuditLog
  /** undefined without `url` */
  readonly shipper: AuditShipper | undefined
  /** append a record (joins the caller's transaction of the conductor's database, if one is open) */
  append: (event: AuditEvent) => AuditRecord
  stats: () => AuditStats
}

class Audit implements AuditService {
  readonly log: AuditLog
  readonly shipper: AuditShipper | undefined
  private readonly init: AuditInit
  private readonly c: AuditComponents
  private readonly logger: ComponentLogger
  private offs: Array<() => void> = []
  private stopped = false

  constructor (init: AuditInit, components: AuditComponents) {
    this.init = init
    this.c = components
    this.logger = components.logger.forComponent('flexnode:audit')
    this.log = auditLog({ clock: init.clock })({ db: components.conductor.database, keystore: components.keystore, agent: components.keystore.primary.agentPubKey })
    this.shipper = init.url === undefined
      ? undefined
      : auditShipper({ url: init.url, batchSize: init.batchSize, intervalMs: init.intervalMs, backoff: init.backoff, sink: init.sink })({ log: this.log, logger: components.logger })
  }

  append (event: AuditEvent): AuditRecord {
    if (this.stopped) throw new DisposedError('audit')
    return this.log.append(event)
  }

  stats (): AuditStats {
    return { head: this.log.head(), shipped_seq: this.log.shippedSeq(this.init.sink), shipper: this.shipper?.stats() ?? null }
  }

  async start (options?: StartOptions): Promise<void> {
    if (this.stopped) throw new DisposedError('audit')
    if (this.init.hooks !== false && this.offs.length === 0) {
      // inside the commit's transaction: a throw here fails the zome call, as it must (no action without its record)
      this.offs.push(this.c.conductor.onCommitting(event => {
        const e = commitEvent(event)
        if (e !== undefined) this.log.append(e)
      }))
      this.offs.push(this.c.conductor.onWarrantIssued(event => { this.log.append(warrantEvent(event)) }))
    }
    const v = this.log.head()
    this.logger.info({ records: v?.seq ?? 0, ship_to: this.shipper?.toString() ?? null }, 'audit log open')
    try {
      await this.shipper?.start(options)
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'the audit database cannot be used')
      throw err
    }
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const off of this.offs) off()
    this.offs = []
    await this.shipper?.stop()
    this.log.dispose()
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }
}

/** The audit service: the log always, the shipper with `url`. Create it right after the conductor. */
export function audit (init: AuditInit = {}): (components: AuditComponents) => AuditService {
  return (components) => new Audit(init, components)
}
