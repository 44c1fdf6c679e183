/**
 * Peer inference over the mesh: `/flexstack/<network>/inference/1`.
 *
 * A requester sends one msgpack request (`chat`, `complete` or `embed`, with the model, the
 * input and the generation options); the provider checks its policy, runs the request on its
 * engine and streams `{t: text}` chunks, then one final message `{ok: true, result}` or
 * `{ok: false, error: {name, message}}`, so typed errors (busy, not found, denied…) cross the
 * wire intact. Either side can abort: the requester by aborting its signal (the provider's
 * generation stops), the provider by failing the stream.
 *
 * `PeerInference` routes a request to the best node holding the model (already loaded > live
 * load and queue > measured tokens/s > locality, from the live NodeCapability entries). If the
 * chosen node fails before the first token, the next candidate gets the request; if it fails
 * mid-stream, a streaming caller gets a clear error and a buffered caller with
 * `failover: 'restart'` gets a fresh answer from the next node: never a silent duplicate.
 */
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import { rankProviders, type ProviderCandidate } from '../../../scheduler/index.ts'
import { decode, encode, isPlainObject } from '../conductor/codec.ts'
import { errorMessage } from '../errors.ts'
import { decodeHash } from '../holo/hash.ts'
import type { ComponentLogger } from '../logger.ts'
import { peerIdFromAgentPubKey } from '../mesh/libp2p-node.ts'
import type { MeshNode } from '../mesh/types.ts'
import { createAdmission, mergePolicies, type ProviderPolicy } from './admission.ts'
import { SHARED_POLICY_TTL_MS } from './constants.ts'
import {
  BusyError, DeadlineExceededError, InferenceError, InvalidRequestError, ModelLoadError, ModelNotFoundError, ModelNotLoadedError,
  PolicyDeniedError, PromptTooLongError, RequestAbortedError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type InferenceEngine, type Usage
} from './types.ts'

export type { ProviderPolicy } from './admission.ts'

export const INFERENCE_PROTOCOL = 'inference'


export interface GenerateRequestWire {
  op: 'chat' | 'complete' | 'embed'
  model: string
  messages?: ChatMessage[]
  prompt?: string
  input?: string[]
  options?: Pick<GenerateOptions, 'max_tokens' | 'temperature' | 'seed' | 'stop' | 'deadline_ms' | 'clamp_max_tokens'>
  trace_id?: string
}

const ERRORS: Record<string, new (message: string) => InferenceError> = {
  BusyError, DeadlineExceededError, InvalidRequestError, ModelLoadError, ModelNotFoundError, ModelNotLoadedError, PolicyDeniedError, PromptTooLongError, RequestAbortedError
}

/** Rebuild a typed error from the wire; unknown names become a plain InferenceError. */
export function errorFromWire (value: unknown, peer: string): InferenceError {
  const e = isPlainObject(value) ? value : {}
  const name = typeof e.name === 'string' ? e.name : 'InferenceError'
  const message = `${typeof e.message === 'string' ? e.message.slice(0, 1000) : 'remote inference failed'} (from ${peer})`
  const Ctor = Object.hasOwn(ERRORS, name) ? ERRORS[name] : undefined
  return Ctor !== undefined ? new Ctor(message) : new InferenceError(message)
}

function checkRequest (value: unknown): GenerateRequestWire {
  if (!isPlainObject(value) || (value.op !== 'chat' && value.op !== 'complete' && value.op !== 'embed') || typeof value.model !== 'string' || value.model.length > 128) {
    throw new InvalidRequestError('a peer inference request is {op: chat|complete|embed, model, ...}')
  }
  const o = value.options
  if (o !== undefined && o !== null && !isPlainObject(o)) throw new InvalidRequestError('options must be a map')
  return value as unknown as GenerateRequestWire
}

export interface InferenceProviderComponents {
  engine: Pick<InferenceEngine, 'chat' | 'complete' | 'embed'>
  mesh: Pick<MeshNode, 'handleStream'>
  logger: ComponentLogger
  /** the mesh-wide access policy from policy_store (`inference-access`), or null for the default */
  sharedPolicy?: () => Promise<ProviderPolicy | null>
}


