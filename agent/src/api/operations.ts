/**
 * Every operation of a node (the design's MCP tools, CONTRACTS §11.3–§11.5, and the memory and
 * artifact operations in the same style), each described once with its input and output schemas:
 * the MCP server lists and calls them and the HTTP routes parse their bodies with the same
 * schemas, and the CLI's commands check their input with them too (`cli/command-options.ts`'s
 * `checkedInput`: the inference, resources, memory and artifact commands, `cli/*-command.ts`).
 *
 * ```ts
 * const ops = nodeOperations({ resources, memory, artifacts, models, engine, router, ...holochain })
 * const out = await runOperation(ops.find(o => o.name === 'resources.release')!, { allocation_id }, { signal })
 * ```
 */
import type { z } from 'zod'
import { INLINE_CONTENT_MAX_BYTES } from '../artifacts/schemas.ts'
import * as artifactSchemas from '../artifacts/schemas.ts'
import { parseImportQuery } from '../artifacts/import-options.ts'
import type { AddArtifactOptions, ArtifactService } from '../artifacts/index.ts'
import type { ModelArtifacts } from '../artifacts/models.ts'
import { InvalidInputError } from '../errors.ts'
import type { HttpRouter } from '../http/routes/openai.ts'
import { NotImplementedError } from '../http/openai.ts'
import * as inferenceSchemas from '../inference/schemas.ts'
import type { InferenceEngine } from '../inference/types.ts'
import * as memorySchemas from '../memory/schemas.ts'
import type { CollectionConfig, Filter, PointInput, VectorMemory } from '../memory/types.ts'
import type { ResourcesService } from '../resources/index.ts'
import * as resourceSchemas from '../resources/schemas.ts'
import { holochainOperations, type HolochainComponents } from './holochain.ts'
import { defineOperation, type AnyOperation, type OperationContext } from './operation.ts'
import { parseInput } from './validate.ts'

/** The node's components the operations need, each the narrowest slice. */
export interface OperationComponents extends HolochainComponents {
  resources: Pick<ResourcesService, 'allocate' | 'release' | 'queryAvailable' | 'scheduleTask'>
  /** the mesh queries (absent hook: NotImplementedError) */
  router: Pick<HttpRouter, 'single' | 'moe'>
  engine: Pick<InferenceEngine, 'listModels'> & Partial<Pick<InferenceEngine, 'loadModel' | 'unloadModel' | 'refresh'>>
  memory: VectorMemory
  artifacts: Pick<ArtifactService, 'add' | 'get' | 'stat' | 'pin' | 'unpin' | 'providers' | 'records'>
  models?: Pick<ModelArtifacts, 'pull' | 'publish'>
}

/**
 * Runs an operation on arguments from outside: parsed by its input schema (`InvalidRequestError`
 * naming the field), and its result passed through its output schema (fields it does not
 * describe are left out, so the result matches the advertised output schema).
 */
export async function runOperation (op: AnyOperation, args: unknown, ctx: OperationContext): Promise<Record<string, unknown>> {
  const input: unknown = parseInput(op.input, args ?? {}, 'arguments')
  return op.output.parse(await op.run(input, ctx)) as Record<string, unknown>
}

function resourceOperations (c: Pick<OperationComponents, 'resources'>): AnyOperation[] {
  const s = resourceSchemas
  return [
    defineOperation({
      name: 'resources.allocate',
      description: 'Allocate distributed resources from the mesh: a lease on the best node for the requirements',
      input: s.allocateInput,
      output: s.allocateOutput,
      run: async ({ explain, ...input }, ctx) => {
        const { placement, ...lease } = await c.resources.allocate(input, { signal: ctx.signal })
        return explain === true ? { ...lease, placement } : lease
      }
    }),
    defineOperation({
      name: 'resources.release',
      description: 'Release allocated resources (a lease this node holds)',
      input: s.releaseInput,
      output: s.releaseOutput,
      run: async (input) => await c.resources.release(input)
    }),
    defineOperation({
      name: 'resources.query_available',
      description: 'List available resources: per node and in total, advertised, leased and free',
      input: s.queryAvailableInput,
      output: s.queryAvailableOutput,
      run: async (input) => await c.resources.queryAvailable(input)
    }),
    defineOperation({
      name: 'resources.schedule_task',
      description: 'Schedule distributed task: a WASM module placed like a compute lease, run there, the lease released',
      input: s.scheduleTaskInput,
      output: s.scheduleTaskOutput,
      run: async (input, ctx) => await resourceSchemas.runScheduledTask(c.resources, input, input.explain === true, ctx.signal)
    })
  ]
}

