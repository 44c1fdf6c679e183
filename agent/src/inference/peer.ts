/**
 * Peer inference over the mesh: `/flexstack/<network>/inference/1`.
 *
 * A requester sends one msgpack request (`chat`, `complete` or `embed`, with the model, the
 * input, the generation options and a trace id); the provider checks its policy, runs the
 * request on its engine and streams `{t: text}` chunks, each awaited (a slow requester holds the
 * provider's sends back), then one final message `{ok: true, result}`; a failure is the mesh's
 * error frame, so typed errors (busy, not found, denied…) cross the wire with their name. Either side can abort: the requester by aborting its signal (the
 * provider's generation stops), the provider by failing the stream.
 *
 * Progress, not just liveness: while a request waits in the provider's queue, its prompt is
 * evaluated, or between two slow tokens, the provider sends a keep-alive chunk `{k: 1}` whenever
 * it has sent nothing for KEEPALIVE_INTERVAL_MS. The requester's stream deadline is therefore a
 * progress deadline: no frame at all (token or keep-alive) for `progressTimeoutMs` means the
 * provider is frozen, dead or cut off (a busy provider keeps talking, so a long first-token wait
 * in its queue is fine), and the request moves on at once instead of waiting for libp2p pings.
 *
 * `PeerInference` routes each request to the best node holding the model (a real model before a
 * demo one, already loaded > live load and queue depth, counting this node's own requests in
 * flight there, so concurrent requests spread > measured tokens/s > locality). When the chosen
 * node fails:
 * - before any text reached the caller (and always for a non-streaming request, whose caller has
 *   seen nothing), the next holder answers the request afresh;
 * - mid-stream, the next holder continues the answer from the prompt plus the text already sent
 *   (`continue_from`, with max_tokens reduced by the chunks already sent): the caller sees one
 *   answer with no repeated text, or a `ProviderFailedError` when no other holder is left.
 * Every provider failure is logged at `warn` with the peer and the request's trace id.
 */
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'
import { rankProviders, type ProviderCandidate } from '../../../scheduler/index.ts'
import { decode, encode, isPlainObject } from '../conductor/codec.ts'
import { errorMessage } from '../errors.ts'
import { decodeHash, encodeHash } from '../holo/hash.ts'
import type { ComponentLogger } from '../logger.ts'
import { childSpan, formatTraceparent, newTrace, parseTraceparent } from '../trace.ts'
import { agentPubKeyFromPeerId, peerIdFromAgentPubKey } from '../identity/peer-id.ts'
import { MeshBackpressureError, MeshProtocolError, MeshTimeoutError, MessageTooLargeError, RemoteError, type MeshNode } from '../mesh/types.ts'
import { createAdmission, mergePolicies, type ProviderPolicy } from './admission.ts'
import { DEFAULT_MAX_TOKENS, KEEPALIVE_INTERVAL_MS, PROGRESS_TIMEOUT_MS, SHARED_POLICY_TTL_MS } from './constants.ts'
import {
  BusyError, DeadlineExceededError, InferenceError, InvalidRequestError, ModelLoadError, ModelNotFoundError, ModelNotLoadedError,
  PolicyDeniedError, PromptTooLongError, ProviderFailedError, RequestAbortedError,
  type ChatMessage, type GenerateOptions, type GenerateResult, type InferenceEngine, type Usage, type InferenceAudit
} from './types.ts'

export type { ProviderPolicy } from './admission.ts'

/** The agent key (uhCAk…) of a mesh peer, for the audit trail; the peer id itself when it is not an agent's. */
function agentOf (peerId: string): string {
  try {
    return encodeHash(agentPubKeyFromPeerId(peerId))
  } catch {
    return peerId
  }
}

export const INFERENCE_PROTOCOL = 'inference'

/** The generation options a request carries over the wire (nothing else is taken from a peer). */
/** A W3C trace id: 32 lower-case hex digits, not all zeros. */
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/

