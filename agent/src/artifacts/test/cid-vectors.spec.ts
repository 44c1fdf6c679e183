/**
 * CID vectors: what Kubo's `ipfs add` gives for known bytes, checked against `HeliaStore`.
 *
 * Two kinds of expected values, neither taken from what Helia prints:
 * - published Kubo outputs (`hello world\n` with Kubo's defaults, `hello\n` from Kubo's own
 *   gateway fixtures: kubo `test/sharness/t0114-gateway-subdomains/README.md`, ipfs 0.18.1; the
 *   empty file);
 * - DAGs built here by hand from the specs (UnixFS `Data` and dag-pb `PBNode` protobufs written
 *   byte by byte, Kubo's balanced layout of at most 174 links per node), hashed with
 *   `multiformats` only. The hand builder is first checked against the published vectors.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../logger.ts'
import { heliaStore, type HeliaStore } from '../helia-store.ts'
import { bytesOf } from './compliance.ts'

const DAG_PB = 0x70
const UNIXFS_FILE = 2
const MAX_LINKS = 174

// -----------------------------------------------------------------------------------------------
// a hand-written protobuf writer: varints and length-delimited fields, nothing else

function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80) }
  out.push(n)
  return Uint8Array.from(out)
}

const cat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts))

/** a length-delimited field (wire type 2) */
function bytesField (fieldNo: number, payload: Uint8Array): Uint8Array {
  return cat([Uint8Array.of((fieldNo << 3) | 2), varint(payload.length), payload])
}

/** a varint field (wire type 0) */
function varintField (fieldNo: number, value: number): Uint8Array {
  return cat([Uint8Array.of((fieldNo << 3) | 0), varint(value)])
}

/** UnixFS `Data`: Type=1, Data=2 (left out when empty), filesize=3, blocksizes=4 (repeated, unpacked: proto2) */
function unixfsFile (data: Uint8Array | undefined, filesize: number, blocksizes: number[]): Uint8Array {
  return cat([
    varintField(1, UNIXFS_FILE),
    ...(data !== undefined && data.length > 0 ? [bytesField(2, data)] : []),
    varintField(3, filesize),
    ...blocksizes.map(b => varintField(4, b))
  ])
}

interface Node { cid: CID, /** bytes of the file under it */ fileSize: number, /** bytes of every block under it */ tsize: number }

/** dag-pb `PBNode`: the Links (field 2: Hash=1, Name=2 always written empty as Kubo does, Tsize=3) first, then Data (field 1) */
function pbNode (links: Node[], data: Uint8Array): Uint8Array {
  return cat([
    ...links.map(l => bytesField(2, cat([bytesField(1, l.cid.bytes), bytesField(2, new Uint8Array(0)), varintField(3, l.tsize)]))),
    bytesField(1, data)
  ])
}

async function dagPbCid (block: Uint8Array, version: 0 | 1): Promise<CID> {
  const digest = await sha256.digest(block)
  return version === 0 ? CID.createV0(digest) : CID.createV1(DAG_PB, digest)
}

