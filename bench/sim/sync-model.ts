/**
 * Anti-entropy between two nodes over the overlap of their arcs, as the simulation runs it: the
 * steps of `dht-network.ts` `syncDna` (digest, then top summaries with a cursor, then the hashes
 * of differing leaves, then a fetch of the missing records, each step bounded by `SYNC`),
 * restricted to the sectors both nodes hold. Summaries are the real `Summary` shape compared with
 * the real `diffBuckets`, and every request and answer is measured with the real msgpack `encode`.
 *
 * This is the one place the simulation knows the sync protocol: when the protocol changes, point
 * `syncOverlap` at the new steps (or at the real code over an in-memory mesh) and the figures
 * follow.
 */
import { encode } from '../../agent/src/conductor/codec.ts'
import { SYNC } from '../../agent/src/conductor/network/dht-network.ts'
import { diffBuckets, type Summary } from '../../agent/src/conductor/space.ts'
import type { SectorSet } from '../../agent/src/conductor/network/arc.ts'
import type { HoloHash } from '../../agent/src/holo/hash.ts'

/** One side of a sync, as the protocol sees its store. */
export interface SyncSide {
  /** the action hashes held in these sectors */
  hashesIn: (sectors: SectorSet) => HoloHash[]
  /** a digest of what is held in these sectors (equal digests: nothing to do) */
  digest: (sectors: SectorSet) => string
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
/** the digest exchange has one size whatever the sectors and digest hold: encoded once */
const DIGEST_REQUEST_BYTES = encode({ op: 'digest', dna: DNA, sectors: new Uint8Array(64) }).length
const DIGEST_ANSWER_BYTES = encode({ digest: new Uint8Array(32) }).length

/** The real summary of a hash list: 256 buckets by core byte `byte` (count, XOR of the first 8 core bytes). */
export function summarize (hashes: readonly HoloHash[], byte: number): Summary {
  const counts = new Array<number>(256).fill(0)
  const xors = new Uint32Array(512)
  for (const h of hashes) {
    const b = h[byte]!
    counts[b]!++
    xors[2 * b] = xors[2 * b]! ^ (h[3]! | h[4]! << 8 | h[5]! << 16 | h[6]! << 24)
    xors[2 * b + 1] = xors[2 * b + 1]! ^ (h[7]! | h[8]! << 8 | h[9]! << 16 | h[10]! << 24)
  }
  return { counts, xors: new Uint8Array(xors.buffer) }
}

/** Encoded size of a fetch answer carrying records of these sizes (msgpack array + map framing). */
function fetchAnswerBytes (sizes: number[]): number {
  const n = sizes.length
  const header = n < 16 ? 1 : n < 65536 ? 3 : 5
  return encode({ records: [] }).length - 1 + header + sizes.reduce((a, b) => a + b, 0)
}

/**
 * The initiator pulls from the responder what the responder holds in `overlap` and the initiator
 * lacks. `bytesOf` gives a record's encoded size.
 */
export function syncOverlap (me: SyncSide, peer: SyncSide, overlap: SectorSet, bytesOf: (hash: HoloHash) => number): SyncOutcome {
  const out: SyncOutcome = { requests: 0, bytesSent: 0, bytesReceived: 0, fetched: [] }
  const sectors = new Uint8Array(overlap.buffer, overlap.byteOffset, overlap.byteLength)
  const ask = (req: unknown, answer: number): void => {
    out.requests++
    out.bytesSent += encode(req).length
    out.bytesReceived += answer
  }
  out.requests++
  out.bytesSent += DIGEST_REQUEST_BYTES
  out.bytesReceived += DIGEST_ANSWER_BYTES
  if (me.digest(overlap) === peer.digest(overlap)) return out

  const mine = me.hashesIn(overlap)
  const theirs = peer.hashesIn(overlap)
  const byTop = (hs: HoloHash[]): Map<number, HoloHash[]> => {
    const m = new Map<number, HoloHash[]>()
    for (const h of hs) {
      const list = m.get(h[3]!)
      if (list === undefined) m.set(h[3]!, [h])
      else list.push(h)
    }
    return m
  }
  const myTops = byTop(mine)
  const theirTops = byTop(theirs)
  const mySummary = summarize(mine, 3)
  const theirSummary = summarize(theirs, 3)
  // what the responder computes on each diff request (the summaries do not change during the round)
  const differing = diffBuckets(theirSummary, mySummary).filter(t => theirSummary.counts[t]! > 0)
  let fromTop = 0
  while (fromTop < 256) {
    // the responder answers the differing top buckets it holds something in, with their leaf summaries
    const tops = differing.filter(t => t >= fromTop).slice(0, SYNC.maxTops)
    const theirLeaves = tops.map(t => summarize(theirTops.get(t) ?? [], 4))
    ask({ op: 'diff', dna: DNA, sectors, summary: mySummary, from_top: fromTop }, encode({ tops, leaves: theirLeaves }).length)
    if (tops.length === 0) break
    const leaves: Array<[number, number]> = []
    tops.forEach((top, i) => {
      const leafTheirs = theirLeaves[i]!
      for (const leaf of diffBuckets(summarize(myTops.get(top) ?? [], 4), leafTheirs)) if (leafTheirs.counts[leaf]! > 0) leaves.push([top, leaf])
    })
    fromTop = tops[tops.length - 1]! + 1
    for (let i = 0; i < leaves.length; i += SYNC.maxLeaves) {
      const ask1 = leaves.slice(i, i + SYNC.maxLeaves)
      const wanted = new Set(ask1.map(([t, l]) => t * 256 + l))
      const hashes = theirs.filter(h => wanted.has(h[3]! * 256 + h[4]!)).slice(0, SYNC.maxHashes)
      ask({ op: 'hashes', dna: DNA, sectors, leaves: ask1 }, encode({ hashes }).length)
      const missing = hashes.filter(h => !me.knows(h))
      for (let j = 0; j < missing.length; j += SYNC.maxFetch) {
        const batch = missing.slice(j, j + SYNC.maxFetch)
        ask({ op: 'fetch', dna: DNA, hashes: batch }, fetchAnswerBytes(batch.map(bytesOf)))
        out.fetched.push(...batch)
      }
    }
  }
  return out
}