const WIRE_OPTIONS = ['max_tokens', 'temperature', 'seed', 'stop', 'deadline_ms', 'clamp_max_tokens', 'continue_from'] as const
type WireOptions = Pick<GenerateOptions, typeof WIRE_OPTIONS[number]>

export interface GenerateRequestWire {
  op: 'chat' | 'complete' | 'embed'
  model: string
  messages?: ChatMessage[]
  prompt?: string
  input?: string[]
  options?: WireOptions
  /** the W3C trace id (older nodes send a UUID here and no traceparent) */
  trace_id?: string
  /** the W3C traceparent of this hop (a child span of the requester's) */
  traceparent?: string
  /** served under this inference lease of the requester's (resource_mesh), counted against it */
  allocation_id?: string
}

const ERRORS: ReadonlyMap<string, new (message: string) => InferenceError> = new Map<string, new (message: string) => InferenceError>([
  ['BusyError', BusyError], ['DeadlineExceededError', DeadlineExceededError], ['InvalidRequestError', InvalidRequestError], ['ModelLoadError', ModelLoadError],
  ['ModelNotFoundError', ModelNotFoundError], ['ModelNotLoadedError', ModelNotLoadedError], ['PolicyDeniedError', PolicyDeniedError],
  ['PromptTooLongError', PromptTooLongError], ['RequestAbortedError', RequestAbortedError], ['ProviderFailedError', ProviderFailedError]
])

/** Errors the mesh itself raises on the provider's side (its timeouts, limits, backpressure), not the provider's answer. */
const MESH_ERROR_NAMES: ReadonlySet<string> = new Set([MeshProtocolError.name, MeshTimeoutError.name, MeshBackpressureError.name, MessageTooLargeError.name])

/** Rebuild a typed error from the wire; unknown names become a plain InferenceError. */
export function errorFromWire (value: unknown, peer: string): InferenceError {
  const e = isPlainObject(value) ? value : {}
  const name = typeof e.name === 'string' ? e.name : 'InferenceError'
  const message = `${typeof e.message === 'string' ? e.message.slice(0, 1000) : 'remote inference failed'} (from ${peer})`
  const Ctor = ERRORS.get(name)
  return Ctor !== undefined ? new Ctor(message) : new InferenceError(message)
}

function checkRequest (value: unknown): GenerateRequestWire {
  if (!isPlainObject(value) || (value.op !== 'chat' && value.op !== 'complete' && value.op !== 'embed') || typeof value.model !== 'string' || value.model.length > 128) {
    throw new InvalidRequestError('a peer inference request is {op: chat|complete|embed, model, ...}')
  }
  const o = value.options
  if (o !== undefined && o !== null && !isPlainObject(o)) throw new InvalidRequestError('options must be a map')
  const options: Record<string, unknown> = {}
  // own, known fields only (the engine validates their values)
  if (isPlainObject(o)) for (const k of WIRE_OPTIONS) if (Object.hasOwn(o, k) && o[k] !== undefined && o[k] !== null) options[k] = o[k]
  // the traceparent's trace id when it has a valid one (an invalid one is ignored), else the bare trace_id
  const span = parseTraceparent(typeof value.traceparent === 'string' ? value.traceparent : undefined)
  const trace = span?.traceId ?? (typeof value.trace_id === 'string' ? value.trace_id.slice(0, 128) : undefined)
  const allocation = value.allocation_id
  if (allocation !== undefined && allocation !== null && (typeof allocation !== 'string' || allocation.length > 64)) throw new InvalidRequestError('allocation_id must be an allocation id (uhCkk…)')
  return { ...(value as unknown as GenerateRequestWire), options: options as WireOptions, trace_id: trace, traceparent: span === undefined ? undefined : formatTraceparent(span), allocation_id: typeof allocation === 'string' ? allocation : undefined }
}

