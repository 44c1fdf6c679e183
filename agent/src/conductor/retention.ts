/**
 * Retention per network (design §9.4): what a node keeps of the DHT it holds for others.
 *
 * - `permanent` (mainnet): everything, forever.
 * - `prune` (testnet, 30 days by default): a pass every `intervalMs` drops records older than
 *   `maxAgeMs` (by action timestamp) except live state: each entry's newest live version and
 *   its original, live links, each author's newest action before the horizon (its chain head
 *   when it wrote nothing since, and the link a late joiner validates newer actions from),
 *   whatever those depend on, and the deletes of what is kept. This node's own chains, rejected
 *   records and warrants are never pruned: its own old records only leave the anti-entropy
 *   summary, so nodes that pruned the same records agree at once. Records past the horizon that
 *   arrive by gossip or sync and would not be kept are dropped and counted, so a peer that holds
 *   more (or has not pruned yet) cannot bring them back (see `DhtSpace`).
 * - `session` (local): what the node holds for other agents does not outlive its process: it is
 *   forgotten when the node starts (after a crash) and when it stops, and re-synced from peers.
 *   The node's key and source chains persist, so a restart never looks like a fork.
 *
 * ```ts
 * const retention = dhtRetention({ mode: 'prune', maxAgeMs: 30 * DAY_MS })({ store, spaces: () => cells.spaces(), logger })
 * await retention.start()          // a first pass now (in the background), then one every hour
 * await retention.prune()          // { deleted, excluded }
 * await retention.stop()
 * ```
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { periodic, type Periodic } from '../background.ts'
import { errorMessage, InvalidInputError } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import type { DhtSpace } from './space.ts'
import type { ConductorStore } from './store.ts'

export const DAY_MS = 24 * 60 * 60 * 1000
/** ms between pruning passes. */
export const DEFAULT_PRUNE_INTERVAL_MS = 60 * 60 * 1000
/** Records one pruning transaction removes at most; a pass runs as many as it needs, yielding between them. */
export const PRUNE_BATCH = 500

export type RetentionPolicy =
  | { mode: 'permanent' }
  /** `maxAgeMs`: the horizon's age; `intervalMs`: between passes. @default DEFAULT_PRUNE_INTERVAL_MS */
  | { mode: 'prune', maxAgeMs: number, intervalMs?: number }
  | { mode: 'session' }

export const PERMANENT: RetentionPolicy = { mode: 'permanent' }

/** What one pruning pass did: records deleted, and own records that left the summary. */
export interface PruneReport { deleted: number, excluded: number }

export interface DhtRetention extends AsyncDisposable {
  readonly policy: RetentionPolicy
  /** pruning passes completed */
  readonly passes: number
  /** records deleted by pruning passes since start */
  readonly pruned: number
  /** session: forget other agents' data; prune: a pass now, then every `intervalMs`. Idempotent. */
  start: () => Promise<void>
  /** stops the passes; session: forgets other agents' data again (only after a start). Idempotent. */
  stop: () => Promise<void>
  /** one pruning pass over every space now (nothing for the other modes) */
  prune: () => Promise<PruneReport>
}

export interface DhtRetentionComponents {
  store: Pick<ConductorStore, 'forgetOthers'>
  /** the DHT spaces of the running DNAs */
  spaces: () => DhtSpace[]
  logger: ComponentLogger
}

/** A policy from code or configuration, checked: a bad one is an `InvalidInputError`. */
export function checkRetention (policy: RetentionPolicy): RetentionPolicy {
  if (policy.mode === 'permanent' || policy.mode === 'session') return policy
  if (policy.mode !== 'prune') throw new InvalidInputError(`retention.mode must be permanent, prune or session, got ${JSON.stringify((policy as { mode: unknown }).mode)}`, { field: 'retention' })
  if (!Number.isSafeInteger(policy.maxAgeMs) || policy.maxAgeMs <= 0) throw new InvalidInputError('retention.maxAgeMs must be a positive whole number of ms', { field: 'retention' })
  if (policy.intervalMs !== undefined && (!Number.isSafeInteger(policy.intervalMs) || policy.intervalMs <= 0)) throw new InvalidInputError('retention.intervalMs must be a positive whole number of ms', { field: 'retention' })
  return policy
}

/** Retention as a service: `dhtRetention(policy)(components)`. */
export function dhtRetention (policy: RetentionPolicy = PERMANENT): (components: DhtRetentionComponents) => DhtRetention {
  const checked = checkRetention(policy)
  return (components) => new Retention(checked, components)
}

class Retention implements DhtRetention {
  readonly policy: RetentionPolicy
  passes = 0
  pruned = 0
  private readonly c: DhtRetentionComponents
  private readonly log: ComponentLogger
  private task: Periodic | undefined
  /** the first pass, started by start() and not waited for there */
  private first: Promise<unknown> | undefined
  /** the pass in progress (passes run one after another) */
  private running: Promise<unknown> = Promise.resolve()
  private started = false
  private stopped = false

  constructor (policy: RetentionPolicy, components: DhtRetentionComponents) {
    this.policy = policy
    this.c = components
    this.log = components.logger.forComponent('flexnode:retention')
  }

  async start (): Promise<void> {
    if (this.started || this.stopped) return
    this.started = true
    const policy = this.policy
    if (policy.mode === 'session') {
      this.forget('start')
    } else if (policy.mode === 'prune') {
      // the first pass starts now but is not waited for: a large backlog must not hold up the start
      this.first = this.prune().catch((err: unknown) => {
        // nothing of a failed batch is written (each is one transaction); the next pass retries
        this.log.warn({ err: errorMessage(err) }, 'a pruning pass failed')
      })
      this.task = periodic({ name: 'dht pruning pass', intervalMs: policy.intervalMs ?? DEFAULT_PRUNE_INTERVAL_MS }, async () => { await this.prune() }, this.log)
    }
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.task?.stop()
    await this.first
    await this.running
    if (this.started && this.policy.mode === 'session') this.forget('stop')
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }

  /** One pass; a pass asked for while another runs starts after it. */
  async prune (): Promise<PruneReport> {
    const pass = this.running.then(async () => await this.pass(), async () => await this.pass())
    this.running = pass.catch(() => undefined)
    return await pass
  }

  private async pass (): Promise<PruneReport> {
    const report: PruneReport = { deleted: 0, excluded: 0 }
    if (this.policy.mode !== 'prune') return report
    for (const space of this.c.spaces()) {
      for (;;) {
        // stop() ends a pass between two batches; what the batches did stays done
        if (this.stopped) return report
        const r = space.prune(PRUNE_BATCH)
        report.deleted += r.deleted
        this.pruned += r.deleted
        report.excluded += r.excluded
        if (!r.more) break
        // a large backlog goes in batches, each its own transaction, so the node keeps serving
        await yieldToLoop()
      }
    }
    this.passes++
    if (report.deleted + report.excluded > 0) this.log.info({ ...report, maxAgeDays: this.policy.maxAgeMs / DAY_MS }, 'pruned DHT records past the horizon')
    return report
  }

  private forget (when: 'start' | 'stop'): void {
    const forgotten = this.c.store.forgetOthers()
    for (const space of this.c.spaces()) space.rebuildSummary()
    if (forgotten > 0) this.log.info({ forgotten, when }, 'session-only network: forgot the records held for other agents')
  }
}
