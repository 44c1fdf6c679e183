/**
 * `flexnode pin`, `flexnode get`, `flexnode artifacts`, `flexnode models pull|publish`: the
 * artifacts capability of the node running on a data dir, through its HTTP API.
 *
 * ```
 * flexnode pin build.tar --cid-version 1        # progress on stderr, then the CID
 * flexnode get bafy… -o build.tar               # from this node or the mesh, verified
 * flexnode artifacts                            # CID, name, size, producer of every record
 * flexnode artifacts providers bafy…            # who has it, live or not
 * flexnode models publish tiny-llama            # → its CID
 * flexnode models pull bafy… --load             # on another node: fetched, checked, loaded
 * ```
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { rename, rm, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ArtifactsOptions, GetOptions, ModelsOptions, PinOptions } from '../config.ts'
import { FlexnodeError } from '../errors.ts'
import type { ModelInfo } from '../inference/types.ts'
import { NodeApi, printJson } from './inference.ts'
import { formatBytes, Progress } from './progress.ts'
import { renderTable, shortId } from './runtime.ts'

const writeOut = (text: string): void => { process.stdout.write(text) }
const progressBar = (label: string, verb: string): Progress => Progress.onStderr(label, verb)

/** A stream of `source` that reports the share of `total` bytes it has passed on. */
function counted (source: AsyncIterable<Uint8Array>, total: number, progress: Progress): Readable {
  let bytes = 0
  return Readable.from((async function * () {
    for await (const chunk of source) {
      bytes += chunk.byteLength
      if (total > 0) progress.update(bytes / total)
      yield chunk
    }
  })())
}

interface AddAnswer { cid: string, size: number, sha256: string, record: string }
interface RecordAnswer { cid: string, name: string, size: number, sha256: string, media_type: string, producer: string, replication: { min: number, max: number } }

export async function pinCommand (opts: PinOptions): Promise<number> {
  const size = (await stat(opts.file).catch(() => { throw new FlexnodeError(`cannot read ${opts.file}: no such file`) })).size
  const api = await NodeApi.connect(opts)
  const q = new URLSearchParams({ name: opts.name ?? basename(opts.file) })
  if (opts.mediaType !== undefined) q.set('media_type', opts.mediaType)
  if (opts.cidVersion !== undefined) q.set('cid_version', String(opts.cidVersion))
  if (opts.rawLeaves === true) q.set('raw_leaves', 'true')
  if (opts.chunker !== undefined) q.set('chunker', opts.chunker)
  if (opts.min !== undefined) q.set('min', String(opts.min))
  if (opts.max !== undefined) q.set('max', String(opts.max))
  const progress = progressBar(basename(opts.file), 'adding')
  let added: AddAnswer
  try {
    const body = Readable.toWeb(counted(createReadStream(opts.file), size, progress)) as ReadableStream<Uint8Array>
    const res = await api.send('POST', `/v1/artifacts?${q.toString()}`, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body })
    added = await res.json() as AddAnswer
  } finally {
    progress.finish()
  }
  if (opts.json) printJson(added)
  else writeOut(`${added.cid}\n`)
  return 0
}

export async function getCommand (opts: GetOptions): Promise<number> {
  const api = await NodeApi.connect(opts)
  const res = await api.send('GET', `/v1/artifacts/${encodeURIComponent(opts.cid)}`, {})
  const total = Number(res.headers.get('content-length') ?? 0)
  if (res.body === null) throw new FlexnodeError('the node sent no body')
  const progress = progressBar(shortId(opts.cid), 'fetching')
  try {
    const source = counted(res.body as AsyncIterable<Uint8Array>, total, progress)
    if (opts.output === undefined) {
      await pipeline(source, process.stdout)
    } else {
      // written beside the target and renamed when whole: a failed fetch leaves no half file
      const part = `${opts.output}.part`
      try {
        await pipeline(source, createWriteStream(part))
        await rename(part, opts.output)
      } catch (err) {
        await rm(part, { force: true })
        throw err
      }
    }
  } finally {
    progress.finish()
  }
  if (opts.output !== undefined) {
    if (opts.json) printJson({ cid: opts.cid, output: opts.output, size: total })
    else process.stderr.write(`wrote ${formatBytes(total)} to ${opts.output}\n`)
  }
  return 0
}

export async function artifactsCommand (opts: ArtifactsOptions): Promise<number> {
  const api = await NodeApi.connect(opts)
  if (opts.action === 'list') {
    const { artifacts } = await api.json<{ artifacts: RecordAnswer[] }>('GET', `/v1/artifacts${opts.limit === undefined ? '' : `?limit=${opts.limit}`}`)
    if (opts.json) printJson({ artifacts })
    else if (artifacts.length === 0) writeOut('no artifacts recorded in the mesh (flexnode pin <file> adds one)\n')
    else writeOut(renderTable(['CID', 'NAME', 'SIZE', 'TYPE', 'PRODUCER', 'MIN/MAX'], artifacts.map(a => [a.cid, a.name, formatBytes(a.size), a.media_type, shortId(a.producer), `${a.replication.min}/${a.replication.max}`])))
    return 0
  }
  const path = `/v1/artifacts/${encodeURIComponent(opts.cid)}`
  if (opts.action === 'providers') {
    const answer = await api.json<{ cid: string, providers: Array<{ node: string, since: number, live: boolean }>, live: number }>('GET', `${path}/providers`)
    if (opts.json) printJson(answer)
    else writeOut(answer.providers.length === 0 ? `no provider of ${opts.cid}\n` : renderTable(['NODE', 'LIVE', 'SINCE'], answer.providers.map(p => [p.node, p.live ? 'yes' : 'no', new Date(p.since).toISOString()])))
    return 0
  }
  const answer = await api.json<{ cid: string, pinned: boolean }>(opts.action === 'pin' ? 'POST' : 'DELETE', `${path}/pin`)
  if (opts.json) printJson(answer)
  else writeOut(`${answer.pinned ? 'pinned' : 'unpinned'} ${opts.cid}\n`)
  return 0
}

export async function modelArtifactCommand (opts: Extract<ModelsOptions, { action: 'pull' | 'publish' }>): Promise<number> {
  const api = await NodeApi.connect(opts)
  if (opts.action === 'publish') {
    const published = await api.json<AddAnswer & { model: string }>('POST', '/v1/models/publish', { id: opts.id })
    if (opts.json) printJson(published)
    else writeOut(`published ${published.model} as ${published.cid}\n`)
    return 0
  }
  const res = await api.request('POST', '/v1/models/pull', { cid: opts.cid, load: opts.load, stream: true })
  const progress = progressBar(shortId(opts.cid), 'pulling')
  let pulled: { cid: string, model: ModelInfo, already_present: boolean } | undefined
  try {
    for await (const event of api.events(res)) {
      const e = event as { progress?: { bytes?: unknown, total?: unknown }, pulled?: typeof pulled }
      if (e.progress !== undefined && typeof e.progress.bytes === 'number' && typeof e.progress.total === 'number' && e.progress.total > 0) progress.update(e.progress.bytes / e.progress.total)
      else if (e.pulled !== undefined) pulled = e.pulled
    }
  } finally {
    progress.finish()
  }
  if (pulled === undefined) throw new FlexnodeError(`the node ended the pull of ${opts.cid} without the model`)
  if (opts.json) printJson(pulled)
  else writeOut(`${pulled.already_present ? 'already had' : 'pulled'} ${pulled.model.id}${pulled.model.loaded ? ' (loaded)' : ''}\n`)
  return 0
}
