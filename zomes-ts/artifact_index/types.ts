/**
 * artifact_index's entries and zome-function types, shared by its zomes, its typed client and the
 * agent's `artifacts` capability.
 *
 * The DNA is the mesh's catalogue of content-addressed artifacts (models, WASM modules, build
 * outputs, index snapshots): what a CID is (`ArtifactRecord`, signed by its producer), where it
 * came from (`ProvenanceLink`), and which nodes hold a copy (`ProviderRecord`). The bytes live in
 * the nodes' artifact stores (IPFS), never in the DHT; they are verified against the CID when
 * fetched, so the DNA checks shapes and authorship only.
 *
 * CIDs are held in their canonical text form (`CID.toString()`: base58btc for CIDv0, base32 for
 * CIDv1), so one artifact has one anchor; the zomes canonicalise what they are given. Times are
 * µs since the Unix epoch, like action timestamps.
 */
import type { ActionHash, AgentPubKey } from '../hdk/index.ts'

/** The bounds validation enforces. */
export const ARTIFACT_LIMITS = {
  /** characters of `ArtifactRecord.name` */
  maxName: 255,
  /** characters of a media type (`type/subtype`) */
  maxMediaType: 255,
  /** characters of an allocation or task id in `produced_by` */
  maxProducedBy: 128,
  /** characters of a `ProvenanceLink.target` */
  maxTarget: 255,
  /** the most providers a record may ask for (`replication.max`) */
  maxReplicas: 64,
  /** characters of a CID's text */
  maxCid: 256,
  /** an entry's own time (`created_at`, `since`) is at most this far from its action's timestamp (µs) */
  maxClockSkewUs: 5 * 60 * 1_000_000
} as const

export const PROVENANCE_KINDS = ['derived_from', 'built_by', 'produced_under'] as const
export type ProvenanceKind = typeof PROVENANCE_KINDS[number]

/** What produced an artifact: an allocation of resource_mesh, a task, or nothing known. */
export type ProducedBy = { allocation: string } | { task: string } | null

/** How many providers an artifact wants: nodes pin it below `min`, stop at `max`; 1 ≤ min ≤ max ≤ 64. */
export interface ReplicationPolicy { min: number, max: number }

/** An artifact: its CID and what the bytes are, signed by its producer (the action's author). */
export interface ArtifactRecord {
  /** canonical CID text */
  cid: string
  /** 1-255 characters, no control characters */
  name: string
  /** bytes of the file */
  size: number
  /** sha256 of the bytes: 64 lowercase hex digits */
  sha256: string
  /** `type/subtype` (RFC 6838 names, no parameters) */
  media_type: string
  /** the author of the entry: a record naming another producer is invalid */
  producer: AgentPubKey
  produced_by: ProducedBy
  replication: ReplicationPolicy
  /** µs, within `maxClockSkewUs` of the action */
  created_at: number
}

/** What `record` takes: the zome sets the producer (the caller) and the time. */
export type ArtifactInput = Omit<ArtifactRecord, 'producer' | 'created_at'>

/**
 * A statement about an artifact's origin: `derived_from` another CID, `built_by` a builder (an
 * agent key in base64, a tool), `produced_under` an allocation. Any agent may state one; readers
 * see who did (`ProvenanceInfo.author`).
 */
export interface ProvenanceLink {
  /** canonical CID text */
  cid: string
  kind: ProvenanceKind
  /** 1-255 characters, no control characters; a canonical CID other than `cid` for `derived_from` */
  target: string
}

/** A node's statement that it holds (pins) a CID; written and withdrawn (deleted) by that node only. */
export interface ProviderRecord {
  /** canonical CID text */
  cid: string
  /** the author of the entry */
  provider: AgentPubKey
  /** µs, within `maxClockSkewUs` of the action */
  since: number
}

/** An ArtifactRecord as read back: with its author (= producer) and action hash. */
export interface ArtifactInfo extends ArtifactRecord {
  author: AgentPubKey
  action_hash: ActionHash
}

/** A ProvenanceLink as read back: who stated it, when (its action's timestamp, µs), its action hash. */
export interface ProvenanceInfo extends ProvenanceLink {
  author: AgentPubKey
  at: number
  action_hash: ActionHash
}

/** A provider of a CID. */
export interface ProviderInfo {
  provider: AgentPubKey
  since: number
  action_hash: ActionHash
}

/** A CID this agent provides. */
export interface ProvidedInfo {
  cid: string
  since: number
  action_hash: ActionHash
}

/** A CID's replication as the DNA knows it: the policy of its earliest record and its providers now. */
export interface ReplicationStatus {
  cid: string
  min: number
  max: number
  providers: ProviderInfo[]
}

/** Options of `list`. */
export interface ListOptions {
  /** @default 100 (at most 10000) */
  limit?: number
}

export const LIST_LIMITS = { default: 100, max: 10_000 } as const
