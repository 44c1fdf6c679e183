/**
 * PlacementQueue: the requests that cannot be placed yet (design §10.5, `scheduling`): "a queue
 * bounded by `max_queue_depth` holds requests that cannot be placed yet; `preemption_enabled:
 * false` is honoured".
 *
 * - `enqueue` validates the request (as `pickNode` would) and holds it, or refuses it with a
 *   `QueueFullError` once `max_queue_depth` requests are held (0: every request is refused);
 * - `drain(index)` goes through the held requests in arrival order (§10.5 gives requests no
 *   priority, so there is one FIFO), places each that fits now on the node `index.pick` gives,
 *   leasing its demand there before the next is tried, and keeps the others, in their order. A
 *   request that does not fit does not block those behind it that do; it stays at the front
 *   (a large request can wait while smaller ones pass it).
 * - Preemption: the queue only ever places into free capacity; it never evicts or shrinks a
 *   lease. `preemption_enabled: true` is refused (`UnsupportedPolicyError`) rather than silently
 *   ignored: evicting running leases needs a priority to evict by, which §10.5 does not define.
 *
 * No clock: when to drain (a lease released, a node joining, a timer) is the caller's choice.
 *
 * ```ts
 * const queue = new PlacementQueue(policy)
 * if (index.pick(request, policy) === null) queue.enqueue(request)   // QueueFullError past max_queue_depth
 * // … a lease ends: index.release(nodeId, demand), then
 * for (const placed of queue.drain(index)) start(placed.request, placed.node_id, placed.demand)
 * ```
 */
import { DEFAULT_COMPUTE_POLICY, type ComputePolicy, type SchedulingAlgorithm } from './compute-policy.ts'
import { QueueFullError, UnsupportedPolicyError } from './errors.ts'
import { resolveRequest, type PlacementRequest, type Resources } from './placement.ts'
import type { PlacementIndex } from './placement-index.ts'

/** One request the queue placed. */
export interface QueuedPlacement {
  /** the request as enqueued */
  request: PlacementRequest
  node_id: string
  /** what was leased on the node: the requirements with the class's defaults filled in */
  demand: Resources
}

export interface PlacementQueueOptions {
  /** place with this algorithm instead of the policy's (as `pickNode`'s option) */
  algorithm?: SchedulingAlgorithm
}

/** The requests waiting for capacity, bounded by the policy's `max_queue_depth`, placed first come first served. */
export class PlacementQueue {
  readonly #policy: ComputePolicy
  readonly #options: PlacementQueueOptions
  #held: PlacementRequest[] = []

  /**
   * @throws {UnsupportedPolicyError} when the policy enables preemption (`field`
   * 'scheduling.preemption_enabled')
   */
  constructor (policy: ComputePolicy = DEFAULT_COMPUTE_POLICY, options: PlacementQueueOptions = {}) {
    if (policy.scheduling.preemption_enabled) {
      throw new UnsupportedPolicyError('scheduling.preemption_enabled: true is not supported: the placement queue never evicts a lease (§10.5 defines no priority to evict by)', { field: 'scheduling.preemption_enabled' })
    }
    this.#policy = policy
    this.#options = { ...options }
  }

  /** Requests held. */
  get depth (): number {
    return this.#held.length
  }

  /** The held requests, oldest first (a copy). */
  pending (): PlacementRequest[] {
    return [...this.#held]
  }

  /**
   * Hold a request until `drain` can place it. Returns the depth with it.
   *
   * @throws {QueueFullError} when `max_queue_depth` requests are already held
   * @throws {InvalidSchedulerInputError} for a request `pickNode` would refuse (it is not held)
   */
  enqueue (request: PlacementRequest): number {
    const max = this.#policy.scheduling.max_queue_depth
    if (this.#held.length >= max) throw new QueueFullError(this.#held.length, max)
    resolveRequest(request, this.#policy)
    this.#held.push(request)
    return this.#held.length
  }

  /**
   * Place, oldest first, every held request that fits now, leasing each on its node in `index`
   * before trying the next; the others stay held, in order. Nothing already leased is evicted.
   */
  drain (index: Pick<PlacementIndex, 'pick' | 'lease'>): QueuedPlacement[] {
    const placed: QueuedPlacement[] = []
    const kept: PlacementRequest[] = []
    for (const request of this.#held) {
      const nodeId = index.pick(request, this.#policy, this.#options)
      if (nodeId === null) {
        kept.push(request)
        continue
      }
      const { demand } = resolveRequest(request, this.#policy)
      index.lease(nodeId, demand)
      placed.push({ request, node_id: nodeId, demand })
    }
    this.#held = kept
    return placed
  }
}
