/**
 * The HDK seen by flexnode's TypeScript zomes.
 *
 * An integrity zome exports `entry_types`, `link_types` and a pure, deterministic
 * `validate(op, ctx)`. A coordinator zome exports async functions `(hdk, payload)`; an optional
 * `init(hdk)` runs once per cell before the first call. Zomes are bundled by the conductor into
 * one self-contained ES module each (platform-neutral: no Node built-ins), whose hash enters
 * the DNA hash, so they may import only `import type` from here plus the pure helpers below.
 *
 * ```ts
 * // coordinator
 * export async function create_note (hdk: Hdk, note: Note): Promise<ActionHash> {
 *   return hdk.create_entry({ entry_type: 'Note', entry: note })
 * }
 * // integrity
 * export const entry_types = [{ name: 'Note', visibility: 'public' }] as const
 * export const link_types = [] as const
 * export function validate (op: Op): ValidateResult { return Valid }
 * ```
 */

export type HoloHash = Uint8Array
export type AgentPubKey = HoloHash
export type ActionHash = HoloHash
export type EntryHash = HoloHash
export type DnaHash = HoloHash
export type AnyLinkableHash = HoloHash
export type Signature = Uint8Array
/** microseconds since the UNIX epoch */
export type Timestamp = number

export interface AppEntryDef { entry_index: number, zome_index: number, visibility: 'Public' | 'Private' }
export type EntryType = 'Agent' | 'CapGrant' | 'CapClaim' | { App: AppEntryDef }

export type Entry =
  | { entry_type: 'App', entry: Uint8Array }
  | { entry_type: 'Agent', entry: AgentPubKey }
  | { entry_type: 'CapGrant', entry: ZomeCallCapGrant }
  | { entry_type: 'CapClaim', entry: { tag: string, grantor: AgentPubKey, secret: Uint8Array } }

export interface ActionHeader {
  author: AgentPubKey
  timestamp: Timestamp
  action_seq: number
  /** null only for the genesis `Dna` action */
  prev_action: ActionHash | null
}

export interface RateWeight { bucket_id: number, units: number }

export type ActionData =
  | { type: 'Dna', hash: DnaHash }
  | { type: 'AgentValidationPkg', membrane_proof: Uint8Array | null }
  | { type: 'InitZomesComplete' }
  | { type: 'Create', entry_type: EntryType, entry_hash: EntryHash }
  | { type: 'Update', original_action_address: ActionHash, original_entry_address: EntryHash, entry_type: EntryType, entry_hash: EntryHash }
  | { type: 'Delete', deletes_address: ActionHash, deletes_entry_address: EntryHash }
  | { type: 'CreateLink', base_address: AnyLinkableHash, target_address: AnyLinkableHash, zome_index: number, link_type: number, tag: Uint8Array, weight: RateWeight }
  | { type: 'DeleteLink', base_address: AnyLinkableHash, link_add_address: ActionHash }

export type ActionType = ActionData['type']

/** Holochain 0.7 action: a common header plus type-specific data. */
export interface Action<D extends ActionData = ActionData> {
  header: ActionHeader
  data: D
}

export interface SignedActionHashed<D extends ActionData = ActionData> {
  hashed: { hash: ActionHash, content: Action<D> }
  signature: Signature
}

export type RecordEntry =
  | { Present: Entry }
  | { Hidden: null }
  | { NotApplicable: null }
  | { NotStored: null }

export interface HolochainRecord {
  signed_action: SignedActionHashed
  entry: RecordEntry
}

export type ValidationStatus = 'Valid' | 'Rejected' | 'Abandoned'

export interface RecordDetails {
  record: HolochainRecord
  validation_status: ValidationStatus
  deletes: SignedActionHashed[]
  updates: SignedActionHashed[]
}

export interface Link {
  author: AgentPubKey
  base: AnyLinkableHash
  target: AnyLinkableHash
  timestamp: Timestamp
  zome_index: number
  link_type: number
  tag: Uint8Array
  create_link_hash: ActionHash
}

export type CapAccess =
  | { type: 'unrestricted' }
  | { type: 'transferable', value: { secret: Uint8Array } }
  | { type: 'assigned', value: { secret: Uint8Array, assignees: AgentPubKey[] } }

export type GrantedFunctions = { type: 'all' } | { type: 'listed', value: Array<[string, string]> }

export interface ZomeCallCapGrant { tag: string, access: CapAccess, functions: GrantedFunctions }

export interface AgentInfo {
  agent_initial_pubkey: AgentPubKey
  agent_latest_pubkey: AgentPubKey
  chain_head: { action: ActionHash, seq: number, timestamp: Timestamp }
}

export interface DnaInfo {
  hash: DnaHash
  name: string
  modifiers: { network_seed: string, properties: Record<string, unknown> }
  zome_names: string[]
}

export interface QueryFilter {
  entry_type?: string
  action_type?: ActionType
  sequence_range?: { start: number, end: number }
  include_entries?: boolean
  descending?: boolean
}

export interface GetLinksInput {
  base: AnyLinkableHash
  link_type: string
  tag_prefix?: Uint8Array
}

/**
 * flexnode extension: a node's presence as this conductor holds it: signed by the node, expiring,
 * gossiped over the mesh and never written to a chain. Only live records are handed out.
 */
