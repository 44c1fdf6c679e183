import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../logger.ts'
import { createMeshNode, type Libp2pMeshNode } from '../../mesh/libp2p-node.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { parseCid } from '../cid.ts'
import { BLOCKS_DIR } from '../constants.ts'
import { heliaStore, type HeliaStore } from '../helia-store.ts'
import { artifactStoreCompliance, bytesOf, collect, failure } from './compliance.ts'

const logger = silentLogger()

async function tempDir (): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'flexnode-artifacts-'))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

async function meshNode (bootstrap: string[] = []): Promise<Libp2pMeshNode> {
  const node = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, mdns: false }, { logger })
  await node.start()
  return node
}

/** Overwrites a block on disk with other bytes, behind the store's back. */
function corrupter (dir: string): (cid: string) => Promise<void> {
  return async (cid) => {
    const disk = new FsBlockstore(join(dir, BLOCKS_DIR))
    await disk.open()
    await disk.put(parseCid(cid), new TextEncoder().encode('not the bytes you are looking for'))
    await disk.close()
  }
}

describe('HeliaStore', () => {
  artifactStoreCompliance('HeliaStore on a mesh node', async () => {
    const { dir, cleanup } = await tempDir()
    const mesh = await meshNode()
    const store = heliaStore({ dir })({ libp2p: mesh.libp2p, logger })
    await store.start()
    return {
      store,
      online: true,
      corruptBlock: corrupter(dir),
      cleanup: async () => { await store.stop(); await mesh.stop(); await cleanup() }
    }
  })

  artifactStoreCompliance('HeliaStore offline (no libp2p)', async () => {
    const { dir, cleanup } = await tempDir()
    const store = heliaStore({ dir })({ logger })
    await store.start()
    return { store, online: false, corruptBlock: corrupter(dir), cleanup: async () => { await store.stop(); await cleanup() } }
  })

  describe('lifecycle', () => {
    const cleanups: Array<() => Promise<void>> = []
    afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c() })

    it('keeps blocks and pins across a restart on the same dir', async () => {
      const { dir, cleanup } = await tempDir()
      cleanups.push(cleanup)
      const bytes = bytesOf(300_000, 3)
      const first = heliaStore({ dir })({ logger })
      await first.start()
      const { cid } = await first.add(bytes)
      await first.stop()
      const second = heliaStore({ dir })({ logger })
      await second.start()
      cleanups.push(async () => { await second.stop() })
      expect(await second.pins()).toEqual([cid])
      expect((await collect(second.get(cid))).equals(bytes)).toBe(true)
    })

    it('refuses use before start and after stop, and a bad init', async () => {
      const { dir, cleanup } = await tempDir()
      cleanups.push(cleanup)
      const store = heliaStore({ dir })({ logger })
      expect(await failure(store.has('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'))).toBe('NotStartedError')
      await store.start()
      await store.stop()
      await store.stop()
      expect(await failure(store.pins())).toBe('DisposedError')
      expect(() => heliaStore({ dir: '' })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'dir' }))
      expect(() => heliaStore({ dir, timeoutMs: -1 })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'timeoutMs' }))
    })
  })

  describe('two mesh nodes', () => {
    const cleanups: Array<() => Promise<void>> = []
    afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c() })

    async function storeOn (mesh: Libp2pMeshNode): Promise<HeliaStore> {
      const { dir, cleanup } = await tempDir()
      const store = heliaStore({ dir, timeoutMs: 10_000 })({ libp2p: mesh.libp2p, logger })
      await store.start()
      cleanups.push(async () => { await store.stop(); await cleanup() })
      return store
    }

    it('B gets and pins a multi-MB file A added, over bitswap, with A as the provider hint', async () => {
      const a = await meshNode()
      cleanups.push(async () => { await a.stop() })
      const addrA = a.multiaddrs().find(m => m.startsWith('/ip4/127.0.0.1/'))
      if (addrA === undefined) throw new Error('A has no loopback address')
      const b = await meshNode([addrA])
      cleanups.push(async () => { await b.stop() })
      await waitUntil(() => b.peers().includes(a.peerId) && a.peers().includes(b.peerId), { what: 'A and B to see each other' })
      const [storeA, storeB] = await Promise.all([storeOn(a), storeOn(b)])

      const bytes = bytesOf(3 * 1_048_576 + 4321, 11)
      const added = await storeA.add(bytes)
      expect(await storeB.has(added.cid)).toBe(false)
      expect(await storeB.stat(added.cid, { providers: [a.peerId] })).toEqual({ cid: added.cid, size: bytes.byteLength, local: false, type: 'file' })

      const got = await collect(storeB.get(added.cid, { providers: [a.peerId] }))
      expect(got.equals(bytes)).toBe(true)
      expect(await storeB.has(added.cid)).toBe(true)

      // a second file, pinned on B straight from the mesh
      const second = await storeA.add(bytesOf(2 * 1_048_576, 12), { cidVersion: 1 })
      const progress: number[] = []
      await storeB.pin(second.cid, { providers: [a.peerId], onProgress: p => { if (p.phase === 'pin') progress.push(p.bytes) } })
      expect(await storeB.pins()).toContain(second.cid)
      expect(await storeB.has(second.cid)).toBe(true)
      expect(progress.length).toBeGreaterThan(8)
      expect(progress).toEqual([...progress].sort((x, y) => x - y))
      // nothing but the two nodes on loopback: Helia dialled no bootstrap peer, router or gateway
      for (const node of [a, b]) {
        expect(node.libp2p.getConnections().map(c => c.remoteAddr.toString()).every(addr => addr.startsWith('/ip4/127.0.0.1/'))).toBe(true)
      }
      expect(a.libp2p.getConnections().map(c => c.remotePeer.toString())).toEqual([b.peerId])
    })

    it('a block corrupted on the provider\'s disk is never served: the fetch finds nothing (ContentNotFoundError), both nodes keep running', async () => {
      const a = await meshNode()
      cleanups.push(async () => { await a.stop() })
      const addrA = a.multiaddrs().find(m => m.startsWith('/ip4/127.0.0.1/'))
      if (addrA === undefined) throw new Error('A has no loopback address')
      const b = await meshNode([addrA])
      cleanups.push(async () => { await b.stop() })
      await waitUntil(() => b.peers().includes(a.peerId), { what: 'B to see A' })
      const { dir, cleanup } = await tempDir()
      const storeA = heliaStore({ dir })({ libp2p: a.libp2p, logger })
      await storeA.start()
      cleanups.push(async () => { await storeA.stop(); await cleanup() })
      const storeB = await storeOn(b)
      const bytes = Buffer.from('a block that rots on disk')
      const { cid } = await storeA.add(bytes, { cidVersion: 1 })
      await corrupter(dir)(cid)
      expect(await failure(collect(storeB.get(cid, { providers: [a.peerId], timeoutMs: 500 })))).toBe('ContentNotFoundError')
      // A still serves what is intact
      const good = await storeA.add(Buffer.from('intact'), { cidVersion: 1 })
      expect((await collect(storeB.get(good.cid, { providers: [a.peerId] }))).toString()).toBe('intact')
    })

    it('refuses a provider hint that is not a peer id', async () => {
      const a = await meshNode()
      cleanups.push(async () => { await a.stop() })
      const store = await storeOn(a)
      expect(await failure(store.stat('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', { providers: ['nope'] }))).toBe('InvalidInputError:providers')
    })
  })
})
