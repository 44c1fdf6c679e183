/**
 * The scheduler's typed errors. Callers branch on `err.name`; each carries the context it is
 * about (`field`, the audit trail of votes).
 */
import { FlexnodeError } from '../../lib/errors.ts'
import type { ModelVote } from './types.ts'

/** An MOE policy (file, override, network message) failed validation. `field` is its dotted path. */
export class InvalidPolicyError extends FlexnodeError {
  static override readonly name: string = 'InvalidPolicyError'
  /** dotted path of the offending field, e.g. `local_tier.models[2].weight` */
  readonly field: string

  constructor (message: string, options: ErrorOptions & { field: string }) {
    super(message, options)
    this.field = options.field
  }
}

/** An argument of a scheduler function is out of its domain (a vote without a weight…). */
export class InvalidSchedulerInputError extends FlexnodeError {
  static override readonly name: string = 'InvalidSchedulerInputError'
  readonly field: string

  constructor (message: string, options: ErrorOptions & { field: string }) {
    super(message, options)
    this.field = options.field
  }
}

/** Every vote of a fan-out failed (or none was cast): there is nothing to reduce. */
export class NoAnswersError extends FlexnodeError {
  static override readonly name: string = 'NoAnswersError'
  /** the failed votes, for the audit trail */
  readonly model_votes: ModelVote[]

  constructor (model_votes: ModelVote[], message = `no answers to reduce: ${model_votes.length} vote(s), all failed`) {
    super(message)
    this.model_votes = model_votes
  }
}

/** The placement queue already holds `max_queue_depth` requests: this one is refused, not held. */
export class QueueFullError extends FlexnodeError {
  static override readonly name: string = 'QueueFullError'
  /** requests held when this one was refused */
  readonly depth: number
  /** the policy's `scheduling.max_queue_depth` */
  readonly max_queue_depth: number

  constructor (depth: number, max_queue_depth: number, message = `placement queue full: ${depth} request(s) held, max_queue_depth ${max_queue_depth}`) {
    super(message)
    this.depth = depth
    this.max_queue_depth = max_queue_depth
  }
}

/** A valid policy asks for something this scheduler does not do (preemption). `field` is its dotted path. */
export class UnsupportedPolicyError extends FlexnodeError {
  static override readonly name: string = 'UnsupportedPolicyError'
  readonly field: string

  constructor (message: string, options: ErrorOptions & { field: string }) {
    super(message, options)
    this.field = options.field
  }
}
