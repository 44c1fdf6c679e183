/**
 * The artifact store (`agent/src/artifacts/`), on a file of 100 MB (× FLEXNODE_BENCH_SCALE, at
 * least 4 MB) of random bytes:
 *
 * - add (import as UnixFS with Kubo's defaults, blocks to disk, pinned) and get (read back,
 *   every block verified) of the embedded HeliaStore, in MB/s, each as a ratio to raw sha256 of
 *   the same bytes in this run (goal ≥ 0.5);
 * - a fetch of that file by a second node over loopback (bitswap on the mesh's libp2p), as a ratio
 *   to the local get.
 */
import '../agent/src/polyfill.ts'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { heliaStore } from '../agent/src/artifacts/helia-store.ts'
import { silentLogger } from '../agent/src/logger.ts'
import { createMeshNode } from '../agent/src/mesh/libp2p-node.ts'
import { BENCH_SCALE, fmtNum, type Report } from './util.ts'

const MB = 1_000_000

async function drain (source: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0
  for await (const chunk of source) n += chunk.byteLength
  return n
}

async function seconds (fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now()
  await fn()
  return (performance.now() - t0) / 1000
}

export async function run (report: Report): Promise<void> {
  const size = Math.max(4 * MB, Math.round(100 * MB * BENCH_SCALE))
  const bytes = randomBytes(size)
  const logger = silentLogger()
  const dir = await mkdtemp(join(tmpdir(), 'flexnode-bench-artifacts-'))
  const meshA = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false }, { logger })
  await meshA.start()
  const meshB = await createMeshNode({ network: 'testnet', seed: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: meshA.multiaddrs(), mdns: false }, { logger })
  await meshB.start()
  const a = heliaStore({ dir: join(dir, 'a') })({ libp2p: meshA.libp2p, logger })
  const b = heliaStore({ dir: join(dir, 'b') })({ libp2p: meshB.libp2p, logger })
  await a.start()
  await b.start()
  try {
    // the baseline: sha256 of the same bytes, 64 KiB at a time (as the store hashes them)
    const shaS = await seconds(async () => {
      const h = createHash('sha256')
      for (let i = 0; i < size; i += 65_536) h.update(bytes.subarray(i, i + 65_536))
      h.digest()
    })
    let cid = ''
    const addS = await seconds(async () => { cid = (await a.add(bytes, { cidVersion: 1 })).cid })
    let got = 0
    const getS = await seconds(async () => { got = await drain(a.get(cid)) })
    if (got !== size) throw new Error(`the local get returned ${got} of ${size} bytes`)
    let fetched = 0
    const fetchS = await seconds(async () => { fetched = await drain(b.get(cid, { providers: [meshA.peerId], timeoutMs: 60_000 })) })
    if (fetched !== size) throw new Error(`the peer's fetch returned ${fetched} of ${size} bytes`)
    const rate = (s: number): number => size / MB / s
    report.log(`  artifacts: ${fmtNum(size / MB)} MB — sha256 ${fmtNum(rate(shaS))} MB/s, add ${fmtNum(rate(addS))} MB/s, get ${fmtNum(rate(getS))} MB/s, peer fetch ${fmtNum(rate(fetchS))} MB/s`)
    report.note(`artifacts: a ${fmtNum(size / MB)} MB file in the embedded Helia store: add ${fmtNum(rate(addS))} MB/s = ${(shaS / addS).toFixed(3)}x raw sha256 (${fmtNum(rate(shaS))} MB/s), ` +
      `get ${fmtNum(rate(getS))} MB/s = ${(shaS / getS).toFixed(3)}x (goal ≥ 0.5); fetched by a peer over loopback ${fmtNum(rate(fetchS))} MB/s = ${(getS / fetchS).toFixed(3)}x the local get`)
  } finally {
    await b.stop()
    await a.stop()
    await meshB.stop()
    await meshA.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
