/**
 * The `memory` operations' schemas, described once: the MCP tools `memory.*`
 * (`agent/src/api/operations.ts`) and the HTTP routes (`routes.ts`) parse with them. They check
 * the shape (known fields, types); the values (a vector's dimensions and finite numbers, k and ef
 * ranges, a filter's form, the batch size) stay the capability's own checks (`validate.ts`), which
 * name the exact element at fault (`points[1].vector[3]`) with `InvalidVectorError`.
 *
 * ```ts
 * const { name, ...config } = parseInput(createCollectionInput, await ctx.readJson(), 'body', invalidInput)
 * ```
 */
import { z } from 'zod'
import { DISTANCES } from './types.ts'

export const collectionName = z.string().describe('the collection\'s name')
export const writeConsistency = z.enum(['one', 'quorum', 'all']).describe('a write waits for one replica of each shard, a majority, or all of them')

const metadataValue = z.union([z.string(), z.number(), z.boolean(), z.null()])
const metadata = z.record(z.string(), metadataValue).describe('flat JSON values; filters match on its keys')
/** a vector: numbers, `dimensions` of them (checked by the capability, which names the element at fault) */
const vector = z.array(z.unknown()).describe('the vector: `dimensions` finite numbers')

export const createCollectionInput = z.strictObject({
  name: collectionName,
  dimensions: z.number().describe('the vectors\' dimensions'),
  distance: z.enum(DISTANCES as ['cosine', 'l2', 'ip']).describe('cosine, l2 or ip'),
  shard_count: z.number().describe('shards. Default 16').optional(),
  replication_factor: z.number().describe('replicas of each shard. Default 2').optional(),
  embedding_model: z.string().describe('the model that embeds text for this collection. Default none: vectors only').optional()
})

export const collection = z.object({
  name: z.string(),
  dimensions: z.number(),
  distance: z.string(),
  shard_count: z.number(),
  replication_factor: z.number(),
  embedding_model: z.string().optional(),
  created_epoch: z.number(),
  created_at: z.number().describe('ms since the Unix epoch')
})

export const point = z.strictObject({
  id: z.string().describe('the point\'s id (an existing id is replaced)'),
  vector: vector.optional(),
  text: z.string().describe('embedded with the collection\'s embedding_model when no vector is given').optional(),
  metadata: metadata.optional()
})

/** `POST /v1/memory/collections/<name>/points`'s body */
export const pointsBody = z.strictObject({
  points: z.array(point).describe('the points to insert or replace (at most 1000)'),
  write_consistency: writeConsistency.optional()
})

export const insertInput = pointsBody.extend({ collection: collectionName })

export const writeOutput = z.object({
  written: z.number().describe('points written'),
  acknowledged: z.number().describe('replicas that acknowledged')
})

/** `POST /v1/memory/collections/<name>/search`'s body */
export const searchBody = z.strictObject({
  vector: vector.optional(),
  text: z.string().describe('embedded with the collection\'s embedding_model').optional(),
  k: z.number().describe('results wanted, 1..1000'),
  ef: z.number().describe('the HNSW search breadth, k..10000. Default max(k, 64)').optional(),
  filter: z.unknown().describe('every key must match: a value by equality, {"in": [...]} any of them').optional()
})

export const searchInput = searchBody.extend({ collection: collectionName })

export const searchOutput = z.object({
  results: z.array(z.object({ id: z.string(), score: z.number(), metadata })),
  partial: z.boolean().describe('some shard had no replica that answered'),
  shards_answered: z.number(),
  shards_total: z.number()
})

/** `get` and `delete`: points by id */
export const idsBody = z.strictObject({ ids: z.array(z.string()).describe('point ids') })
export const deletePointsBody = idsBody.extend({ write_consistency: writeConsistency.optional() })

export const collectionInput = z.strictObject({ name: collectionName })

export const infoOutput = collection.extend({
  epoch: z.number(),
  shards: z.array(z.object({
    shard: z.number(),
    replicas: z.array(z.object({ node_id: z.string(), state: z.string(), live: z.boolean(), count: z.number().optional() })),
    under_replicated: z.boolean()
  })),
  count: z.number().describe('live points'),
  under_replicated: z.boolean()
})

export const listCollectionsOutput = z.object({ collections: z.array(collection) })
export const deleteCollectionOutput = z.object({ name: z.string(), deleted: z.boolean() })