export interface InferenceProviderComponents {
  engine: Pick<InferenceEngine, 'chat' | 'complete' | 'embed'>
  mesh: Pick<MeshNode, 'handleStream' | 'unhandle'>
  logger: ComponentLogger
  /** the mesh-wide access policy from policy_store (`inference-access`), or null for the default */
  sharedPolicy?: () => Promise<ProviderPolicy | null>
  /** requests carrying an `allocation_id` are served under that lease (see `InferenceLeases`) */
  leases?: InferenceLeases
  /** records each request served or refused in the audit trail. @default none */
  audit?: InferenceAudit
}

/**
 * The provider's inference leases (`resources`): `check` refuses a request whose lease is not a
 * live inference lease held by the requesting peer (it throws a typed error with the reason);
 * `record` counts what was served against the lease.
 */
export interface InferenceLeases {
  check: (allocationId: string, fromPeer: string) => void
  record: (allocationId: string, usage: { tokens: number, wall_ms: number }) => void
}

export interface InferenceProviderInit {
  /** a keep-alive chunk goes out after this much silence. @default 1000 */
  keepaliveIntervalMs?: number
}

/** policy_store's `inference-access` document: `{deny?, allow?: node ids (uhCAk…), per_peer_per_minute?}`. */
export function parseAccessPolicy (doc: unknown): ProviderPolicy {
  if (!isPlainObject(doc)) throw new InvalidRequestError('an access policy is a map {deny?, allow?, per_peer_per_minute?}')
  const own = (k: string): unknown => Object.hasOwn(doc, k) ? doc[k] : undefined
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
  const rate = own('per_peer_per_minute')
  if (rate !== undefined && (!Number.isInteger(rate) || (rate as number) < 1)) throw new InvalidRequestError('per_peer_per_minute must be a positive integer')
  const policy: ProviderPolicy = { deny: ids(own('deny'), 'deny'), allow: ids(own('allow'), 'allow') }
  if (rate !== undefined) policy.perPeerPerMinute = rate as number
  return policy
}

/** Serve this node's models to the mesh; resolves with the function that stops serving them (removes the protocol). */
export async function startInferenceProvider (local: ProviderPolicy, c: InferenceProviderComponents, init: InferenceProviderInit = {}): Promise<() => Promise<void>> {
  const log = c.logger.forComponent('flexnode:inference:provider')
  const keepaliveMs = init.keepaliveIntervalMs ?? KEEPALIVE_INTERVAL_MS
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
  await c.mesh.handleStream(INFERENCE_PROTOCOL, async (raw, from, responder) => {
    // progress frames: a keep-alive after every KEEPALIVE_INTERVAL_MS without a chunk, from the
    // request's arrival (queue, prompt evaluation, slow tokens) to its end
    let lastSent = Date.now()
    // one send at a time, each awaited: a requester that reads slowly holds the stream back here,
    // and the tokens waiting meanwhile (at most the request's max_tokens) queue in order
    const queue: Uint8Array[] = []
    let pump: Promise<void> | undefined
    const drain = async (): Promise<void> => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await responder.send(next)
    }
    const send = (msg: object): void => {
      lastSent = Date.now()
      queue.push(encode(msg))
      pump ??= drain().finally(() => { pump = undefined })
      pump.catch(() => {}) // a failed send aborts responder.signal, which ends the generation
    }
    const keepalive = setInterval(() => { if (Date.now() - lastSent >= keepaliveMs && pump === undefined) send({ k: 1 }) }, Math.max(10, Math.floor(keepaliveMs / 2)))
    let trace: string | undefined
    try {
      admission.admit(from, await current())
      const req = checkRequest(decode(raw))
      trace = req.trace_id
      if (req.allocation_id !== undefined) {
        if (c.leases === undefined) throw new PolicyDeniedError('this node serves no inference leases')
        try {
          c.leases.check(req.allocation_id, from)
        } catch (err) {
          throw new PolicyDeniedError(`not served under allocation ${req.allocation_id}: ${errorMessage(err)}`)
        }
      }
      const started = performance.now()
      const options: GenerateOptions = { ...req.options, signal: responder.signal, onToken: (t) => { send({ t }) } }
      let result: unknown
      if (req.op === 'chat') result = await c.engine.chat(req.model, req.messages ?? [], options)
      else if (req.op === 'complete') result = await c.engine.complete(req.model, req.prompt ?? '', options)
      else result = await c.engine.embed(req.model, req.input ?? [], { signal: responder.signal })
      clearInterval(keepalive)
      if (req.allocation_id !== undefined) {
        const usage = (result as { usage?: Partial<Usage> } | null)?.usage
        c.leases?.record(req.allocation_id, { tokens: (usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0), wall_ms: performance.now() - started })
      }
      // every token goes out before the final message
      while (pump !== undefined) await pump
      log.debug({ from, op: req.op, model: req.model, trace_id: trace, continued: req.options?.continue_from !== undefined }, 'served')
      const usage = (result as { usage?: Partial<Usage> } | null)?.usage
      c.audit?.({ kind: 'inference', actor: agentOf(from), subject: req.model, detail: { op: req.op, served: true, prompt_tokens: usage?.prompt_tokens ?? 0, completion_tokens: usage?.completion_tokens ?? 0, latency_ms: Math.round(performance.now() - started), allocation_id: req.allocation_id ?? null }, trace_id: trace })
      return encode({ ok: true, result })
    } catch (err) {
      log.debug({ from, trace_id: trace, err: errorMessage(err) }, 'refused or failed')
      c.audit?.({ kind: 'inference', actor: agentOf(from), detail: { served: false, error: err instanceof Error ? err.name : 'Error', reason: errorMessage(err).slice(0, 500) }, trace_id: trace })
      // the mesh's error frame carries the error's name (BusyError, PolicyDeniedError…) to the requester
      throw err
    } finally {
      clearInterval(keepalive)
    }
  }, { maxRequestBytes: 4 * 1024 * 1024, timeoutMs: 10 * 60 * 1000, idleTimeoutMs: 10 * 60 * 1000 })
  return async () => { await c.mesh.unhandle(INFERENCE_PROTOCOL) }
}