function inferenceOperations (c: Pick<OperationComponents, 'router' | 'engine'>): AnyOperation[] {
  const s = inferenceSchemas
  const admin = (): Pick<InferenceEngine, 'loadModel' | 'unloadModel'> => {
    if (c.engine.loadModel === undefined || c.engine.unloadModel === undefined) throw new NotImplementedError('loading and unloading models is not available on this node')
    return c.engine as Pick<InferenceEngine, 'loadModel' | 'unloadModel'>
  }
  return [
    defineOperation({
      name: 'inference.moe_query',
      description: 'Execute multi-model fan-out (MOE) inference: several models answer, weighted votes pick the response',
      input: s.moeQueryInput,
      output: s.moeQueryOutput,
      run: async (input, ctx) => {
        if (c.router.moe === undefined) throw new NotImplementedError('MOE queries are not available on this node')
        return await c.router.moe(s.moeQueryRequest(input), { signal: ctx.signal, traceparent: ctx.traceparent })
      }
    }),
    defineOperation({
      name: 'inference.single_query',
      description: 'Single model query: one prompt to one model, the mesh picking the model and node unless model is given',
      input: s.singleQueryInput,
      output: s.singleQueryOutput,
      run: async (input, ctx) => {
        if (c.router.single === undefined) throw new NotImplementedError('single-model mesh queries are not available on this node')
        return await c.router.single(s.singleQueryRequest(input), { signal: ctx.signal, traceparent: ctx.traceparent }) as z.input<typeof s.singleQueryOutput>
      }
    }),
    defineOperation({
      name: 'inference.load_model',
      description: 'Load model on node (a .gguf file of its models dirs)',
      input: s.loadModelInput,
      output: s.modelInfoOutput,
      run: async ({ id }, ctx) => {
        const models = admin()
        // a file dropped into a models dir since the last scan
        if (!c.engine.listModels().some(m => m.id === id)) await c.engine.refresh?.({ signal: ctx.signal })
        return await models.loadModel(id, { signal: ctx.signal })
      }
    }),
    defineOperation({
      name: 'inference.unload_model',
      description: 'Unload model from node',
      input: s.unloadModelInput,
      output: s.unloadModelOutput,
      run: async ({ id }) => {
        await admin().unloadModel(id)
        return { id, loaded: false }
      }
    })
  ]
}

function memoryOperations (c: Pick<OperationComponents, 'memory'>): AnyOperation[] {
  const s = memorySchemas
  return [
    defineOperation({
      name: 'memory.create_collection',
      description: 'Create a vector collection, sharded and replicated over the mesh',
      input: s.createCollectionInput,
      output: s.collection,
      run: async (input) => await c.memory.createCollection(input as CollectionConfig)
    }),
    defineOperation({
      name: 'memory.insert',
      description: 'Insert or replace points (id, vector or text, metadata) in a collection',
      input: s.insertInput,
      output: s.writeOutput,
      run: async ({ collection, points, write_consistency: wc }, ctx) =>
        await c.memory.upsert(collection, points as PointInput[], { ...(wc !== undefined ? { write_consistency: wc } : {}), signal: ctx.signal })
    }),
    defineOperation({
      name: 'memory.search',
      description: 'Search a collection: the k nearest points to a vector (or an embedded text), filtered by metadata',
      input: s.searchInput,
      output: s.searchOutput,
      run: async ({ collection, ...query }, ctx) =>
        await c.memory.search(collection, { ...query, vector: query.vector as number[] | undefined, filter: query.filter as Filter | undefined }, { signal: ctx.signal })
    }),
    defineOperation({
      name: 'memory.info',
      description: 'Describe a collection: its shards, their replicas (node, state, live, count), its point count',
      input: s.collectionInput,
      output: s.infoOutput,
      run: async ({ name }) => await c.memory.describeCollection(name)
    }),
    defineOperation({
      name: 'memory.list_collections',
      description: 'List the vector collections of the mesh',
      input: s.collectionInput.pick({}),
      output: s.listCollectionsOutput,
      run: async () => ({ collections: await c.memory.listCollections() })
    }),
    defineOperation({
      name: 'memory.delete_collection',
      description: 'Delete a collection and its points on every replica',
      input: s.collectionInput,
      output: s.deleteCollectionOutput,
      run: async ({ name }) => {
        await c.memory.deleteCollection(name)
        return { name, deleted: true }
      }
    })
  ]
}

