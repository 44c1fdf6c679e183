/**
 * The prompt cache (the memory policy's `prompt_cache`: `ttl_seconds` 3600, `max_entries`
 * 100,000): answers to deterministic generation requests (temperature 0, or a fixed seed), kept
 * per model and served again without running the model.
 *
 * - **exact**: keyed by the sha256 of the canonical request: the model, the chat's messages or
 *   the completion's prompt, and every sampling parameter that changes the output (`max_tokens`,
 *   `temperature`, `seed`, `stop`). Every cacheable request is looked up and stored this way.
 * - **semantic** (the request opts in with `cache: "semantic"`): the prompt text is embedded (with
 *   the requested model's own embeddings, or `init.embeddingModel`) and searched in a node-local
 *   `VectorMemory` collection per model, `prompt-cache-<16 hex of sha256(model id)>` (cosine); the
 *   nearest cached prompt answers when its similarity is at least the request's `cache_threshold`
 *   and its sampling parameters are equal. Only answers stored by semantic requests are in those
 *   collections (an exact-only request never pays for an embedding).
 *
 * Entries live `ttlSeconds` (an expired one is never served) and at most `maxEntries` are kept over
 * all models: beyond it the oldest are evicted, from the vector collections too. Answers are kept in
 * this process only: a restart starts empty (and drops the collections the last run left, when it
 * first opens its vector memory).
 * Non-deterministic requests, `cache: "off"`, and generation under an inference lease are never
 * cached.
 *
 * ```ts
 * const cache = promptCache({ ttlSeconds: 3600 })({ logger, memory: async () => memory, embed: engine.embed })
 * await cache.start()
 * const found = await cache.lookup({ model, messages, max_tokens: 64, temperature: 0, cache: 'semantic', cache_threshold: 0.9 })
 * if (found?.status === 'hit') reply(found.answer)                     // found.match: 'exact' | 'semantic'
 * else { const result = await engine.chat(model, messages, opts); found?.store(result); reply(result) }
 * cache.stats()  // { hits_exact, hits_semantic, misses, entries }
 * ```
 */
import { createHash } from 'node:crypto'
import { errorMessage, InvalidInputError } from '../errors.ts'
import { DEFAULT_TEMPERATURE } from '../inference/constants.ts'
import type { ChatMessage, GenerateResult, Usage } from '../inference/types.ts'
import type { ComponentLogger } from '../logger.ts'
import type { Service } from '../service.ts'
import {
  PROMPT_CACHE_COLLECTION_PREFIX, PROMPT_CACHE_DEFAULT_THRESHOLD, PROMPT_CACHE_DELETE_BATCH, PROMPT_CACHE_MAX_ENTRIES, PROMPT_CACHE_SEMANTIC_CANDIDATES,
  PROMPT_CACHE_SWEEP_INTERVAL_MS, PROMPT_CACHE_TTL_SECONDS
} from './constants.ts'
import type { VectorMemory } from './types.ts'
import { localVectorMemory } from './local.ts'

/** A request's `cache` field: exact match only (the default), exact then by embedding similarity, or not cached. */
export type PromptCacheMode = 'exact' | 'semantic' | 'off'
export const PROMPT_CACHE_MODES: readonly PromptCacheMode[] = ['exact', 'semantic', 'off']

/** A generation request as the cache sees it (validated already: `http/schemas.ts`). */
export type PromptCacheRequest = {
  model: string
  max_tokens: number
  /** absent: the engine's default (0.8) */
  temperature?: number
  seed?: number
  stop?: string[]
  /** @default 'exact' */
  cache?: PromptCacheMode
  /** cosine similarity 0..1 a semantic hit needs. @default init.defaultThreshold */
  cache_threshold?: number
} & ({ messages: ChatMessage[], prompt?: undefined } | { prompt: string, messages?: undefined })

/** What is replayed on a hit. */
export interface CachedAnswer {
  model: string
  text: string
  finish_reason: GenerateResult['finish_reason']
  /** the usage of the generation that made the answer */
  usage: Usage
}

export interface PromptCacheHit {
  status: 'hit'
  match: 'exact' | 'semantic'
  answer: CachedAnswer
  /** a semantic hit's cosine similarity to the cached prompt (1 for an exact hit) */
  similarity: number
}

export interface PromptCacheMiss {
  status: 'miss'
  /** keep the request's answer (call it once the generation succeeded, never for a failed or aborted one) */
  store: (result: Pick<GenerateResult, 'model' | 'text' | 'finish_reason' | 'usage'>) => void
}

