/**
 * The `artifacts` capability over the node's HTTP API. Uploads stream into the store as they
 * arrive (never buffered whole), up to `maxUploadBytes` (10 GiB by default: the JSON routes' small
 * limit does not apply); downloads stream from the store, verified block by block, with `Range`
 * support. Errors are the server's JSON error body with the typed error's `name`:
 * `InvalidCidError` and `InvalidImportOptionsError` 400, `ContentNotFoundError` 404,
 * `ContentMismatchError` and `ArtifactIntegrityError` 502, `PayloadTooLargeError` 413,
 * `RangeNotSatisfiableError` 416. Query strings and JSON bodies are parsed with the operations'
 * schemas (`schemas.ts`, the same the MCP tools use).
 *
 * | route | in | out |
 * |---|---|---|
 * | `POST /v1/artifacts?name=&media_type=&cid_version=0\|1&raw_leaves=&chunker=size-N&pin=&min=&max=` | the bytes (`pin=false`: recorded, not pinned here) | `{cid, size, sha256, record}` |
 * | `GET /v1/artifacts` | `?limit=` | `{artifacts: [record…]}` |
 * | `GET /v1/artifacts/<cid>` | `Range: bytes=a-b` optional | the bytes (206 for a range) |
 * | `GET /v1/artifacts/<cid>/providers` | | `{cid, providers: [{node, since, live}], live}` |
 * | `GET /v1/artifacts/<cid>/record` | | the record (404 when none) |
 * | `POST /v1/artifacts/<cid>/pin` | | `{cid, pinned: true}` |
 * | `DELETE /v1/artifacts/<cid>/pin` | | `{cid, pinned: false}` |
 * | `POST /v1/models/pull` | `{cid, load?, stream?}` | SSE `{"progress": {bytes, total}}` events, then `{"pulled": {cid, model, already_present}}` and `[DONE]`; `stream: false`: the result as JSON |
 * | `POST /v1/models/publish` | `{id}` | `{cid, size, sha256, record, model}` |
 *
 * ```sh
 * curl -s --data-binary @model.gguf 'localhost:8080/v1/artifacts?name=model.gguf&cid_version=1'
 * curl -s localhost:8080/v1/artifacts/bafy…/providers
 * curl -s -r 0-1023 localhost:8080/v1/artifacts/bafy… -o head.bin
 * ```
 */
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { z } from 'zod'
import { queryObject } from '../api/query.ts'
import { invalidInput, parseInput } from '../api/validate.ts'
import { FlexnodeError, InvalidInputError } from '../errors.ts'
import { sendJson } from '../http/body.ts'
import { streamFailure } from '../http/routes/openai.ts'
import { PayloadTooLargeError } from '../http/openai.ts'
import type { HttpRoutes, RequestContext } from '../http/types.ts'
import { DEFAULT_MAX_UPLOAD_BYTES } from './constants.ts'
import { parseImportQuery } from './import-options.ts'
import type { AddArtifactOptions, ArtifactService } from './index.ts'
import type { ModelArtifacts } from './models.ts'
import { ArtifactNotRecordedError } from './types.ts'
import { listQuery, publishModelInput, pullModelBody, uploadQuery } from './schemas.ts'

export interface ArtifactRoutesInit {
  /** largest upload, bytes. @default 10 GiB */
  maxUploadBytes?: number
}

/** A `Range` header this artifact cannot satisfy. */
export class RangeNotSatisfiableError extends FlexnodeError {
  static override readonly name = 'RangeNotSatisfiableError'
  readonly size: number

  constructor (range: string, size: number) {
    super(`the range ${JSON.stringify(range.slice(0, 100))} does not fit the artifact's ${size} bytes`)
    this.size = size
  }
}

/** a pull stream sends at most one progress event this often */
const PROGRESS_EVERY_MS = 200

const parse = <S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> => parseInput(schema, value, root, invalidInput)
/** the query string, checked by `schema` */
const query = <S extends z.ZodType>(ctx: RequestContext, schema: S): z.output<S> => parse(schema, queryObject(ctx.req.url, invalidInput), 'query')
const noQuery = z.strictObject({})

/** Parses `bytes=a-b`, `bytes=a-`, `bytes=-n` of a `size`-byte artifact (one range only). */
export function parseRange (header: string, size: number): { offset: number, length: number } {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m === null || (m[1] === '' && m[2] === '')) throw new RangeNotSatisfiableError(header, size)
  let start: number
  let end: number
  if (m[1] === '') {
    const n = Number(m[2])
    start = Math.max(0, size - n)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end || start >= size) throw new RangeNotSatisfiableError(header, size)
  return { offset: start, length: end - start + 1 }
}

