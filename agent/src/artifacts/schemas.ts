/**
 * The `artifacts` operations' schemas, described once: the MCP tools `artifacts.*`
 * (`agent/src/api/operations.ts`) and the HTTP routes (`routes.ts`) parse with them. Content
 * travels inline only when small (`artifacts.add`, `artifacts.get`: at most
 * `INLINE_CONTENT_MAX_BYTES`); files go over HTTP (`POST /v1/artifacts`, `GET /v1/artifacts/<cid>`),
 * streamed. Names, media types and replication bounds stay the capability's own checks
 * (`checkRecordFields`), import options `parseImportQuery`'s.
 *
 * ```ts
 * const { cid, load } = parseInput(pullModelInput, await ctx.readJson(), 'body', invalidInput)
 * ```
 */
import { z } from 'zod'

/** Largest content `artifacts.add` takes and `artifacts.get` returns inline (1 MiB); larger goes over HTTP. */
export const INLINE_CONTENT_MAX_BYTES = 1_048_576

export const cid = z.string().describe('the artifact\'s CID')
export const cidInput = z.strictObject({ cid })

const importOptions = {
  cid_version: z.union([z.literal(0), z.literal(1)]).describe('the CID version. Default 0 (Kubo\'s)').optional(),
  raw_leaves: z.boolean().describe('leaves as raw blocks. Default true for CIDv1').optional(),
  chunker: z.string().describe('size-N: N bytes per leaf. Default size-262144').optional()
}

export const addInput = z.strictObject({
  name: z.string().describe('the artifact\'s name (a file name)'),
  content: z.string().describe(`the content as UTF-8 text (at most ${INLINE_CONTENT_MAX_BYTES} bytes; larger files over HTTP)`).optional(),
  content_base64: z.string().max(Math.ceil(INLINE_CONTENT_MAX_BYTES / 3) * 4).describe(`the content as base64 (at most ${INLINE_CONTENT_MAX_BYTES} bytes)`).optional(),
  media_type: z.string().describe('type/subtype. Default application/octet-stream').optional(),
  pin: z.boolean().describe('pin it here. Default true (false: recorded, pinned elsewhere by replication)').optional(),
  min: z.int().describe('fewest providers wanted. Default the node\'s (3)').optional(),
  max: z.int().describe('most providers wanted. Default the node\'s (5)').optional(),
  ...importOptions
}).superRefine((v, ctx) => {
  if ((v.content === undefined) === (v.content_base64 === undefined)) ctx.addIssue({ code: 'custom', path: ['content'], message: 'give the content once: content (text) or content_base64' })
  if (v.content !== undefined && Buffer.byteLength(v.content) > INLINE_CONTENT_MAX_BYTES) ctx.addIssue({ code: 'custom', path: ['content'], message: `at most ${INLINE_CONTENT_MAX_BYTES} bytes inline; upload larger files with POST /v1/artifacts` })
})

export const addOutput = z.object({
  cid: z.string(),
  size: z.number().describe('bytes'),
  sha256: z.string(),
  record: z.string().describe('the ArtifactRecord\'s action hash')
})

export const getInput = z.strictObject({
  cid,
  encoding: z.enum(['base64', 'utf8']).describe('how the content comes back. Default base64').optional(),
  max_bytes: z.int().min(1).max(INLINE_CONTENT_MAX_BYTES).describe(`refuse an artifact larger than this. Default ${INLINE_CONTENT_MAX_BYTES}`).optional()
})

export const getOutput = z.object({
  cid: z.string(),
  size: z.number(),
  encoding: z.enum(['base64', 'utf8']),
  content: z.string()
})

export const statOutput = z.object({
  cid: z.string(),
  size: z.number().describe('bytes of the file (0 for a directory)'),
  local: z.boolean().describe('every block is in this node\'s store'),
  type: z.enum(['file', 'raw', 'directory'])
})

export const pinOutput = z.object({ cid: z.string(), pinned: z.boolean() })

export const providersOutput = z.object({
  cid: z.string(),
  providers: z.array(z.object({ node: z.string().describe('agent key (uhCAk…)'), since: z.number().describe('ms since the epoch'), live: z.boolean() })),
  live: z.number().describe('live providers')
})

export const record = z.object({
  cid: z.string(),
  name: z.string(),
  size: z.number(),
  sha256: z.string(),
  media_type: z.string(),
  producer: z.string().describe('the producer\'s agent key (uhCAk…)'),
  produced_by: z.unknown(),
  replication: z.object({ min: z.number(), max: z.number() }),
  created_at: z.number().describe('µs since the epoch')
})

/** `GET /v1/artifacts?limit=` and `artifacts.list` */
export const listInput = z.strictObject({ limit: z.int().min(0).max(1_000_000_000).describe('records at most').optional() })
export const listQuery = z.strictObject({ limit: z.string().regex(/^\d{1,9}$/, 'must be a non-negative integer').transform(Number).optional() })
export const listOutput = z.object({ artifacts: z.array(record) })

/** `POST /v1/artifacts`'s query: the record's fields and the import options, as text */
const queryInt = z.string().regex(/^\d{1,9}$/, 'must be a non-negative integer').transform(Number)
export const uploadQuery = z.strictObject({
  name: z.string({ error: (issue) => issue.input === undefined ? 'an upload needs its name: ?name=<file name>' : undefined }),
  media_type: z.string().optional(),
  cid_version: z.string().optional(),
  raw_leaves: z.string().optional(),
  chunker: z.string().optional(),
  pin: z.string().optional(),
  min: queryInt.optional(),
  max: queryInt.optional()
})

export const pullModelInput = z.strictObject({
  cid: z.string().describe('the model artifact\'s CID'),
  load: z.boolean().describe('load it once placed. Default false').optional()
})
/** `POST /v1/models/pull`'s body: `stream: false` for one JSON answer instead of SSE progress */
export const pullModelBody = pullModelInput.extend({ stream: z.boolean().describe('SSE progress events. Default true').optional() })

const modelInfo = z.object({
  id: z.string(),
  file: z.string(),
  size_bytes: z.number(),
  architecture: z.string(),
  context_length: z.number(),
  loaded: z.boolean()
})

export const pullModelOutput = z.object({
  cid: z.string(),
  model: modelInfo,
  already_present: z.boolean().describe('the file was already here: nothing was fetched')
})

export const publishModelInput = z.strictObject({ id: z.string().describe('the model id (as GET /v1/node/models lists it)') })
export const publishModelOutput = addOutput.extend({ model: z.string() })

export { modelInfo }