export interface PeerInferenceComponents {
  mesh: Pick<MeshNode, 'requestStream' | 'peers' | 'peerId'>
  /** the live NodeCapability entries (agent_registry discovery) */
  capabilities: () => Promise<NodeCapability[]>
  logger: ComponentLogger
}

export interface PeerInferenceInit {
  region?: string
  /**
   * The progress deadline: longest wait for any frame from the provider (a token or its
   * keep-alive) before it counts as frozen and the request moves to the next holder. @default 5000
   */
  progressTimeoutMs?: number
}

export interface RemoteOptions extends GenerateOptions {
  /** the trace id (when there is no traceparent) */
  trace_id?: string
  /** the caller's W3C traceparent: the request carries a child span of it. @default a new trace (with `trace_id` when given) */
  traceparent?: string
  /** only these nodes (NodeCapability.node_id) */
  nodes?: string[]
  /** an inference lease of this node's (`resources.allocate`): the request goes to its provider only and is counted against it */
  allocation_id?: string
}

export interface RemoteResult extends GenerateResult {
  /** the node that finished the answer */
  node_id: string
  peer_id: string
  /** nodes that failed mid-stream, and how many characters of the answer had been sent when another node took over */
  continued?: Array<{ node_id: string, at_chars: number }>
}

interface Candidate { node_id: string, peer_id: string }

/** Inference on the mesh's nodes, chosen per request; the same calls as the engine. */
export class PeerInference {
  private readonly c: PeerInferenceComponents
  private readonly log: ComponentLogger
  private readonly region: string | undefined
  private readonly progressTimeoutMs: number
  /** this node's requests in flight, per provider PeerId */
  private readonly inflight = new Map<string, number>()

  constructor (components: PeerInferenceComponents, init: PeerInferenceInit = {}) {
    this.c = components
    this.log = components.logger.forComponent('flexnode:inference:peers')
    this.region = init.region
    this.progressTimeoutMs = init.progressTimeoutMs ?? PROGRESS_TIMEOUT_MS
  }

