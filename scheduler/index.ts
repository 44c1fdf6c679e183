/**
 * scheduler: the pure algorithms behind placement and MOE inference — no I/O, no clock, no
 * global randomness (chance only through an injected seeded `Rng`).
 *
 * - `parseMoePolicy` / `DEFAULT_MOE_POLICY`: the `ripple-moe` inference policy, validated;
 * - `rankProviders` / `scoreProvider`: which node serves one model, and why;
 * - `planMoe`: which (model, node) pairs answer one `inference.moe_query`;
 * - `reduceWeightedConsensus`: the weighted-consensus reducer over their answers;
 * - `parseComputePolicy` / `DEFAULT_COMPUTE_POLICY`: the `flexstack-compute` policy, validated;
 * - `placeRequest` / `pickNode`: which node takes one resource request, with the reason each
 *   other node was filtered out or how it scored;
 * - `PlacementIndex`: the nodes indexed, kept current as leases change, picking as `pickNode`
 *   without scoring every node (many decisions per second);
 * - `PlacementQueue`: requests waiting for capacity, bounded by `max_queue_depth`, placed first
 *   come first served, never by evicting a lease;
 * - `HashRing` / `placeShards` / `diffPlacement` / `shardOfId`: the consistent-hash ring that
 *   places vector-memory shards on nodes by weight, and what a membership change moves.
 *
 * ```ts
 * import { createSeededRng, parseMoePolicy, planMoe, reduceWeightedConsensus } from './scheduler/index.ts'
 *
 * const policy = parseMoePolicy({ local_tier: { min_parallel: 2, max_parallel: 3 } })
 * const node = { availability: 'online', load: { cpu_percent: 20, gpu_percent: 0 }, tokens_per_second: 40, latency_region: 'eu-west', loaded: true } as const
 * const plan = planMoe({
 *   policy,
 *   task_type: 'code_generation',
 *   available: [
 *     { ...node, model: 'Qwen3-4B', node_id: 'node-a', self: true },
 *     { ...node, model: 'DeepSeek-R1-Distill-Qwen-1.5B', node_id: 'node-b', self: false },
 *     { ...node, model: 'gemma-3n-E2B-it', node_id: 'node-c', self: false }
 *   ],
 *   region: 'eu-west',
 *   rng: createSeededRng(42)
 * })
 * // plan.picks: three distinct models, the two code models first
 *
 * const result = reduceWeightedConsensus([
 *   { model: 'Qwen3-4B', node: 'node-a', text: 'return a + b', weight: 1.0, latency_ms: 900 },
 *   { model: 'DeepSeek-R1-Distill-Qwen-1.5B', node: 'node-b', text: '```ts\nreturn a + b;\n```', weight: 1.1, latency_ms: 1200 },
 *   { model: 'gemma-3n-E2B-it', node: 'node-c', text: 'return a - b', weight: 1.0, latency_ms: 700 }
 * ], { min_agreement: policy.reducer.min_agreement })
 * // result.response === '```ts\nreturn a + b;\n```', result.consensus === true, result.consensus_score ≈ 0.68
 * ```
 */
export {
  DEFAULT_MOE_POLICY,
  SPECIALIZATIONS,
  TASK_TYPES,
  isTaskType,
  parseMoePolicy,
  preferredSpecializations
} from './src/policy.ts'
export type {
  AuditPolicy,
  CloudProviderSpec,
  CloudTier,
  LocalModelSpec,
  LocalTier,
  MoePolicy,
  ReducerPolicy,
  Specialization,
  TaskType
} from './src/policy.ts'
export { compareProviderScores, rankProviders, rankProvidersWithScores, scoreProvider } from './src/routing.ts'
export type { ProviderCandidate, ProviderScore, ProviderScoreKey, Residency, RouteRequest } from './src/routing.ts'
export { moeLoadFactor, moeLocalityFactor, planMoe, toMoeInstances } from './src/moe-planner.ts'
export type { MoeInstance, MoePick, MoePlan, MoePlanInput } from './src/moe-planner.ts'
export { answerSimilarity, normalizeAnswer, reduceWeightedConsensus, responseHash } from './src/reducer.ts'
export type { AnswerCluster, ModelVote, ReduceOptions, ReduceResult, Vote } from './src/reducer.ts'
export { DEFAULT_COMPUTE_POLICY, SCHEDULING_ALGORITHMS, ANY_POOLS, parseComputePolicy } from './src/compute-policy.ts'
export type { AutoscalingPolicy, ComputePolicy, ResourceRequest, SchedulingAlgorithm, SchedulingPolicy, WorkloadClass } from './src/compute-policy.ts'
export { LOCALITY_PREFERENCES, NO_RESOURCES, RESOURCE_DIMENSIONS, RESOURCE_TYPES, fitAfter, pickNode, placeRequest, resolveRequest } from './src/placement.ts'
export type { FilterReason, LocalityPreference, Placement, PlacementCandidate, PlacementNode, PlacementRequest, Requirements, ResourceType, Resources } from './src/placement.ts'
export { PlacementIndex } from './src/placement-index.ts'
export type { PlacementIndexStats } from './src/placement-index.ts'
export { PlacementQueue } from './src/placement-queue.ts'
export type { PlacementQueueOptions, QueuedPlacement } from './src/placement-queue.ts'
export { DEFAULT_VNODES, HashRing, diffPlacement, placeShards, ringHash, shardOfId } from './src/ring.ts'
export type { HashRingOptions, PlaceShardsInput, PlacementChange, RingMember } from './src/ring.ts'
export { createSeededRng } from './src/rng.ts'
export type { Rng } from './src/rng.ts'
export { InvalidPolicyError, InvalidSchedulerInputError, NoAnswersError, QueueFullError, UnsupportedPolicyError } from './src/errors.ts'
export * as SCHEDULER_CONSTANTS from './src/constants.ts'
export { DEFAULT_REPLICATION_GRACE_MS, rendezvousWeight, replicationDecision } from './src/replication.ts'
export type { ReplicationDecision, ReplicationInput, ReplicationNode } from './src/replication.ts'