export interface AgentPresence {
  agent: AgentPubKey
  /** when the node signed it, by its clock */
  created_at: Timestamp
  /** when it lapses, by its clock (this conductor may count it out earlier, never later) */
  expires_at: Timestamp
  /** the node's declared storage arc on the u32 ring, inclusive, may wrap; null = empty */
  arc: [number, number] | null
  availability?: 'online' | 'busy' | 'draining'
  load?: { cpu_percent: number, gpu_percent: number, memory_percent: number }
  /** requests generating or waiting, per model */
  queue?: Record<string, number>
}

/** Host functions offered to coordinator zomes. */
export interface Hdk {
  create_entry: (input: { entry_type: string, entry: unknown }) => Promise<ActionHash>
  update_entry: (input: { original_action_hash: ActionHash, entry: unknown }) => Promise<ActionHash>
  delete_entry: (action_hash: ActionHash) => Promise<ActionHash>
  create_link: (input: { base: AnyLinkableHash, target: AnyLinkableHash, link_type: string, tag?: Uint8Array }) => Promise<ActionHash>
  delete_link: (create_link_hash: ActionHash) => Promise<ActionHash>
  get: (hash: ActionHash | EntryHash) => Promise<HolochainRecord | null>
  get_details: (action_hash: ActionHash) => Promise<RecordDetails | null>
  /**
   * flexnode extension: the newest live version of a record (the original or its update with
   * the latest timestamp, ties broken by hash), answered from an index instead of walking all updates.
   */
  get_latest: (original_action_hash: ActionHash) => Promise<HolochainRecord | null>
  get_links: (input: GetLinksInput) => Promise<Link[]>
  query: (filter?: QueryFilter) => Promise<HolochainRecord[]>
  agent_info: () => Promise<AgentInfo>
  /**
   * flexnode extension: the freshest live presence of each agent (null: none within its expiry,
   * i.e. offline), in the order asked; at most 4096 agents per call.
   */
  agent_presence: (agents: AgentPubKey[]) => Promise<Array<AgentPresence | null>>
  dna_info: () => DnaInfo
  emit_signal: (payload: unknown) => void
  sys_time: () => Timestamp
  random_bytes: (length: number) => Uint8Array
  /** sign msgpack(data) with a key this conductor holds */
  sign: (key: AgentPubKey, data: unknown) => Promise<Signature>
  verify_signature: (key: AgentPubKey, signature: Signature, data: unknown) => Promise<boolean>
  create_cap_grant: (grant: ZomeCallCapGrant) => Promise<ActionHash>
  /** the EntryHash an anchor path stands for (not committed), for use as a link base */
  path_entry_hash: (path: string) => EntryHash
  /** decode an app entry of a record */
  entry_of: <T = unknown>(record: HolochainRecord) => T | undefined
  encode_hash: (hash: HoloHash) => string
  decode_hash: (str: string) => HoloHash
}

// ---------------------------------------------------------------------------------------------
// Integrity
// ---------------------------------------------------------------------------------------------

export interface EntryTypeDef { name: string, visibility: 'public' | 'private' }

export type OpType =
  | 'CreateRecord' | 'CreateEntry' | 'AgentActivity'
  | 'UpdateEntry' | 'UpdateRecord' | 'DeleteEntry' | 'DeleteRecord'
  | 'CreateLink' | 'DeleteLink'

/** An op as given to `validate`: the action, its entry if any, and names resolved for the zome. */
export interface Op {
  type: OpType
  action: Action
  action_hash: ActionHash
  signature: Signature
  entry: Entry | null
  /** the decoded app entry and its type name, when the action creates or updates an app entry of this zome */
  app_entry?: { entry_type: string, value: unknown }
  /** the link type name, for CreateLink ops of this zome */
  link_type?: string
}

export type ValidateResult =
  | { type: 'Valid' }
  | { type: 'Invalid', reason: string }
  | { type: 'UnresolvedDependencies', hashes: HoloHash[] }

export const Valid: ValidateResult = Object.freeze({ type: 'Valid' }) as ValidateResult
export function Invalid (reason: string): ValidateResult { return { type: 'Invalid', reason } }

/** Read-only, deterministic look-ups for validation; a miss ends validation with UnresolvedDependencies. */
export interface ValidateContext {
  must_get_action: (hash: ActionHash) => SignedActionHashed
  must_get_entry: (hash: EntryHash) => Entry
  must_get_valid_record: (hash: ActionHash) => HolochainRecord
  /** decode an app entry's bytes */
  decode: <T = unknown>(entry: Entry) => T
  dna_info: () => DnaInfo
  encode_hash: (hash: HoloHash) => string
  decode_hash: (str: string) => HoloHash
  /** whether `signature` is the agent's ed25519 signature of msgpack(data) (deterministic: a second party's consent in an entry) */
  verify_signature: (key: AgentPubKey, signature: Signature, data: unknown) => boolean
}

export interface IntegrityZome {
  entry_types: readonly EntryTypeDef[]
  link_types: readonly string[]
  validate: (op: Op, ctx: ValidateContext) => ValidateResult
}

export type ZomeFunction = (hdk: Hdk, payload: unknown) => Promise<unknown> | unknown

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