  /** Requests this node has in flight to a provider. */
  inFlight (peerId: string): number {
    return this.inflight.get(peerId) ?? 0
  }

  /** Ranked candidate nodes for a model, excluding this node. */
  async candidates (model: string, only?: string[]): Promise<Candidate[]> {
    return this.rank(await this.c.capabilities(), model, only)
  }

  /**
   * Synchronous, so a caller can rank and take a slot (`acquire`) with no await in between:
   * concurrent requests then see each other's slots and spread.
   */
  private rank (caps: readonly NodeCapability[], model: string, only?: readonly string[], exclude?: ReadonlySet<string>): Candidate[] {
    const connected = new Set(this.c.mesh.peers())
    const wanted = only === undefined ? undefined : new Set(only)
    const cands: ProviderCandidate[] = []
    const peers = new Map<string, string>()
    for (const cap of caps) {
      if (wanted !== undefined && !wanted.has(cap.node_id)) continue
      let peer: string
      try { peer = peerIdFromAgentPubKey(decodeHash(cap.node_id, 'Agent')) } catch { continue }
      if (peer === this.c.mesh.peerId || !connected.has(peer) || exclude?.has(peer) === true || peers.has(cap.node_id)) continue
      peers.set(cap.node_id, peer)
      const inference = cap.capabilities.inference
      // availability is the node's presence (signed, expiring with the node's own interval): a
      // connected node reads `offline` only when it stopped refreshing it (frozen, or gone)
      const availability = cap.availability
      cands.push({
        node_id: cap.node_id,
        self: false,
        models_loaded: inference.models_loaded,
        models_available: inference.models_loaded,
        demo_models: inference.demo_models ?? [],
        availability,
        load: { cpu_percent: cap.load.cpu_percent, gpu_percent: cap.load.gpu_percent },
        // the provider's advertised queue, and this node's own requests in flight there (live)
        queue_depth: (inference.queue_depth ?? 0) + this.inFlight(peer),
        tokens_per_second: inference.tokens_per_second > 0 ? inference.tokens_per_second : null,
        latency_region: cap.network.latency_region
      })
    }
    return rankProviders(cands, { model, region: this.region }).map(c => ({ node_id: c.node_id, peer_id: peers.get(c.node_id)! }))
  }

  private acquire (peer: string): () => void {
    this.inflight.set(peer, this.inFlight(peer) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = this.inFlight(peer) - 1
      if (n > 0) this.inflight.set(peer, n)
      else this.inflight.delete(peer)
    }
  }

  private async once (peer: string, req: GenerateRequestWire, o: RemoteOptions, onText: (t: string) => void | Promise<void>): Promise<unknown> {
    const budget = (o.deadline_ms ?? 120_000) + 5000
    // the progress deadline: every frame (token or keep-alive) restarts it. A watchdog rather than
    // the stream's idle timer, so that a stall of this node's own event loop (frames waiting
    // unread in the socket while timers run first) is not taken for a frozen provider.
    const stalled = new AbortController()
    let lastFrame = performance.now()
    let holding = false
    const tick = Math.max(10, Math.min(250, Math.floor(this.progressTimeoutMs / 4)))
    let expected = lastFrame + tick
    const watchdog = setInterval(() => {
      const now = performance.now()
      const lag = now - expected
      expected = now + tick
      // this loop was late: let pending I/O in before judging the provider
      if (lag > tick) return
      // our own consumer holds the stream (backpressure): the provider is waiting for us, not frozen
      if (holding) return
      if (now - lastFrame > this.progressTimeoutMs) {
        stalled.abort(new ProviderFailedError(`no progress from ${peer} for ${Math.round(now - lastFrame)} ms (no token and no keep-alive): frozen, dead or cut off`))
      }
    }, tick)
    try {
      const final = await this.c.mesh.requestStream(peer, INFERENCE_PROTOCOL, encode(req), {
        signal: o.signal === undefined ? stalled.signal : AbortSignal.any([o.signal, stalled.signal]),
        timeoutMs: budget,
        idleTimeoutMs: budget,
        onChunk: (chunk) => {
          lastFrame = performance.now()
          const msg = decode(chunk)
          if (!isPlainObject(msg) || typeof msg.t !== 'string') return
          const pending = onText(msg.t)
          if (pending === undefined) return
          // a consumer that returns a promise holds the stream, and so the provider, until it settles
          holding = true
          return pending.finally(() => {
            holding = false
            lastFrame = performance.now()
          })
        }
      })
      const msg = decode(final)
      if (!isPlainObject(msg) || msg.ok !== true) throw new InferenceError(`malformed answer from ${peer}`)
      return msg.result
    } catch (err) {
      if (stalled.signal.aborted && o.signal?.aborted !== true) throw stalled.signal.reason as Error
      // the provider's typed error, as the mesh's error frame carried it (the mesh's own stay as they are)
      if (err instanceof RemoteError && !MESH_ERROR_NAMES.has(err.remoteName)) throw errorFromWire({ name: err.remoteName, message: err.message }, peer)
      throw err
    } finally {
      clearInterval(watchdog)
    }
  }

