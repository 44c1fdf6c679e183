/**
 * Anti-entropy between two nodes over the overlap of their arcs, as the simulation runs it: the
 * steps of `dht-network.ts` `syncDna` (a digest over the shared sectors; then sparse per-sector
 * sums, answered with the hashes of small differing sectors and the leaf sums of large ones; then
 * the hashes of differing leaves; then a fetch of the missing records, each step bounded by
 * `SYNC`). Sums, digests and the bucket diff are the real ones from `sectors.ts`, and every
 * request and answer is measured with the real msgpack `encode` in its real shape.
 *
 * This is the one place the simulation knows the sync protocol: when the protocol changes, change
 * `syncOverlap` (or point it at the real code over an in-memory mesh) and the figures follow.
 */
import { encode } from '../../agent/src/conductor/codec.ts'
import { SYNC } from '../../agent/src/conductor/network/dht-network.ts'
import { differing, LEAVES, leafOf, leafSums, packSums, SectorSummary, sectorOf, sectorsOf, toRuns, unpackSums, type BucketSum } from '../../agent/src/conductor/sectors.ts'
import type { SectorSet } from '../../agent/src/conductor/network/arc.ts'
import type { HoloHash } from '../../agent/src/holo/hash.ts'

/** One side of a sync, as the protocol sees its store. */
export interface SyncSide {
  /** the op hashes held in these sectors */
  hashesIn: (sectors: SectorSet) => HoloHash[]
  /** the DHT location of a held op (its basis's) */
  locationOf: (hash: HoloHash) => number
  knows: (hash: HoloHash) => boolean
}

export interface SyncOutcome {
  /** request/answer round trips */
  requests: number
  /** bytes the initiator sent */
  bytesSent: number
  /** bytes the initiator received */
  bytesReceived: number
  /** hashes fetched, to be validated and stored by the initiator */
  fetched: HoloHash[]
}

const DNA = new Uint8Array(39).fill(7)

/** Encoded size of a fetch answer carrying records of these sizes (msgpack array + map framing). */
function fetchAnswerBytes (sizes: number[]): number {
  const n = sizes.length
  const header = n < 16 ? 1 : n < 65536 ? 3 : 5
  return encode({ records: [] }).length - 1 + header + sizes.reduce((a, b) => a + b, 0)
}

/** What one side holds in the overlap: its sector summary and its ops by sector. */
function view (side: SyncSide, overlap: SectorSet): { summary: SectorSummary, bySector: Map<number, HoloHash[]> } {
  const summary = new SectorSummary()
  const bySector = new Map<number, HoloHash[]>()
  for (const h of side.hashesIn(overlap)) {
    const loc = side.locationOf(h)
    summary.add(loc, h)
    const s = sectorOf(loc)
    const list = bySector.get(s)
    if (list === undefined) bySector.set(s, [h])
    else list.push(h)
  }
  return { summary, bySector }
}

/**
 * The initiator pulls from the responder what the responder holds in `overlap` and the initiator
 * lacks. `bytesOf` gives a record's encoded size.
 */
export function syncOverlap (me: SyncSide, peer: SyncSide, overlap: SectorSet, bytesOf: (hash: HoloHash) => number): SyncOutcome {
  const out: SyncOutcome = { requests: 0, bytesSent: 0, bytesReceived: 0, fetched: [] }
  const ask = (req: unknown, answer: unknown): void => {
    out.requests++
    out.bytesSent += encode(req).length
    out.bytesReceived += encode(answer).length
  }
  const arc = toRuns(overlap)
  const mine = view(me, overlap)
  const theirs = view(peer, overlap)
  const myDigest = mine.summary.digest(overlap)
  const theirDigest = theirs.summary.digest(overlap)
  ask({ op: 'digest', dna: DNA, arc }, { arc, digest: theirDigest })
  if (Buffer.from(myDigest).equals(theirDigest)) return out

  const ops = (side: SyncSide, hs: HoloHash[]): Array<{ location: number, hash: HoloHash }> => hs.map(hash => ({ location: side.locationOf(hash), hash }))
  const mySums = mine.summary.sums(overlap)
  const theirSums = theirs.summary.sums(overlap)
  let from: number | null = 0
  while (from !== null) {
    const start: number = from
    // the responder's answer: differing sectors it holds something in, listed or split
    const hashes: HoloHash[] = []
    const split: Array<[number, Uint8Array]> = []
    let next: number | null = null
    let answered = 0
    for (const sector of differing(theirSums, mySums, sectorsOf(overlap).filter(s => s >= start))) {
      const held = theirs.bySector.get(sector) ?? []
      if (held.length === 0) continue
      if (answered >= SYNC.maxSectors || hashes.length + Math.min(held.length, SYNC.listUpTo) > SYNC.maxHashes) { next = sector; break }
      answered++
      if (held.length <= SYNC.listUpTo) hashes.push(...held)
      else split.push([sector, packSums(leafSums(ops(peer, held)))])
    }
    const sums = packSums([...mySums].filter(([s]) => s >= start))
    ask({ op: 'sectors', dna: DNA, arc, sums, from: start }, { hashes, split, next })
    const want = hashes.filter(h => !me.knows(h))
    const leaves: Array<[number, number]> = []
    for (const [sector, packed] of split) {
      const mineLeaves: Map<number, BucketSum> = leafSums(ops(me, mine.bySector.get(sector) ?? []))
      const theirLeaves = unpackSums(packed, LEAVES)!
      for (const leaf of differing(mineLeaves, theirLeaves, theirLeaves.keys())) leaves.push([sector, leaf])
    }
    for (let i = 0; i < leaves.length; i += SYNC.maxLeaves) {
      const batch = leaves.slice(i, i + SYNC.maxLeaves)
      const wanted = new Set(batch.map(([s, l]) => s * LEAVES + l))
      const listed = batch.flatMap(([s]) => theirs.bySector.get(s) ?? []).filter(h => wanted.has(sectorOf(peer.locationOf(h)) * LEAVES + leafOf(peer.locationOf(h)))).slice(0, SYNC.maxHashes)
      ask({ op: 'leaves', dna: DNA, leaves: batch }, { hashes: listed })
      want.push(...listed.filter(h => !me.knows(h)))
    }
    for (let j = 0; j < want.length; j += SYNC.maxFetch) {
      const batch = want.slice(j, j + SYNC.maxFetch)
      out.requests++
      out.bytesSent += encode({ op: 'fetch', dna: DNA, hashes: batch }).length
      out.bytesReceived += fetchAnswerBytes(batch.map(bytesOf))
      out.fetched.push(...batch)
    }
    from = next
  }
  return out
}