/** policy_store's `inference-access` document: `{deny?, allow?: node ids (uhCAk…), per_peer_per_minute?}`. */
export function parseAccessPolicy (doc: unknown): ProviderPolicy {
  if (!isPlainObject(doc)) throw new InvalidRequestError('an access policy is a map {deny?, allow?, per_peer_per_minute?}')
  const ids = (v: unknown, field: string): string[] | undefined => {
    if (v === undefined || v === null) return undefined
    if (!Array.isArray(v) || v.length > 10_000) throw new InvalidRequestError(`${field} must be a list of node ids`)
    return v.map((id) => {
      try {
        return peerIdFromAgentPubKey(decodeHash(String(id), 'Agent'))
      } catch {
        throw new InvalidRequestError(`${field} holds ${JSON.stringify(id)}, which is not a node id`)
      }
    })
  }
  const rate = doc.per_peer_per_minute
  if (rate !== undefined && (!Number.isInteger(rate) || (rate as number) < 1)) throw new InvalidRequestError('per_peer_per_minute must be a positive integer')
  return { deny: ids(doc.deny, 'deny'), allow: ids(doc.allow, 'allow'), perPeerPerMinute: rate as number | undefined }
}


/** Serve this node's models to the mesh. */
export async function startInferenceProvider (local: ProviderPolicy, c: InferenceProviderComponents): Promise<void> {
  const log = c.logger.forComponent('flexnode:inference:provider')
  const admission = createAdmission()
  let cached: { at: number, policy: ProviderPolicy | null } = { at: 0, policy: null }
  const current = async (): Promise<ProviderPolicy> => {
    if (c.sharedPolicy !== undefined && Date.now() - cached.at > SHARED_POLICY_TTL_MS) {
      let shared: ProviderPolicy | null = null
      try {
        shared = await c.sharedPolicy()
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'the inference-access policy in policy_store is unusable; applying the local policy only')
      }
      cached = { at: Date.now(), policy: shared }
    }
    return mergePolicies(local, cached.policy)
  }
  const admit = async (peer: string): Promise<void> => {
    admission.admit(peer, await current())
  }
  await c.mesh.handleStream(INFERENCE_PROTOCOL, async (raw, from, responder) => {
    try {
      await admit(from)
      const req = checkRequest(decode(raw))
      const options: GenerateOptions = {
        ...(req.options ?? {}),
        signal: responder.signal,
        onToken: (t) => { void responder.send(encode({ t })).catch(() => {}) }
      }
      let result: unknown
      if (req.op === 'chat') result = await c.engine.chat(req.model, req.messages ?? [], options)
      else if (req.op === 'complete') result = await c.engine.complete(req.model, req.prompt ?? '', options)
      else result = await c.engine.embed(req.model, req.input ?? [], { signal: responder.signal })
      log.debug({ from, op: req.op, model: req.model, trace_id: req.trace_id }, 'served')
      return encode({ ok: true, result })
    } catch (err) {
      const name = err instanceof Error ? err.name : 'InferenceError'
      return encode({ ok: false, error: { name, message: errorMessage(err) } })
    }
  }, { maxRequestBytes: 4 * 1024 * 1024, timeoutMs: 10 * 60 * 1000, idleTimeoutMs: 10 * 60 * 1000 })
}

export interface PeerInferenceComponents {
  mesh: Pick<MeshNode, 'requestStream' | 'peers' | 'peerId'>
  /** the live NodeCapability entries (agent_registry discovery) */
  capabilities: () => Promise<NodeCapability[]>
  logger: ComponentLogger
}

export interface RemoteOptions extends GenerateOptions {
  /** after a mid-stream failure of a buffered request: 'restart' asks the next node. @default 'error' */
  failover?: 'error' | 'restart'
  trace_id?: string
  /** only these nodes (NodeCapability.node_id) */
  nodes?: string[]
}

export interface RemoteResult extends GenerateResult { node_id: string, peer_id: string }

/** Inference on the mesh's nodes, chosen per request; the same calls as the engine. */
export class PeerInference {
  private readonly c: PeerInferenceComponents
  private readonly log: ComponentLogger
  private readonly region: string | undefined

  constructor (components: PeerInferenceComponents, init: { region?: string } = {}) {
    this.c = components
    this.log = components.logger.forComponent('flexnode:inference:peers')
    this.region = init.region
  }

  /** Ranked candidate nodes for a model, excluding this node. */
  async candidates (model: string, only?: string[]): Promise<Array<{ node_id: string, peer_id: string }>> {
    const connected = new Set(this.c.mesh.peers())
    const caps = (await this.c.capabilities()).filter(cap => only === undefined || only.includes(cap.node_id))
    const byId = new Map<string, NodeCapability>()
    const cands: ProviderCandidate[] = []
    for (const cap of caps) {
      let peer: string
      try { peer = peerIdFromAgentPubKey(decodeHash(cap.node_id, 'Agent')) } catch { continue }
      if (peer === this.c.mesh.peerId || !connected.has(peer)) continue
      byId.set(cap.node_id, cap)
      // a live connection is fresher evidence than a heartbeat that aged past the registry's TTL
      const availability = cap.availability === 'offline' ? 'online' : cap.availability
      cands.push({
        node_id: cap.node_id,
        self: false,
        models_loaded: cap.capabilities.inference.models_loaded,
        models_available: cap.capabilities.inference.models_loaded,
        availability,
        load: { cpu_percent: cap.load.cpu_percent, gpu_percent: cap.load.gpu_percent },
        queue_depth: 0,
        tokens_per_second: cap.capabilities.inference.tokens_per_second > 0 ? cap.capabilities.inference.tokens_per_second : null,
        latency_region: cap.network.latency_region
      })
    }
    return rankProviders(cands, { model, region: this.region }).map(c => ({ node_id: c.node_id, peer_id: peerIdFromAgentPubKey(decodeHash(c.node_id, 'Agent')) }))
  }