  /**
   * Run a request on the best node; when a node fails, the next holder of the model answers it
   * afresh (nothing reached the caller yet) or continues it (a stream already under way).
   */
  private async route (request: GenerateRequestWire, o: RemoteOptions): Promise<{ result: unknown, node_id: string, peer_id: string, continued: RemoteResult['continued'] }> {
    // this hop is a child span of the caller's; a caller with a bare trace_id (no traceparent) keeps it as the trace id
    const parent = parseTraceparent(o.traceparent)
    const span = parent === undefined ? newTrace() : childSpan(parent)
    const trace = parent === undefined && o.trace_id !== undefined ? o.trace_id : span.traceId
    const traceparent = TRACE_ID.test(trace) ? formatTraceparent({ ...span, traceId: trace }) : undefined
    const req: GenerateRequestWire = { ...request, trace_id: trace, ...(traceparent !== undefined ? { traceparent } : {}), ...(o.allocation_id !== undefined ? { allocation_id: o.allocation_id } : {}) }
    const streaming = o.onToken !== undefined && req.op !== 'embed'
    const maxTokens = req.options?.max_tokens ?? DEFAULT_MAX_TOKENS
    const caps = await this.c.capabilities()
    const tried = new Set<string>()
    const continued: NonNullable<RemoteResult['continued']> = []
    /** what the caller has received so far (streaming only), and in how many chunks */
    let sent = ''
    let chunks = 0
    let last: unknown
    let failedNode: string | undefined
    const t0 = performance.now()
    let firstAt: number | undefined
    const timing = (): Pick<GenerateResult, 'ttft_ms' | 'duration_ms'> => {
      const now = performance.now()
      return { ttft_ms: (firstAt ?? now) - t0, duration_ms: now - t0 }
    }
    for (;;) {
      // rank and take the slot with no await in between
      const cand = this.rank(caps, req.model, o.nodes, tried)[0]
      if (cand === undefined) break
      tried.add(cand.peer_id)
      const release = this.acquire(cand.peer_id)
      const prefix = sent
      const chunksBefore = chunks
      const attempt: GenerateRequestWire = prefix === '' ? req : { ...req, options: { ...req.options, continue_from: prefix, max_tokens: maxTokens - chunks } }
      if (prefix !== '' && failedNode !== undefined) continued.push({ node_id: failedNode, at_chars: prefix.length })
      let started = false
      try {
        const result = await this.once(cand.peer_id, attempt, o, (t) => {
          started = true
          if (!streaming || t.length === 0) return
          firstAt ??= performance.now()
          sent += t
          chunks++
          // an onToken that returns a promise (a slow HTTP client) slows the provider down
          const pending: unknown = o.onToken!(t)
          return pending instanceof Promise ? pending as Promise<void> : undefined
        })
        return { result: prefix === '' ? result : joinContinuation(prefix, chunksBefore, result as GenerateResult, timing()), ...cand, continued }
      } catch (err) {
        if (o.signal?.aborted === true) throw new RequestAbortedError('the request was aborted', { cause: err })
        // the caller's own mistake: every other node would refuse it too
        if (err instanceof InvalidRequestError || err instanceof PromptTooLongError) throw err
        last = err
        failedNode = cand.node_id
        this.log.warn({ peer: cand.peer_id, node: cand.node_id, model: req.model, trace_id: trace, err: errorMessage(err), started, streamed_chars: sent.length }, 'inference provider failed; trying the next holder of the model')
        if (streaming && sent !== '' && maxTokens - chunks < 1) {
          // the answer was complete but for its final message: nothing is left to generate
          return { result: { model: req.model, text: sent, finish_reason: 'length', usage: { prompt_tokens: 0, completion_tokens: chunks, total_tokens: chunks }, ...timing() } satisfies GenerateResult, ...cand, continued }
        }
      } finally {
        release()
      }
    }
    if (tried.size === 0) throw new ModelNotFoundError(`no reachable node of the mesh serves model ${JSON.stringify(req.model)}`, { model: req.model })
    if (streaming && sent !== '') {
      throw new ProviderFailedError(`node ${failedNode ?? '?'} failed mid-answer (trace ${trace}) and no other reachable node holds model ${req.model} to continue it: ${errorMessage(last)}`, { model: req.model, cause: last })
    }
    if (last instanceof InferenceError) throw last
    throw new ProviderFailedError(`every node holding model ${req.model} failed (trace ${trace}): ${errorMessage(last)}`, { model: req.model, cause: last })
  }