/** The root CID `ipfs add --cid-version V --raw-leaves R --chunker size-N` gives (balanced layout, Kubo's). */
async function kuboCid (bytes: Uint8Array, options: { cidVersion: 0 | 1, rawLeaves: boolean, chunkSize: number }): Promise<string> {
  const chunks: Uint8Array[] = []
  for (let at = 0; at < bytes.length; at += options.chunkSize) chunks.push(bytes.subarray(at, at + options.chunkSize))
  if (chunks.length === 0) chunks.push(new Uint8Array(0))
  let level: Node[] = await Promise.all(chunks.map(async (chunk): Promise<Node> => {
    if (options.rawLeaves) return { cid: CID.createV1(raw.code, await sha256.digest(chunk)), fileSize: chunk.length, tsize: chunk.length }
    const block = pbNode([], unixfsFile(chunk, chunk.length, []))
    return { cid: await dagPbCid(block, options.cidVersion), fileSize: chunk.length, tsize: block.length }
  }))
  // one leaf is the file itself; otherwise parents of at most 174 children, level by level
  while (level.length > 1) {
    const parents: Node[] = []
    for (let i = 0; i < level.length; i += MAX_LINKS) {
      const children = level.slice(i, i + MAX_LINKS)
      const fileSize = children.reduce((s, c) => s + c.fileSize, 0)
      const block = pbNode(children, unixfsFile(undefined, fileSize, children.map(c => c.fileSize)))
      parents.push({ cid: await dagPbCid(block, options.cidVersion), fileSize, tsize: block.length + children.reduce((s, c) => s + c.tsize, 0) })
    }
    level = parents
  }
  return (level[0] as Node).cid.toString()
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const KUBO_V0 = { cidVersion: 0, rawLeaves: false, chunkSize: 262_144 } as const
const KUBO_V1 = { cidVersion: 1, rawLeaves: true, chunkSize: 262_144 } as const

/** Published Kubo outputs. */
const PUBLISHED = [
  { what: "'hello world\\n', Kubo defaults", bytes: text('hello world\n'), options: {}, cid: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', hand: KUBO_V0 },
  { what: "'hello\\n', --cid-version 0", bytes: text('hello\n'), options: { cidVersion: 0 as const }, cid: 'QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN', hand: KUBO_V0 },
  { what: "'hello\\n', --cid-version 1 (raw leaves)", bytes: text('hello\n'), options: { cidVersion: 1 as const }, cid: 'bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am', hand: KUBO_V1 },
  { what: 'the empty file, Kubo defaults', bytes: new Uint8Array(0), options: {}, cid: 'QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH', hand: KUBO_V0 }
]

describe('CID vectors (Kubo compatibility of HeliaStore.add)', () => {
  let store: HeliaStore
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flexnode-cid-vectors-'))
    store = heliaStore({ dir })({ logger: silentLogger() })
    await store.start()
  })

  afterAll(async () => {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it.each(PUBLISHED)('the hand-built DAG of $what is the published CID', async ({ bytes, cid, hand }) => {
    expect(await kuboCid(bytes, hand)).toBe(cid)
  })

  it.each(PUBLISHED)('HeliaStore: $what → $cid', async ({ bytes, options, cid }) => {
    expect((await store.add(bytes, { ...options, pin: false })).cid).toBe(cid)
  })

  // multi-chunk files against the hand-built DAGs
  const mib = bytesOf(1_048_576 + 1234, 5)
  const small = bytesOf(175 * 16 + 5, 6)
  const cases = [
    { what: '1 MiB + 1234 B, Kubo defaults (5 leaves)', bytes: mib, options: {}, hand: KUBO_V0 },
    { what: '1 MiB + 1234 B, CIDv1 (raw leaves)', bytes: mib, options: { cidVersion: 1 as const }, hand: KUBO_V1 },
    { what: '1 MiB + 1234 B, CIDv1 without raw leaves, size-100000', bytes: mib, options: { cidVersion: 1 as const, rawLeaves: false, chunker: 'size-100000' }, hand: { cidVersion: 1, rawLeaves: false, chunkSize: 100_000 } as const },
    { what: '1 MiB + 1234 B, CIDv0 with raw leaves', bytes: mib, options: { rawLeaves: true }, hand: { ...KUBO_V0, rawLeaves: true } },
    { what: '176 leaves of 16 B: two levels, CIDv0', bytes: small, options: { chunker: 'size-16' }, hand: { ...KUBO_V0, chunkSize: 16 } },
    { what: '176 leaves of 16 B: two levels, CIDv1', bytes: small, options: { cidVersion: 1 as const, chunker: 'size-16' }, hand: { ...KUBO_V1, chunkSize: 16 } },
    { what: '175 leaves: a lone last leaf under its own parent', bytes: small.subarray(0, 174 * 16 + 3), options: { chunker: 'size-16' }, hand: { ...KUBO_V0, chunkSize: 16 } },
    { what: 'exactly 174 leaves: one level', bytes: small.subarray(0, 174 * 16), options: { cidVersion: 1 as const, chunker: 'size-16' }, hand: { ...KUBO_V1, chunkSize: 16 } }
  ]

  it.each(cases)('HeliaStore: $what', async ({ bytes, options, hand }) => {
    const expected = await kuboCid(bytes, hand)
    expect((await store.add(bytes, { ...options, pin: false })).cid).toBe(expected)
  })
})