export interface PromptCacheStats {
  hits_exact: number
  hits_semantic: number
  misses: number
  /** answers held now (expired ones not yet swept included: they are never served) */
  entries: number
}

export interface PromptCache {
  /** undefined: the request is not cacheable (not deterministic, `cache: "off"`, or the cache is stopped) */
  lookup: (request: PromptCacheRequest, options?: { signal?: AbortSignal }) => Promise<PromptCacheHit | PromptCacheMiss | undefined>
  stats: () => PromptCacheStats
}

export interface PromptCacheService extends PromptCache, Service {}

export interface PromptCacheInit {
  /** seconds an answer is served after it was stored (fractions allowed). @default 3600 */
  ttlSeconds?: number
  /** answers kept over all models; beyond it the oldest are evicted. @default 100000 */
  maxEntries?: number
  /** `cache_threshold` of a semantic request that gives none. @default 0.95 */
  defaultThreshold?: number
  /** the model whose embeddings index prompts for semantic lookups. @default the requested model */
  embeddingModel?: string
}

/** What the cache uses of its vector memory. */
export type PromptCacheMemory = Pick<VectorMemory, 'createCollection' | 'listCollections' | 'deleteCollection' | 'upsert' | 'delete' | 'search'>

export interface PromptCacheComponents {
  logger: ComponentLogger
  /**
   * opens the node-local vector memory holding the semantic index (one collection per model),
   * called once, at the first semantic request (a node that never gets one never opens it).
   * Without it (or without `embed`) `cache: "semantic"` requests are looked up by exact match only.
   */
  memory?: () => Promise<PromptCacheMemory>
  /** embeds prompt text (the engine's `embed`, or one that also reaches the mesh's models) */
  embed?: (model: string, input: string[], options?: { signal?: AbortSignal }) => Promise<{ embeddings: number[][] }>
}