  async chat (model: string, messages: ChatMessage[], o: RemoteOptions = {}): Promise<RemoteResult> {
    const { result, node_id: nodeId, peer_id: peerId, continued } = await this.route({ op: 'chat', model, messages, options: wireOptions(o) }, o)
    return { ...(result as GenerateResult), node_id: nodeId, peer_id: peerId, ...(continued !== undefined && continued.length > 0 ? { continued } : {}) }
  }

  async complete (model: string, prompt: string, o: RemoteOptions = {}): Promise<RemoteResult> {
    const { result, node_id: nodeId, peer_id: peerId, continued } = await this.route({ op: 'complete', model, prompt, options: wireOptions(o) }, o)
    return { ...(result as GenerateResult), node_id: nodeId, peer_id: peerId, ...(continued !== undefined && continued.length > 0 ? { continued } : {}) }
  }

  async embed (model: string, input: string[], o: { signal?: AbortSignal } = {}): Promise<{ model: string, embeddings: number[][], usage: Usage }> {
    const { result } = await this.route({ op: 'embed', model, input }, o)
    return result as { model: string, embeddings: number[][], usage: Usage }
  }
}

/**
 * One answer from a continuation: the text sent before (`chunksBefore` chunks, each at least one
 * token) followed by the continuing node's result.
 */
function joinContinuation (prefix: string, chunksBefore: number, r: GenerateResult, timing: Pick<GenerateResult, 'ttft_ms' | 'duration_ms'>): GenerateResult {
  const completion = chunksBefore + r.usage.completion_tokens
  const prompt = Math.max(0, r.usage.prompt_tokens - chunksBefore)
  return { ...r, text: prefix + r.text, usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }, ...timing }
}

function wireOptions (o: GenerateOptions): WireOptions {
  const out: WireOptions = {}
  if (o.max_tokens !== undefined) out.max_tokens = o.max_tokens
  if (o.temperature !== undefined) out.temperature = o.temperature
  if (o.seed !== undefined) out.seed = o.seed
  if (o.stop !== undefined) out.stop = o.stop
  if (o.deadline_ms !== undefined) out.deadline_ms = o.deadline_ms
  if (o.clamp_max_tokens === true) out.clamp_max_tokens = true
  if (o.continue_from !== undefined) out.continue_from = o.continue_from
  return out
}
