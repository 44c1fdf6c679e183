/**
 * The `memory` capability over the node's HTTP API. Bodies are checked for their shape (known
 * fields, types) with the operations' schemas (`schemas.ts`, the same the MCP tools use); values (dimensions, finite numbers, k and ef ranges, filters, batch size)
 * are the capability's own checks (`validate.ts`), shared with the library and the CLI. Errors are
 * the server's JSON error body with the typed error's `name`: `UnknownCollectionError` 404,
 * `CollectionExistsError` 409, `InvalidVectorError` 400, `BatchTooLargeError` 413 (with the
 * limit), `NoEmbeddingModelError` 400, `WriteConsistencyError` 503.
 *
 * | route | in | out |
 * |---|---|---|
 * | `POST /v1/memory/collections` | `{name, dimensions, distance, shard_count?, replication_factor?, embedding_model?}` | the collection |
 * | `GET /v1/memory/collections` | | `{collections: [...]}` |
 * | `GET /v1/memory/collections/<name>` | | the collection with its epoch, shards, replicas (node, state, live, count), count, under_replicated |
 * | `DELETE /v1/memory/collections/<name>` | | `{name, deleted: true}` |
 * | `POST /v1/memory/collections/<name>/points` | `{points: [{id, vector?, text?, metadata?}], write_consistency?}` | `{written, acknowledged}` |
 * | `POST /v1/memory/collections/<name>/search` | `{vector? \| text?, k, ef?, filter?}` | `{results: [{id, score, metadata}], partial, shards_answered, shards_total}` |
 * | `POST /v1/memory/collections/<name>/get` | `{ids}` | `{points: [{id, vector, metadata}]}` |
 * | `POST /v1/memory/collections/<name>/delete` | `{ids, write_consistency?}` | `{written, acknowledged}` |
 *
 * ```sh
 * curl -s localhost:8080/v1/memory/collections -H 'content-type: application/json' \
 *   -d '{"name":"docs","dimensions":3,"distance":"cosine"}'
 * curl -s localhost:8080/v1/memory/collections/docs/search -H 'content-type: application/json' \
 *   -d '{"vector":[1,0,0],"k":5,"filter":{"lang":"en"}}'
 * ```
 */
import type { z } from 'zod'
import { invalidInput, parseInput } from '../api/validate.ts'
import { sendJson } from '../http/body.ts'
import type { HttpRoutes, RequestContext } from '../http/types.ts'
import { createCollectionInput, deletePointsBody, idsBody, pointsBody, searchBody } from './schemas.ts'
import { MAX_BATCH } from './validate.ts'
import { BatchTooLargeError, type CollectionConfig, type Filter, type PointInput, type VectorMemory, type WriteConsistency } from './types.ts'

/** Largest body of a points request: 1,000 points of 4,096 numbers written out in JSON, with their metadata. */
export const POINTS_MAX_BODY_BYTES = 96 * 1_048_576

const body = <S extends z.ZodType>(schema: S, value: unknown): z.output<S> => parseInput(schema, value, 'body', invalidInput)
const consistency = (wc: WriteConsistency | undefined): { write_consistency?: WriteConsistency } => wc === undefined ? {} : { write_consistency: wc }

export function memoryRoutes (c: { memory: VectorMemory }): HttpRoutes {
  const name = (ctx: RequestContext): string => ctx.params[0]!

  return {
    paths: {
      '/v1/memory/collections': {
        GET: async ({ res }) => { sendJson(res, 200, { collections: await c.memory.listCollections() }) },
        POST: async ({ res, readJson }) => {
          sendJson(res, 201, await c.memory.createCollection(body(createCollectionInput, await readJson()) as CollectionConfig))
        }
      }
    },
    patterns: [
      {
        pattern: /^\/v1\/memory\/collections\/([^/]+)$/,
        methods: {
          GET: async (ctx) => { sendJson(ctx.res, 200, await c.memory.describeCollection(name(ctx))) },
          DELETE: async (ctx) => {
            await c.memory.deleteCollection(name(ctx))
            sendJson(ctx.res, 200, { name: name(ctx), deleted: true })
          }
        }
      },
      {
        pattern: /^\/v1\/memory\/collections\/([^/]+)\/points$/,
        methods: {
          POST: async (ctx) => {
            const json = await ctx.readJson({ maxBytes: POINTS_MAX_BODY_BYTES })
            // the batch limit is checked before each point (a 413 names the limit)
            const given = (json as { points?: unknown } | null)?.points
            if (Array.isArray(given) && given.length > MAX_BATCH) throw new BatchTooLargeError(given.length, MAX_BATCH)
            const { points, write_consistency: wc } = body(pointsBody, json)
            sendJson(ctx.res, 200, await c.memory.upsert(name(ctx), points as PointInput[], { ...consistency(wc), signal: ctx.signal }))
          }
        }
      },
      {
        pattern: /^\/v1\/memory\/collections\/([^/]+)\/search$/,
        methods: {
          POST: async (ctx) => {
            const query = body(searchBody, await ctx.readJson())
            sendJson(ctx.res, 200, await c.memory.search(name(ctx), { ...query, vector: query.vector as number[] | undefined, filter: query.filter as Filter | undefined }, { signal: ctx.signal }))
          }
        }
      },
      {
        pattern: /^\/v1\/memory\/collections\/([^/]+)\/get$/,
        methods: {
          POST: async (ctx) => {
            const { ids } = body(idsBody, await ctx.readJson())
            sendJson(ctx.res, 200, { points: await c.memory.get(name(ctx), ids, { signal: ctx.signal }) })
          }
        }
      },
      {
        pattern: /^\/v1\/memory\/collections\/([^/]+)\/delete$/,
        methods: {
          POST: async (ctx) => {
            const { ids, write_consistency: wc } = body(deletePointsBody, await ctx.readJson())
            sendJson(ctx.res, 200, await c.memory.delete(name(ctx), ids, { ...consistency(wc), signal: ctx.signal }))
          }
        }
      }
    ]
  }
}
