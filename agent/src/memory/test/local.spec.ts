import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../logger.ts'
import { localVectorMemory, LOCAL_REGISTRY_FILE } from '../local.ts'
import { shardHost, type ShardHost } from '../shard-host.ts'
import { vectorMemoryCompliance } from './compliance.ts'
import { bagOfWords, tempDir } from './fixtures.ts'

const logger = silentLogger()

describe('LocalVectorMemory', () => {
  // one shard host for the compliance runs (a thread's start costs more than a test)
  let host: ShardHost
  let hostDir: { dir: string, cleanup: () => Promise<void> }

  beforeAll(async () => {
    hostDir = await tempDir()
    host = shardHost({ dir: hostDir.dir })({ logger })
    await host.start()
  })

  afterAll(async () => {
    await host.stop()
    await hostDir.cleanup()
  })

  vectorMemoryCompliance('LocalVectorMemory', async () => {
    const { dir, cleanup } = await tempDir()
    const memory = localVectorMemory({ dir })({ logger, shards: host, embed: bagOfWords(16) })
    await memory.start()
    return {
      memory,
      cleanup: async () => {
        for (const c of await memory.listCollections()) await memory.deleteCollection(c.name)
        await memory.stop()
        await cleanup()
      }
    }
  }, { embeddingModel: 'bag-of-words', embeddingDimensions: 16 })

  it('keeps its collections and points over a restart, with its own shard host', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      let memory = localVectorMemory({ dir, shards: { flushIntervalMs: 60_000 } })({ logger })
      await memory.start()
      const created = await memory.createCollection({ name: 'kept', dimensions: 2, distance: 'l2', shard_count: 3 })
      await memory.upsert('kept', [{ id: 'a', vector: [1, 2] }, { id: 'b', vector: [3, 4], metadata: { x: 'y' } }])
      await memory.delete('kept', ['a'])
      await memory.stop()
      const registry = JSON.parse(await readFile(join(dir, LOCAL_REGISTRY_FILE), 'utf8')) as { writer: string, collections: unknown[] }
      expect(registry.collections).toEqual([created])

      memory = localVectorMemory({ dir })({ logger })
      await memory.start()
      expect(await memory.listCollections()).toEqual([created])
      expect(await memory.get('kept', ['a', 'b'])).toEqual([{ id: 'b', vector: [3, 4], metadata: { x: 'y' } }])
      expect((await memory.search('kept', { vector: [3, 4], k: 2 })).results).toEqual([{ id: 'b', score: 0, metadata: { x: 'y' } }])
      const info = await memory.describeCollection('kept')
      expect(info.count).toBe(1)
      expect(info.shards.every(s => s.replicas[0]!.node_id === registry.writer)).toBe(true)
      await memory.stop()
      expect(await memory.listCollections().then(() => 'resolved', (e: unknown) => (e as Error).name)).toBe('DisposedError')
    } finally {
      await cleanup()
    }
  })

  it('refuses text for a collection with a model when it has no embedder', async () => {
    const { dir, cleanup } = await tempDir()
    const memory = localVectorMemory({ dir })({ logger, shards: host })
    await memory.start()
    try {
      await memory.createCollection({ name: 'needs-embedder', dimensions: 4, distance: 'cosine', shard_count: 1, embedding_model: 'm' })
      expect(await memory.upsert('needs-embedder', [{ id: 'a', text: 'hello' }]).then(() => 'resolved', (e: unknown) => (e as Error).name)).toBe('NoEmbedderError')
      await memory.deleteCollection('needs-embedder')
    } finally {
      await memory.stop()
      await cleanup()
    }
  })
})