  private async once (peer: string, req: GenerateRequestWire, o: RemoteOptions, onFirst: () => void): Promise<unknown> {
    const budget = (o.deadline_ms ?? 120_000) + 5000
    const final = await this.c.mesh.requestStream(peer, INFERENCE_PROTOCOL, encode(req), {
      signal: o.signal,
      timeoutMs: budget,
      // the first token may take as long as the whole deadline (a queue, a long prompt)
      idleTimeoutMs: budget,
      onChunk: (chunk) => {
        const msg = decode(chunk)
        if (!isPlainObject(msg) || typeof msg.t !== 'string') return
        onFirst()
        o.onToken?.(msg.t)
      }
    })
    const msg = decode(final)
    if (!isPlainObject(msg)) throw new InferenceError(`malformed answer from ${peer}`)
    if (msg.ok !== true) throw errorFromWire(msg.error, peer)
    return msg.result
  }

  /** Run a request on the best node, moving on to the next one when a node fails before answering. */
  private async route (req: GenerateRequestWire, o: RemoteOptions): Promise<{ result: unknown, node_id: string, peer_id: string }> {
    const candidates = await this.candidates(req.model, o.nodes)
    if (candidates.length === 0) throw new ModelNotFoundError(`no reachable node of the mesh serves model ${JSON.stringify(req.model)}`)
    let last: unknown
    for (const cand of candidates) {
      let started = false
      try {
        const result = await this.once(cand.peer_id, req, o, () => { started = true })
        return { result, ...cand }
      } catch (err) {
        last = err
        if (o.signal?.aborted === true) throw new RequestAbortedError('the request was aborted')
        // a typed refusal that another node would repeat (bad input) ends the attempt
        if (err instanceof InvalidRequestError || err instanceof PromptTooLongError) throw err
        if (started && (o.onToken !== undefined || o.failover !== 'restart')) {
          throw new InferenceError(`node ${cand.node_id} failed mid-answer: ${errorMessage(err)}`, { cause: err })
        }
        this.log.info({ node: cand.node_id, err: errorMessage(err), started }, 'inference failed over to the next node')
      }
    }
    throw last instanceof InferenceError ? last : new InferenceError(`every node failed: ${errorMessage(last)}`, { cause: last })
  }

  async chat (model: string, messages: ChatMessage[], o: RemoteOptions = {}): Promise<RemoteResult> {
    const { result, node_id: nodeId, peer_id: peerId } = await this.route({ op: 'chat', model, messages, options: wireOptions(o), trace_id: o.trace_id }, o)
    return { ...(result as GenerateResult), node_id: nodeId, peer_id: peerId }
  }

  async complete (model: string, prompt: string, o: RemoteOptions = {}): Promise<RemoteResult> {
    const { result, node_id: nodeId, peer_id: peerId } = await this.route({ op: 'complete', model, prompt, options: wireOptions(o), trace_id: o.trace_id }, o)
    return { ...(result as GenerateResult), node_id: nodeId, peer_id: peerId }
  }

  async embed (model: string, input: string[], o: { signal?: AbortSignal } = {}): Promise<{ model: string, embeddings: number[][], usage: Usage }> {
    const { result } = await this.route({ op: 'embed', model, input }, o)
    return result as { model: string, embeddings: number[][], usage: Usage }
  }
}

function wireOptions (o: GenerateOptions): GenerateRequestWire['options'] {
  const out: NonNullable<GenerateRequestWire['options']> = {}
  if (o.max_tokens !== undefined) out.max_tokens = o.max_tokens
  if (o.temperature !== undefined) out.temperature = o.temperature
  if (o.seed !== undefined) out.seed = o.seed
  if (o.stop !== undefined) out.stop = o.stop
  if (o.deadline_ms !== undefined) out.deadline_ms = o.deadline_ms
  if (o.clamp_max_tokens === true) out.clamp_max_tokens = true
  return out
}