function artifactOperations (c: Pick<OperationComponents, 'artifacts' | 'models'>): AnyOperation[] {
  const s = artifactSchemas
  const models = (): Pick<ModelArtifacts, 'pull' | 'publish'> => {
    if (c.models === undefined) throw new InvalidInputError('this node has no models dir', { field: 'model' })
    return c.models
  }
  return [
    defineOperation({
      name: 'artifacts.add',
      description: `Add a small artifact (text or base64, at most ${INLINE_CONTENT_MAX_BYTES} bytes; files over HTTP POST /v1/artifacts): stored, recorded, pinned`,
      input: s.addInput,
      output: s.addOutput,
      run: async (input, ctx) => {
        const bytes = input.content !== undefined ? new TextEncoder().encode(input.content) : Buffer.from(input.content_base64 ?? '', 'base64')
        if (bytes.byteLength > INLINE_CONTENT_MAX_BYTES) throw new InvalidInputError(`content_base64 must decode to at most ${INLINE_CONTENT_MAX_BYTES} bytes; upload larger files with POST /v1/artifacts`, { field: 'content_base64' })
        const imp = parseImportQuery({
          cid_version: input.cid_version === undefined ? null : String(input.cid_version),
          raw_leaves: input.raw_leaves === undefined ? null : String(input.raw_leaves),
          chunker: input.chunker ?? null
        })
        const options: AddArtifactOptions = { ...imp, name: input.name, signal: ctx.signal }
        if (input.media_type !== undefined) options.media_type = input.media_type
        if (input.pin !== undefined) options.pin = input.pin
        if (input.min !== undefined || input.max !== undefined) options.replication = { min: input.min ?? input.max ?? 1, max: input.max ?? Math.max(input.min ?? 1, 1) }
        return await c.artifacts.add(new Uint8Array(bytes), options)
      }
    }),
    defineOperation({
      name: 'artifacts.get',
      description: `Get a small artifact's content (base64 or UTF-8 text, at most ${INLINE_CONTENT_MAX_BYTES} bytes; larger over HTTP GET /v1/artifacts/<cid>)`,
      input: s.getInput,
      output: s.getOutput,
      run: async (input, ctx) => {
        const max = input.max_bytes ?? INLINE_CONTENT_MAX_BYTES
        const stat = await c.artifacts.stat(input.cid, { signal: ctx.signal })
        if (stat.size > max) throw new InvalidInputError(`the artifact is ${stat.size} bytes, more than ${max} inline; fetch it with GET /v1/artifacts/${stat.cid}`, { field: 'max_bytes' })
        const chunks: Uint8Array[] = []
        for await (const chunk of c.artifacts.get(input.cid, { signal: ctx.signal })) chunks.push(chunk)
        const bytes = Buffer.concat(chunks)
        const encoding = input.encoding ?? 'base64'
        return { cid: stat.cid, size: bytes.byteLength, encoding, content: bytes.toString(encoding === 'utf8' ? 'utf8' : 'base64') }
      }
    }),
    defineOperation({
      name: 'artifacts.stat',
      description: 'Stat an artifact: its size, type, and whether every block is on this node',
      input: s.cidInput,
      output: s.statOutput,
      run: async ({ cid }, ctx) => await c.artifacts.stat(cid, { signal: ctx.signal })
    }),
    defineOperation({
      name: 'artifacts.pin',
      description: 'Pin an artifact on this node (fetched from the mesh when missing); this node becomes a provider',
      input: s.cidInput,
      output: s.pinOutput,
      run: async ({ cid }, ctx) => {
        await c.artifacts.pin(cid, { signal: ctx.signal })
        return { cid, pinned: true }
      }
    }),
    defineOperation({
      name: 'artifacts.unpin',
      description: 'Unpin an artifact on this node',
      input: s.cidInput,
      output: s.pinOutput,
      run: async ({ cid }, ctx) => {
        await c.artifacts.unpin(cid, { signal: ctx.signal })
        return { cid, pinned: false }
      }
    }),
    defineOperation({
      name: 'artifacts.providers',
      description: 'List the nodes providing an artifact, and which are live',
      input: s.cidInput,
      output: s.providersOutput,
      run: async ({ cid }) => {
        const list = await c.artifacts.providers(cid)
        return { cid, providers: list, live: list.filter(p => p.live).length }
      }
    }),
    defineOperation({
      name: 'artifacts.list',
      description: 'List the artifact records of the mesh',
      input: s.listInput,
      output: s.listOutput,
      run: async ({ limit }) => ({ artifacts: await c.artifacts.records(limit === undefined ? {} : { limit }) })
    }),
    defineOperation({
      name: 'artifacts.publish_model',
      description: 'Publish a model of this node to the artifact store (recorded, pinned, replicated)',
      input: s.publishModelInput,
      output: s.publishModelOutput,
      run: async ({ id }, ctx) => await models().publish(id, { signal: ctx.signal })
    }),
    defineOperation({
      name: 'artifacts.pull_model',
      description: 'Pull a model artifact by CID into this node\'s models dir (checked against its record), optionally loading it',
      input: s.pullModelInput,
      output: s.pullModelOutput,
      run: async ({ cid, load }, ctx) => await models().pull(cid, { load: load === true, signal: ctx.signal })
    })
  ]
}

/** Every operation of the node, `holochain.*`, `resources.*`, `inference.*`, `memory.*`, `artifacts.*`. */
export function nodeOperations (components: OperationComponents): AnyOperation[] {
  return [
    ...holochainOperations(components),
    ...resourceOperations(components),
    ...inferenceOperations(components),
    ...memoryOperations(components),
    ...artifactOperations(components)
  ]
}
