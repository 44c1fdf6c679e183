/**
 * What the simulation's messages weigh. Records are built in the shape of the real ones and
 * measured with the conductor's own msgpack `encode`, so byte figures follow the wire format.
 *
 * - An op record is a `NetRecord` (a signed `Create` action with a public app entry), placed at
 *   one basis (its entry hash); the summaries of anti-entropy are over its action hash, as in
 *   `DhtSpace`.
 * - A presence record is modelled in `presenceMessageBytes` from the fields documented for
 *   `agent/src/conductor/network/presence.ts` (branch i9-presence). When that module lands, that
 *   one function should encode a real signed record instead.
 */
import { encode, encodeCanonical } from '../../agent/src/conductor/codec.ts'
import { hashFrom32, type HoloHash } from '../../agent/src/holo/hash.ts'
import type { Arc } from '../../agent/src/conductor/network/arc.ts'
import type { Rng } from './rng.ts'

export interface SimOp {
  /** the action hash: what summaries and fetches name */
  hash: HoloHash
  /** DHT location of the op's basis */
  loc: number
  /** encoded size of the record (action + signature + entry) */
  bytes: number
  author: number
}

/** Entry payload bytes: uniform in this range (a NodeCapability entry is about 1 KB) */
export const ENTRY_BYTES: readonly [number, number] = [200, 2000]

/** A record in the shape of `NetRecord` with a random public app entry, and its basis. */
export function opRecord (rng: Rng, author: HoloHash, seq: number, timestampUs: number, prev: HoloHash): { record: unknown, hash: HoloHash, basis: HoloHash } {
  const entry = rng.bytes(ENTRY_BYTES[0] + rng.int(ENTRY_BYTES[1] - ENTRY_BYTES[0] + 1))
  const basis = hashFrom32(rng.bytes(32), 'Entry')
  const record = {
    action: {
      header: { author, timestamp: timestampUs, action_seq: seq, prev_action: prev },
      data: { type: 'Create', entry_type: { App: { entry_index: 0, zome_index: 0, visibility: 'Public' } }, entry_hash: basis }
    },
    signature: rng.bytes(64),
    entry: { entry_type: 'App', entry }
  }
  return { record, hash: hashFrom32(rng.bytes(32), 'Action'), basis }
}

export function recordBytes (record: unknown): number {
  return encode(record).length
}

/** gossipsub framing around one message on the presence topic (StrictNoSign: topic + data fields) */
const GOSSIP_FRAME_BYTES = 8

/**
 * Bytes of one presence message on the wire: `{info: <canonical msgpack of the record>,
 * signature}` on the topic `/flexstack/<network>/presence`, the record holding agent,
 * created_at/expires_at (µs), is_tombstone, arc, availability, load and a queue depth per model.
 */
export function presenceMessageBytes (rng: Rng, agent: HoloHash, arc: Arc, nowUs: number, lifetimeMs: number, models: number): number {
  const queue: Record<string, number> = {}
  for (let m = 0; m < models; m++) queue[`model-${m}-q4_k_m`] = rng.int(8)
  const info = {
    agent,
    created_at: nowUs,
    expires_at: nowUs + lifetimeMs * 1000,
    is_tombstone: false,
    arc: arc === null ? null : [arc[0], arc[1]],
    availability: 'online',
    load: { cpu_percent: rng.next() * 100, gpu_percent: rng.next() * 100, memory_percent: rng.next() * 100 },
    queue
  }
  const topic = '/flexstack/mainnet/presence'
  return encode({ info: encodeCanonical(info), signature: rng.bytes(64) }).length + topic.length + GOSSIP_FRAME_BYTES
}