/** The request body as it arrives, failing with 413 past `max` bytes. */
async function * body (ctx: RequestContext, max: number): AsyncGenerator<Uint8Array> {
  const declared = Number(ctx.req.headers['content-length'])
  if (Number.isFinite(declared) && declared > max) throw new PayloadTooLargeError(max)
  let total = 0
  for await (const chunk of ctx.req) {
    const bytes = chunk as Buffer
    total += bytes.byteLength
    if (total > max) throw new PayloadTooLargeError(max)
    yield new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
}

export function artifactRoutes (init: ArtifactRoutesInit, c: { artifacts: ArtifactService, models?: ModelArtifacts }): HttpRoutes {
  const maxUpload = init.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
  const { artifacts } = c
  const models = (): ModelArtifacts => {
    if (c.models === undefined) throw new InvalidInputError('this node has no models dir', { field: 'model' })
    return c.models
  }

  const upload = async (ctx: RequestContext): Promise<void> => {
    const { name, min, max, media_type: mediaType, ...q } = query(ctx, uploadQuery)
    const { pin, ...imp } = parseImportQuery({ cid_version: q.cid_version ?? null, raw_leaves: q.raw_leaves ?? null, chunker: q.chunker ?? null, pin: q.pin ?? null })
    const options: AddArtifactOptions = { ...imp, name, signal: ctx.signal }
    if (mediaType !== undefined) options.media_type = mediaType
    if (min !== undefined || max !== undefined) options.replication = { min: min ?? max ?? 1, max: max ?? Math.max(min ?? 1, 1) }
    if (pin !== undefined) options.pin = pin
    sendJson(ctx.res, 200, await artifacts.add(body(ctx, maxUpload), options))
  }

  const list = async (ctx: RequestContext): Promise<void> => {
    const { limit } = query(ctx, listQuery)
    sendJson(ctx.res, 200, { artifacts: await artifacts.records({ limit }) })
  }

  const download = async (ctx: RequestContext): Promise<void> => {
    query(ctx, noQuery)
    const cid = ctx.params[0]!
    const stat = await artifacts.stat(cid, { signal: ctx.signal })
    const range = ctx.req.headers.range
    const { offset, length } = range === undefined ? { offset: 0, length: stat.size } : parseRange(range, stat.size)
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-length': length,
      'accept-ranges': 'bytes',
      etag: `"${stat.cid}"`,
      'cache-control': 'public, max-age=31536000, immutable'
    }
    if (range !== undefined) headers['content-range'] = `bytes ${offset}-${offset + length - 1}/${stat.size}`
    const source = artifacts.get(cid, { offset, length, signal: ctx.signal })
    // the first block is fetched before the head is sent, so a missing or mismatching block is
    // still a JSON error; later failures cut the body short (its content-length tells the client)
    const it = source[Symbol.asyncIterator]()
    const first = await it.next()
    ctx.res.writeHead(range === undefined ? 200 : 206, headers)
    await pipeline(Readable.from((async function * () {
      if (first.done !== true) yield first.value
      for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value
    })()), ctx.res, { signal: ctx.signal })
  }

  const providers = async (ctx: RequestContext): Promise<void> => {
    query(ctx, noQuery)
    const cid = ctx.params[0]!
    const list = await artifacts.providers(cid)
    sendJson(ctx.res, 200, { cid, providers: list, live: list.filter(p => p.live).length })
  }

  const record = async (ctx: RequestContext): Promise<void> => {
    query(ctx, noQuery)
    const r = await artifacts.record(ctx.params[0]!)
    if (r === undefined) throw new ArtifactNotRecordedError(ctx.params[0]!)
    sendJson(ctx.res, 200, r)
  }

  const pin = async (ctx: RequestContext): Promise<void> => {
    query(ctx, noQuery)
    await artifacts.pin(ctx.params[0]!, { signal: ctx.signal })
    sendJson(ctx.res, 200, { cid: ctx.params[0], pinned: true })
  }

  const unpin = async (ctx: RequestContext): Promise<void> => {
    query(ctx, noQuery)
    await artifacts.unpin(ctx.params[0]!, { signal: ctx.signal })
    sendJson(ctx.res, 200, { cid: ctx.params[0], pinned: false })
  }

  const pull = async (ctx: RequestContext): Promise<void> => {
    const body = parse(pullModelBody, await ctx.readJson(), 'body')
    const cid = body.cid
    const load = body.load === true
    if (body.stream === false) {
      sendJson(ctx.res, 200, await models().pull(cid, { load, signal: ctx.signal }))
      return
    }
    // opened by the first progress event, so a pull that fails at once (no record, not a model)
    // still gets its own status
    const events = ctx.eventStream()
    let lastAt = 0
    try {
      const pulled = await models().pull(cid, {
        load,
        signal: ctx.signal,
        onProgress: (p) => {
          const now = Date.now()
          if (now - lastAt < PROGRESS_EVERY_MS) return
          lastAt = now
          events.open()
          events.send({ progress: p })
        }
      })
      events.open()
      events.send({ pulled })
    } catch (err: unknown) {
      if (!events.isOpen) throw err
      await streamFailure(ctx, events, err)
      return
    }
    events.send('[DONE]')
    await events.end()
  }

  const publish = async (ctx: RequestContext): Promise<void> => {
    const { id } = parse(publishModelInput, await ctx.readJson(), 'body')
    sendJson(ctx.res, 200, await models().publish(id, { signal: ctx.signal }))
  }

  return {
    paths: { '/v1/artifacts': { GET: list, POST: upload }, '/v1/models/pull': { POST: pull }, '/v1/models/publish': { POST: publish } },
    patterns: [
      { pattern: /^\/v1\/artifacts\/([^/]+)$/, methods: { GET: download } },
      { pattern: /^\/v1\/artifacts\/([^/]+)\/providers$/, methods: { GET: providers } },
      { pattern: /^\/v1\/artifacts\/([^/]+)\/record$/, methods: { GET: record } },
      { pattern: /^\/v1\/artifacts\/([^/]+)\/pin$/, methods: { POST: pin, DELETE: unpin } }
    ]
  }
}
