/**
 * The typed client of the artifact_index DNA, for agent code (see `zomes-ts/client.ts`). Agent
 * keys and action hashes come back as the `Uint8Array`s the entries hold; CIDs as their
 * canonical text (any text form of a CID is accepted).
 *
 * ```ts
 * const index = new ArtifactIndexClient(appClient)
 * const rec = await index.record({ cid, name: 'model.gguf', size, sha256, media_type: 'application/octet-stream', produced_by: null, replication: { min: 2, max: 4 } })
 * await index.provide(cid)
 * const holders = await index.providers(cid)      // [{ provider, since, action_hash }]
 * ```
 */
import type { AgentPubKey } from '../hdk/index.ts'
import { DnaClient, type CellTarget, type ZomeCallOptions, type ZomeCaller } from '../client.ts'
import type { ArtifactInfo, ArtifactInput, ListOptions, ProvenanceInfo, ProvenanceLink, ProvidedInfo, ProviderInfo, ReplicationStatus } from './types.ts'

export type { ArtifactInfo, ArtifactInput, ListOptions, ProvenanceInfo, ProvenanceLink, ProvidedInfo, ProviderInfo, ReplicationStatus }

export const ARTIFACT_INDEX_ROLE = 'artifact_index'

export class ArtifactIndexClient extends DnaClient {
  constructor (caller: ZomeCaller, target: CellTarget = { role_name: ARTIFACT_INDEX_ROLE }) {
    super(caller, target)
  }

  /**
   * Records an artifact with this agent as producer and now as `created_at`; rejects with the
   * validation reason for a bad shape (`ArtifactRecord.sha256 must be 64 lowercase hex digits`…),
   * with `ZomeInputError` (field `cid`) for a CID that does not parse. Idempotent: this agent's
   * earlier record of the CID saying the same is returned.
   */
  async record (input: ArtifactInput, options?: ZomeCallOptions): Promise<ArtifactInfo> {
    return await this.call('artifacts', 'record', input, options)
  }

  /** The records of a CID, earliest first (`created_at`, then action hash), each with its author and action hash. */
  async get (cid: string, options?: ZomeCallOptions): Promise<ArtifactInfo[]> {
    return await this.call('artifacts', 'get', cid, options)
  }

  /** The newest records, newest first; at most `limit` (default 100, at most 10000). */
  async list (opts: ListOptions = {}, options?: ZomeCallOptions): Promise<ArtifactInfo[]> {
    return await this.call('artifacts', 'list', opts, options)
  }

  /** One producer's records, earliest first. */
  async byProducer (agent: AgentPubKey, options?: ZomeCallOptions): Promise<ArtifactInfo[]> {
    return await this.call('artifacts', 'by_producer', agent, options)
  }

  /** States a provenance link of a CID (idempotent per author, CID, kind and target). */
  async link (link: ProvenanceLink, options?: ZomeCallOptions): Promise<ProvenanceInfo> {
    return await this.call('provenance', 'link', link, options)
  }

  /** The provenance statements of a CID, earliest first, each with its author and time. */
  async provenance (cid: string, options?: ZomeCallOptions): Promise<ProvenanceInfo[]> {
    return await this.call('provenance', 'provenance', cid, options)
  }

  /** States that this agent provides (holds) a CID; idempotent: its live statement is returned when it has one. */
  async provide (cid: string, options?: ZomeCallOptions): Promise<ProviderInfo> {
    return await this.call('replication', 'provide', cid, options)
  }

  /** Withdraws this agent's statement that it provides a CID; false when it had none. */
  async withdraw (cid: string, options?: ZomeCallOptions): Promise<boolean> {
    return await this.call('replication', 'withdraw', cid, options)
  }

  /** A CID's providers, one per agent, earliest first. */
  async providers (cid: string, options?: ZomeCallOptions): Promise<ProviderInfo[]> {
    return await this.call('replication', 'providers', cid, options)
  }

  /** The CIDs this agent provides, earliest first. */
  async provided (options?: ZomeCallOptions): Promise<ProvidedInfo[]> {
    return await this.call('replication', 'provided', null, options)
  }

  /** A CID's replication: the `{min, max}` of its earliest record and its providers; null when it has no record. */
  async status (cid: string, options?: ZomeCallOptions): Promise<ReplicationStatus | null> {
    return await this.call('replication', 'status', cid, options)
  }
}