/** Deterministic: greedy (temperature 0), or sampled from a fixed seed. */
export function isDeterministic (request: Pick<PromptCacheRequest, 'temperature' | 'seed'>): boolean {
  return request.temperature === 0 || request.seed !== undefined
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/**
 * The sampling parameters that change the output, canonical: the engine's default temperature
 * filled in, the seed dropped at temperature 0 (greedy decoding ignores it), stop sequences as a
 * sorted set. Equal strings ⇔ the same output for the same prompt.
 */
export function samplingKey (request: Pick<PromptCacheRequest, 'max_tokens' | 'temperature' | 'seed' | 'stop'>): string {
  const temperature = request.temperature ?? DEFAULT_TEMPERATURE
  const seed = temperature === 0 ? null : request.seed ?? null
  const stop = [...new Set(request.stop ?? [])].sort()
  return sha256(JSON.stringify(['sampling/v1', request.max_tokens, temperature, seed, stop]))
}

/** The exact-match key: sha256 of the model, the prompt (messages or text) and `samplingKey`. */
export function promptKey (request: PromptCacheRequest): string {
  const input = request.messages !== undefined
    ? ['chat', request.messages.map(m => [m.role, m.content])]
    : ['completion', request.prompt]
  return sha256(JSON.stringify(['prompt/v1', request.model, input, samplingKey(request)]))
}

/** The text a semantic lookup embeds: a completion's prompt, or a chat's messages one per line. */
export function promptText (request: PromptCacheRequest): string {
  return request.messages !== undefined ? request.messages.map(m => `${m.role}: ${m.content}`).join('\n') : request.prompt
}

/** The node-local collection of a model's semantic index. */
export function promptCacheCollection (model: string): string {
  return `${PROMPT_CACHE_COLLECTION_PREFIX}${sha256(model).slice(0, 16)}`
}

interface Entry {
  key: string
  model: string
  sampling: string
  answer: CachedAnswer
  /** `performance.now()` when stored */
  at: number
  /** the collection holding its prompt's embedding, if a semantic request stored it */
  collection?: string
}

function checkInit (init: PromptCacheInit): void {
  const { ttlSeconds, maxEntries, defaultThreshold } = init
  if (ttlSeconds !== undefined && !(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) throw new InvalidInputError('prompt cache ttlSeconds must be a positive number', { field: 'ttlSeconds' })
  if (maxEntries !== undefined && !(Number.isSafeInteger(maxEntries) && maxEntries >= 1)) throw new InvalidInputError('prompt cache maxEntries must be a positive integer', { field: 'maxEntries' })
  if (defaultThreshold !== undefined && !(Number.isFinite(defaultThreshold) && defaultThreshold >= 0 && defaultThreshold <= 1)) {
    throw new InvalidInputError('prompt cache defaultThreshold must be a number from 0 to 1', { field: 'defaultThreshold' })
  }
}

export function promptCache (init: PromptCacheInit = {}): (components: PromptCacheComponents) => PromptCacheService {
  checkInit(init)
  return (components) => {
    const log = components.logger.forComponent('flexnode:prompt-cache')
    const { embed } = components
    const ttlMs = (init.ttlSeconds ?? PROMPT_CACHE_TTL_SECONDS) * 1000
    const maxEntries = init.maxEntries ?? PROMPT_CACHE_MAX_ENTRIES
    const defaultThreshold = init.defaultThreshold ?? PROMPT_CACHE_DEFAULT_THRESHOLD
    /** by key, oldest first (a re-stored key moves to the end) */
    const entries = new Map<string, Entry>()
    /** per model: its collection, created with the dimensions of its first embedding */
    const collections = new Map<string, Promise<string>>()
    /** per collection: its writes (upserts, deletes) in order; a search waits for them */
    const writes = new Map<string, Promise<void>>()
    const counts = { hits_exact: 0, hits_semantic: 0, misses: 0 }
    let opened: Promise<PromptCacheMemory> | undefined
    let sweeper: NodeJS.Timeout | undefined
    let stopped = false

    const fresh = (e: Entry | undefined): e is Entry => e !== undefined && performance.now() - e.at < ttlMs

    /**
     * The vector memory, opened on first use; the collections a past run left are dropped first
     * (its answers were in its process only: they can never be served).
     */
    const memory = async (): Promise<PromptCacheMemory> => await (opened ??= (async () => {
      const m = await components.memory!()
      for (const c of await m.listCollections()) {
        if (c.name.startsWith(PROMPT_CACHE_COLLECTION_PREFIX)) await m.deleteCollection(c.name)
      }
      return m
    })().catch((err: unknown) => { opened = undefined; throw err }))

    /** Queue a write on a collection; its failure is logged (the entry is never served without its map row). */
    const write = (collection: string, what: string, op: () => Promise<unknown>): void => {
      const next = (writes.get(collection) ?? Promise.resolve()).then(op).then(() => {}, (err: unknown) => {
        log.warn({ collection, err: errorMessage(err) }, `prompt cache ${what} failed`)
      })
      writes.set(collection, next)
      void next.then(() => { if (writes.get(collection) === next) writes.delete(collection) })
    }

    /** Drop entries from the map, and their embeddings from their collections in batches. */
    const drop = (gone: Entry[]): void => {
      const byCollection = new Map<string, string[]>()
      for (const e of gone) {
        entries.delete(e.key)
        if (e.collection !== undefined) byCollection.set(e.collection, [...byCollection.get(e.collection) ?? [], e.key])
      }
      for (const [collection, ids] of byCollection) {
        for (let i = 0; i < ids.length; i += PROMPT_CACHE_DELETE_BATCH) {
          const batch = ids.slice(i, i + PROMPT_CACHE_DELETE_BATCH)
          write(collection, 'delete', async () => await (await memory()).delete(collection, batch))
        }
      }
    }

    /** Expired entries from the front (oldest first), and the oldest beyond `maxEntries`. */
    const sweep = (): void => {
      const gone: Entry[] = []
      let over = entries.size - maxEntries
      for (const e of entries.values()) {
        if (over > 0) { gone.push(e); over--; continue }
        if (fresh(e)) break
        gone.push(e)
      }
      if (gone.length > 0) drop(gone)
    }

    const collectionFor = async (model: string, dimensions: number): Promise<string> => {
      let p = collections.get(model)
      if (p === undefined) {
        const name = promptCacheCollection(model)
        p = memory().then(async (m) => await m.createCollection({ name, dimensions, distance: 'cosine', shard_count: 1, replication_factor: 1 })).then(() => name)
        p.catch(() => { collections.delete(model) })
        collections.set(model, p)
      }
      return await p
    }

    /** The fresh entry nearest to `vector` with equal sampling parameters, at or above the threshold. */
    const nearest = async (request: PromptCacheRequest, sampling: string, vector: number[], threshold: number, signal?: AbortSignal): Promise<{ entry: Entry, similarity: number, collection: string } | { collection: string }> => {
      const collection = await collectionFor(request.model, vector.length)
      await writes.get(collection)
      const { results } = await (await memory()).search(collection, { vector, k: PROMPT_CACHE_SEMANTIC_CANDIDATES, filter: { sampling } }, { signal })
      for (const r of results) {
        if (r.score < threshold) break
        const entry = entries.get(r.id)
        if (fresh(entry) && entry.model === request.model && entry.sampling === sampling) return { entry, similarity: r.score, collection }
      }
      return { collection }
    }

    const lookup = async (request: PromptCacheRequest, options: { signal?: AbortSignal } = {}): Promise<PromptCacheHit | PromptCacheMiss | undefined> => {
      const mode = request.cache ?? 'exact'
      if (stopped || mode === 'off' || !isDeterministic(request)) return undefined
      sweep()
      const key = promptKey(request)
      const sampling = samplingKey(request)
      const exact = entries.get(key)
      if (fresh(exact)) {
        counts.hits_exact++
        return { status: 'hit', match: 'exact', answer: exact.answer, similarity: 1 }
      }

      let semantic: { collection: string, vector: number[] } | undefined
      if (mode === 'semantic' && components.memory !== undefined && embed !== undefined) {
        try {
          const [vector] = (await embed(init.embeddingModel ?? request.model, [promptText(request)], options)).embeddings
          if (vector === undefined) throw new Error('the embedding function returned no vector')
          const found = await nearest(request, sampling, vector, request.cache_threshold ?? defaultThreshold, options.signal)
          if ('entry' in found) {
            counts.hits_semantic++
            return { status: 'hit', match: 'semantic', answer: found.entry.answer, similarity: found.similarity }
          }
          semantic = { collection: found.collection, vector }
        } catch (err: unknown) {
          if (options.signal?.aborted === true) throw err
          // the semantic index is an optimisation: the request is still served (and cached exactly)
          log.warn({ model: request.model, err: errorMessage(err) }, 'semantic prompt cache lookup failed')
        }
      }

      counts.misses++
      let stored = false
      return {
        status: 'miss',
        store: (result) => {
          if (stopped || stored) return
          stored = true
          const old = entries.get(key)
          if (old !== undefined) entries.delete(key)
          const entry: Entry = {
            key,
            model: request.model,
            sampling,
            answer: { model: result.model, text: result.text, finish_reason: result.finish_reason, usage: { ...result.usage } },
            at: performance.now()
          }
          // the same id replaces its point: the old entry's embedding needs no delete
          if (semantic !== undefined) entry.collection = semantic.collection
          else if (old?.collection !== undefined) entry.collection = old.collection
          entries.set(key, entry)
          if (semantic !== undefined) {
            const { collection, vector } = semantic
            write(collection, 'insert', async () => await (await memory()).upsert(collection, [{ id: key, vector, metadata: { sampling, model: request.model } }]))
          }
          sweep()
        }
      }
    }

    const stop = async (): Promise<void> => {
      stopped = true
      if (sweeper !== undefined) clearInterval(sweeper)
      sweeper = undefined
      await Promise.all([...writes.values()])
      entries.clear()
      collections.clear()
    }

    return {
      lookup,
      stats: () => ({ ...counts, entries: entries.size }),
      start: async () => {
        if (stopped || sweeper !== undefined) return
        sweeper = setInterval(sweep, Math.min(ttlMs, PROMPT_CACHE_SWEEP_INTERVAL_MS))
        sweeper.unref()
      },
      stop,
      [Symbol.asyncDispose]: stop
    }
  }
}

/**
 * A node's prompt cache: `promptCache` with its semantic index in a node-local vector memory of
 * its own under `init.dir` (the cache's collections only), opened at the first semantic request
 * (its worker thread is not started before) and stopped after the cache.
 */
export function nodePromptCache (init: PromptCacheInit & { dir: string }): (components: Omit<PromptCacheComponents, 'memory'>) => PromptCacheService {
  return (components) => {
    const { dir, ...options } = init
    const memory = localVectorMemory({ dir })({ logger: components.logger })
    let opened: Promise<void> | undefined
    const cache = promptCache(options)({ ...components, memory: async () => { await (opened ??= memory.start()); return memory } })
    const stop = async (): Promise<void> => {
      await cache.stop()
      if (opened !== undefined) await memory.stop()
    }
    return { ...cache, stop, [Symbol.asyncDispose]: stop }
  }
}
