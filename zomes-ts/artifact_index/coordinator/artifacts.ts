/**
 * artifacts: the CID registry. A node records what a CID is (name, size, sha256, media type, what
 * produced it, how many providers it wants), signed by it as producer; any node reads a CID's
 * records, the newest records, or one producer's.
 */
import type { Hdk } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isMap } from '../../hdk/values.ts'
import { byteOrder, isAgentKey, sameAgent } from '../rules.ts'
import { LIST_LIMITS, type ArtifactInfo, type ArtifactInput, type ArtifactRecord, type ListOptions } from '../types.ts'
import { artifactsAnchor, artifactsAt, artifactsOf, checkCid, cidAnchor, me } from './shared.ts'

/** What makes two records of one producer the same statement (all but the time). */
const sameStatement = (a: ArtifactRecord, b: ArtifactRecord): boolean =>
  JSON.stringify([a.name, a.size, a.sha256, a.media_type, a.produced_by, a.replication.min, a.replication.max]) ===
  JSON.stringify([b.name, b.size, b.sha256, b.media_type, b.produced_by, b.replication.min, b.replication.max])

/**
 * Records an artifact, the caller as producer, now as `created_at`; validation checks the rest.
 * Idempotent: the caller's earlier record of the same CID saying the same is returned instead.
 */
export async function record (hdk: Hdk, input: ArtifactInput): Promise<ArtifactInfo> {
  if (!isMap(input)) throw new ZomeInputError('record takes {cid, name, size, sha256, media_type, produced_by, replication}')
  const cid = checkCid(input.cid, 'record')
  const producer = await me(hdk)
  const replication = isMap(input.replication) ? { min: input.replication.min, max: input.replication.max } : input.replication
  const entry: ArtifactRecord = {
    cid,
    name: input.name,
    size: input.size,
    sha256: input.sha256,
    media_type: input.media_type,
    producer,
    produced_by: input.produced_by ?? null,
    replication,
    created_at: hdk.sys_time()
  }
  const mine = await artifactsAt(hdk, cidAnchor(hdk, cid), 'CidToArtifact', l => sameAgent(l.author, producer))
  const same = mine.find(r => r.cid === cid && sameStatement(r, entry))
  if (same !== undefined) return same
  const action_hash = await hdk.create_entry({ entry_type: 'ArtifactRecord', entry })
  await hdk.create_link({ base: cidAnchor(hdk, cid), target: action_hash, link_type: 'CidToArtifact' })
  await hdk.create_link({ base: artifactsAnchor(hdk), target: action_hash, link_type: 'AllArtifacts' })
  await hdk.create_link({ base: producer, target: action_hash, link_type: 'AgentToArtifact' })
  return { ...entry, author: producer, action_hash }
}

/** The records of a CID (any text form of it), earliest first. */
export async function get (hdk: Hdk, cid: string): Promise<ArtifactInfo[]> {
  const canonical = checkCid(cid, 'get')
  return (await artifactsAt(hdk, cidAnchor(hdk, canonical), 'CidToArtifact')).filter(r => r.cid === canonical)
}

/** The newest records (by when they were linked), newest first; at most `limit`. */
export async function list (hdk: Hdk, options: ListOptions | null): Promise<ArtifactInfo[]> {
  if (options !== null && options !== undefined && !isMap(options)) throw new ZomeInputError('list takes {limit?} or nothing')
  const limit: unknown = options?.limit ?? LIST_LIMITS.default
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > LIST_LIMITS.max) throw new ZomeInputError(`list's limit must be a whole number from 1 to ${LIST_LIMITS.max}`, 'limit')
  const links = await hdk.get_links({ base: artifactsAnchor(hdk), link_type: 'AllArtifacts' })
  const newest = links.sort((a, b) => b.timestamp - a.timestamp || byteOrder(b.create_link_hash, a.create_link_hash)).slice(0, limit)
  return (await artifactsOf(hdk, newest)).reverse()
}

/** One producer's records, earliest first. */
export async function by_producer (hdk: Hdk, agent: Uint8Array): Promise<ArtifactInfo[]> {
  if (!isAgentKey(agent)) throw new ZomeInputError('by_producer takes an agent key', 'agent')
  return (await artifactsAt(hdk, agent, 'AgentToArtifact')).filter(r => sameAgent(r.producer, agent))
}
