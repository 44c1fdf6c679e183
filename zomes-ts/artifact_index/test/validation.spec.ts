/**
 * artifact_index validation. Malformed entries committed through the zomes are refused by the
 * integrity zome with their reason, leaving nothing behind; the rules a coordinator cannot break
 * (it sets the producer and provider to the caller, canonicalises CIDs) are checked on hand-built
 * ops by `validate` itself: a forged producer or provider, a CID in another text form, a time far
 * from the action's, an update, a delete by someone else, links to the wrong thing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import { base32 } from 'multiformats/bases/base32'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createTestConductor, FLEXSTACK_HAPP, type TestConductor } from '../../../fixtures/index.ts'
import { InProcessAppClient } from '../../../agent/src/conductor/in-process-client.ts'
import { decode, encode } from '../../../agent/src/conductor/codec.ts'
import { decodeHash, encodeHash, hashFrom32, hashFromContent } from '../../../agent/src/holo/hash.ts'
import type { Action, ActionData, ActionHash, HolochainRecord, Op, ValidateContext } from '../../hdk/index.ts'
import { validate } from '../integrity/index.ts'
import { ArtifactIndexClient } from '../client.ts'
import { canonicalCid, cidProblem } from '../rules.ts'
import type { ArtifactInput } from '../types.ts'

const HELLO = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const SHA = 'a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447'
const digest = await sha256.digest(new TextEncoder().encode('hello world\n'))
const V1 = CID.create(1, raw.code, digest)

const input = (over: Record<string, unknown> = {}): ArtifactInput => ({
  cid: HELLO, name: 'hello.txt', size: 12, sha256: SHA, media_type: 'text/plain', produced_by: null, replication: { min: 1, max: 3 }, ...over
}) as ArtifactInput

describe('artifact_index validation of committed entries', () => {
  let t: TestConductor
  let client: ArtifactIndexClient

  beforeAll(async () => {
    t = await createTestConductor()
    await t.conductor.installApp({ source: { type: 'path', value: FLEXSTACK_HAPP }, agent_key: t.agent, installed_app_id: 'flexstack', network_seed: 'ripple-local' })
    await t.conductor.enableApp({ installed_app_id: 'flexstack' })
    client = new ArtifactIndexClient(await InProcessAppClient.connect(t.conductor, 'flexstack'))
  }, 60_000)
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('refuses malformed artifact records with their reason, and keeps none of them', async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ sha256: SHA.toUpperCase() }, /ArtifactRecord.sha256 must be 64 lowercase hex digits/],
      [{ sha256: SHA.slice(1) }, /ArtifactRecord.sha256 must be 64 lowercase hex digits/],
      [{ sha256: `${SHA.slice(1)}g` }, /ArtifactRecord.sha256 must be 64 lowercase hex digits/],
      [{ sha256: 12 }, /ArtifactRecord.sha256 must be a string/],
      [{ size: -1 }, /ArtifactRecord.size must be at least 0/],
      [{ size: 1.5 }, /ArtifactRecord.size must be an integer/],
      [{ size: 2 ** 53 }, /ArtifactRecord.size must be at most 9007199254740991/],
      [{ size: '12' }, /ArtifactRecord.size must be a finite number/],
      [{ name: '' }, /ArtifactRecord.name must be at least 1 characters/],
      [{ name: 'x'.repeat(256) }, /ArtifactRecord.name must be at most 255 characters/],
      [{ name: 'bad\nname' }, /ArtifactRecord.name must not contain control characters/],
      [{ name: 'bell\u0007' }, /ArtifactRecord.name must not contain control characters/],
      [{ name: 'c1\u0085' }, /ArtifactRecord.name must not contain control characters/],
      [{ media_type: 'text' }, /ArtifactRecord.media_type must be type\/subtype/],
      [{ media_type: 'text/' }, /ArtifactRecord.media_type must be type\/subtype/],
      [{ media_type: 'text/plain; charset=utf-8' }, /ArtifactRecord.media_type must be type\/subtype/],
      [{ media_type: '' }, /ArtifactRecord.media_type must be at least 1 characters/],
      [{ replication: { min: 0, max: 3 } }, /ArtifactRecord.replication.min must be at least 1/],
      [{ replication: { min: 1, max: 65 } }, /ArtifactRecord.replication.max must be at most 64/],
      [{ replication: { min: 4, max: 3 } }, /ArtifactRecord.replication.min must not exceed replication.max/],
      [{ replication: { min: 1.5, max: 3 } }, /ArtifactRecord.replication.min must be an integer/],
      [{ replication: { min: 1 } }, /ArtifactRecord.replication.max is required/],
      [{ replication: 3 }, /ArtifactRecord.replication must be an object/],
      [{ produced_by: { allocation: '' } }, /ArtifactRecord.produced_by.allocation must be 1 to 128 characters/],
      [{ produced_by: { task: 'a\u0000b' } }, /ArtifactRecord.produced_by.task must not contain control characters/],
      [{ produced_by: { allocation: 'a', task: 'b' } }, /ArtifactRecord.produced_by must be null, \{allocation\} or \{task\}/],
      [{ produced_by: { job: 'x' } }, /ArtifactRecord.produced_by must be null, \{allocation\} or \{task\}/],
      [{ produced_by: 'alloc-1' }, /ArtifactRecord.produced_by must be null, \{allocation\} or \{task\}/]
    ]
    for (const [over, reason] of bad) await expect(client.record(input(over)), JSON.stringify(over)).rejects.toThrow(reason)
    // a CID that does not parse never reaches validation: the zome refuses it (field cid)
    for (const cid of ['', 'hello', 'Qm', `${HELLO}x`, 'bafyNOTBASE32', 42, null]) {
      await expect(client.record(input({ cid })), String(cid)).rejects.toThrow(/ZomeInputError: record takes a CID \(CIDv0 or CIDv1\)/)
    }
    expect(await client.get(HELLO)).toEqual([])
    expect(await client.list()).toEqual([])
    // extra fields never reach the chain: the zome writes the record's own fields
    const ok = await client.record(input({ secret: 1, produced_by: undefined }))
    expect(Object.keys(ok).sort()).toEqual(['action_hash', 'author', 'cid', 'created_at', 'media_type', 'name', 'produced_by', 'producer', 'replication', 'sha256', 'size'])
    expect(ok.produced_by).toBeNull()
    expect(await client.get(HELLO)).toHaveLength(1)
  })

  it('refuses malformed provenance links', async () => {
    const cid = V1.toString()
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ kind: 'copied_from', target: HELLO }, /ProvenanceLink.kind must be one of derived_from, built_by, produced_under/],
      [{ kind: 'derived_from', target: 'not a cid' }, /ProvenanceLink.target is not a CID \(CIDv0 or CIDv1\)/],
      [{ kind: 'derived_from', target: V1.toString(base58btc) }, /ProvenanceLink: an artifact is not derived from itself/],
      [{ kind: 'built_by', target: '' }, /ProvenanceLink.target must be at least 1 characters/],
      [{ kind: 'built_by', target: 'x'.repeat(256) }, /ProvenanceLink.target must be at most 255 characters/],
      [{ kind: 'produced_under', target: 'alloc\r1' }, /ProvenanceLink.target must not contain control characters/],
      [{ kind: 'built_by' }, /ProvenanceLink.target is required/]
    ]
    for (const [over, reason] of bad) await expect(client.link({ cid, ...over } as never), JSON.stringify(over)).rejects.toThrow(reason)
    await expect(client.link({ cid: 'nope', kind: 'built_by', target: 'me' })).rejects.toThrow(/ZomeInputError: link takes a CID/)
    expect(await client.provenance(cid)).toEqual([])
  })
})

describe('artifact_index validate() on hand-built ops', () => {
  const producer = hashFrom32(new Uint8Array(32).fill(1), 'Agent')
  const stranger = hashFrom32(new Uint8Array(32).fill(2), 'Agent')
  const now = Date.now() * 1000
  /** records the ops refer to, by encoded action hash */
  const records = new Map<string, HolochainRecord>()
  const ctx: ValidateContext = {
    must_get_action: (h) => records.get(encodeHash(h))!.signed_action,
    must_get_entry: () => { throw new Error('unexpected lookup') },
    must_get_valid_record: (h) => {
      const r = records.get(encodeHash(h))
      if (r === undefined) throw new Error('unresolved')
      return r
    },
    decode: (e) => decode(e.entry as Uint8Array) as never,
    dna_info: () => ({ hash: hashFrom32(new Uint8Array(32), 'Dna'), name: 'artifact_index', modifiers: { network_seed: 'x', properties: {} }, zome_names: [] }),
    encode_hash: encodeHash,
    decode_hash: (s) => decodeHash(s),
    verify_signature: () => { throw new Error('unexpected signature check') }
  }
  const header = (author: Uint8Array): Action['header'] => ({ author, timestamp: now, action_seq: 5, prev_action: hashFrom32(new Uint8Array(32).fill(9), 'Action') })
  const op = (author: Uint8Array, data: ActionData, app_entry?: Op['app_entry'], link_type?: string): Op => ({
    type: 'CreateRecord', action: { header: header(author), data }, action_hash: hashFromContent(data, 'Action'), signature: new Uint8Array(64), entry: null, app_entry, link_type
  })
  const INDEX: Record<string, number> = { ArtifactRecord: 0, ProvenanceLink: 1, ProviderRecord: 2 }
  const entryType = (type: string): { App: { entry_index: number, zome_index: number, visibility: 'Public' } } => ({ App: { entry_index: INDEX[type]!, zome_index: 0, visibility: 'Public' } })
  /** an entry of `type` committed by `author`, stored for look-ups; returns its action hash */
  const stored = (author: Uint8Array, type: string, value: unknown): ActionHash => {
    const data: ActionData = { type: 'Create', entry_type: entryType(type), entry_hash: hashFromContent(value, 'Entry') }
    const hash = hashFromContent(data, 'Action')
    records.set(encodeHash(hash), { signed_action: { hashed: { hash, content: { header: header(author), data } }, signature: new Uint8Array(64) }, entry: { Present: { entry_type: 'App', entry: encode(value) } } })
    return hash
  }
  const create = (author: Uint8Array, entry_type: string, value: unknown): Op => op(author, { type: 'Create', entry_type: entryType(entry_type), entry_hash: hashFromContent(value, 'Entry') }, { entry_type, value })
  const link = (author: Uint8Array, link_type: string, target: ActionHash, base: Uint8Array = hashFrom32(new Uint8Array(32).fill(7), 'Entry')): Op =>
    op(author, { type: 'CreateLink', base_address: base, target_address: target, zome_index: 0, link_type: 0, tag: new Uint8Array(), weight: { bucket_id: 0, units: 0 } }, undefined, link_type)
  const del = (author: Uint8Array, original: ActionHash): Op => op(author, { type: 'Delete', deletes_address: original, deletes_entry_address: hashFrom32(new Uint8Array(32).fill(3), 'Entry') })
  const reason = (o: Op): string => { const r = validate(o, ctx); return r.type === 'Invalid' ? r.reason : r.type }

  const record = { ...input(), producer, created_at: now }
  const provider = { cid: HELLO, provider: producer, since: now }
  const provenance = { cid: HELLO, kind: 'derived_from', target: V1.toString() }

  it('refuses a forged producer or provider: each must be the author', () => {
    expect(reason(create(producer, 'ArtifactRecord', record))).toBe('Valid')
    expect(reason(create(stranger, 'ArtifactRecord', record))).toBe('an ArtifactRecord\'s producer must be its author')
    expect(reason(create(producer, 'ArtifactRecord', { ...record, producer: new Uint8Array(39) }))).toBe('ArtifactRecord.producer must be an agent key')
    expect(reason(create(producer, 'ProviderRecord', provider))).toBe('Valid')
    expect(reason(create(stranger, 'ProviderRecord', provider))).toBe('a ProviderRecord\'s provider must be its author')
    expect(reason(create(producer, 'ProviderRecord', { ...provider, provider: hashFrom32(new Uint8Array(32), 'Entry') }))).toBe('ProviderRecord.provider must be an agent key')
    // provenance may be stated by anyone
    expect(reason(create(stranger, 'ProvenanceLink', provenance))).toBe('Valid')
  })

  it('refuses CIDs that do not parse or are not in canonical text, and times far from the action\'s', () => {
    expect(reason(create(producer, 'ArtifactRecord', { ...record, cid: 'QmNope' }))).toBe('ArtifactRecord.cid is not a CID (CIDv0 or CIDv1)')
    expect(reason(create(producer, 'ArtifactRecord', { ...record, cid: V1.toString(base58btc) }))).toBe(`ArtifactRecord.cid must be the CID's canonical text (${V1.toString()})`)
    expect(reason(create(producer, 'ArtifactRecord', { ...record, cid: V1.toString(base32).toUpperCase() }))).toBe('ArtifactRecord.cid is not a CID (CIDv0 or CIDv1)')
    expect(reason(create(producer, 'ProviderRecord', { ...provider, cid: V1.toString(base58btc) }))).toMatch(/^ProviderRecord.cid must be the CID's canonical text/)
    expect(reason(create(producer, 'ProvenanceLink', { ...provenance, target: V1.toString(base58btc) }))).toMatch(/^ProvenanceLink.target must be the CID's canonical text/)
    expect(reason(create(producer, 'ArtifactRecord', { ...record, created_at: now - 3_600_000_000 }))).toBe('ArtifactRecord.created_at is more than 5 minutes from the action\'s time')
    expect(reason(create(producer, 'ProviderRecord', { ...provider, since: now + 3_600_000_000 }))).toBe('ProviderRecord.since is more than 5 minutes from the action\'s time')
    expect(reason(create(producer, 'ArtifactRecord', { ...record, produced_by: undefined }))).toBe('ArtifactRecord.produced_by is required (null when unknown)')
    expect(reason(create(producer, 'ArtifactRecord', { ...record, extra: 1 }))).toBe('ArtifactRecord.extra is not a known field')
  })

  it('never lets an entry be updated; records and provenance are never deleted; a ProviderRecord only by its provider', () => {
    const r = stored(producer, 'ArtifactRecord', record)
    const update = op(producer, { type: 'Update', original_action_address: r, original_entry_address: hashFromContent(record, 'Entry'), entry_type: entryType('ArtifactRecord'), entry_hash: hashFromContent(record, 'Entry') }, { entry_type: 'ArtifactRecord', value: { ...record, name: 'renamed' } })
    expect(reason(update)).toBe('ArtifactRecord entries are never updated')
    expect(reason(del(producer, r))).toBe('ArtifactRecord entries are never deleted')
    expect(reason(del(producer, stored(stranger, 'ProvenanceLink', provenance)))).toBe('ProvenanceLink entries are never deleted')
    const p = stored(producer, 'ProviderRecord', provider)
    expect(reason(del(stranger, p))).toBe('only its provider may delete a ProviderRecord')
    expect(reason(del(producer, p))).toBe('Valid')
  })

  it('checks what each link leads to, who made it, and an agent base', () => {
    const r = stored(producer, 'ArtifactRecord', record)
    const p = stored(producer, 'ProviderRecord', provider)
    const l = stored(stranger, 'ProvenanceLink', provenance)
    expect(reason(link(producer, 'CidToArtifact', r))).toBe('Valid')
    expect(reason(link(producer, 'AllArtifacts', r))).toBe('Valid')
    expect(reason(link(stranger, 'CidToArtifact', r))).toBe('CidToArtifact: only the author of an ArtifactRecord links it')
    expect(reason(link(producer, 'CidToArtifact', p))).toBe('CidToArtifact: the link must target an ArtifactRecord')
    expect(reason(link(producer, 'AgentToArtifact', r, producer))).toBe('Valid')
    expect(reason(link(producer, 'AgentToArtifact', r, stranger))).toBe('AgentToArtifact: the base must be the link creator\'s own agent key')
    expect(reason(link(producer, 'CidToProvider', p))).toBe('Valid')
    expect(reason(link(stranger, 'CidToProvider', p))).toBe('CidToProvider: only the author of a ProviderRecord links it')
    expect(reason(link(producer, 'AgentToProvider', p, producer))).toBe('Valid')
    expect(reason(link(stranger, 'AgentToProvider', p, stranger))).toBe('AgentToProvider: only the author of a ProviderRecord links it')
    expect(reason(link(stranger, 'CidToProvenance', l))).toBe('Valid')
    expect(reason(link(stranger, 'CidToProvenance', r))).toBe('CidToProvenance: the link must target a ProvenanceLink')
    expect(reason(link(producer, 'Elsewhere', r))).toBe('unknown link type Elsewhere')
  })
})

describe('artifact_index CID rules', () => {
  it('takes what multiformats parses as CIDv0 or CIDv1, in its canonical text', () => {
    expect(canonicalCid(HELLO)).toBe(HELLO)
    expect(canonicalCid(V1.toString())).toBe(V1.toString())
    expect(canonicalCid(V1.toString(base58btc))).toBe(V1.toString())
    expect(V1.toString()).toBe('bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4')
    for (const bad of ['', 'Q', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O', 'b', 'xyz', 'Qm'.padEnd(300, 'a'), 7, null, undefined]) expect(canonicalCid(bad), String(bad)).toBeNull()
    expect(cidProblem(HELLO, 'x')).toBeNull()
    expect(cidProblem('nope', 'x')).toBe('x is not a CID (CIDv0 or CIDv1)')
  })
})
