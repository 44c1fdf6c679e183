/**
 * ArtifactIndexClient round trip on an embedded conductor: two agents (two cells of the DNA on one
 * conductor, one DHT space) record artifacts, state provenance, provide and withdraw CIDs; keys
 * and hashes come back as the bytes the entries hold, CIDs in their canonical text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createTwoAgentConductor, type TwoAgentConductor } from '../../../fixtures/index.ts'
import { ZomeCallAbortedError } from '../../client.ts'
import { ARTIFACT_INDEX_ROLE, ArtifactIndexClient } from '../client.ts'
import type { ArtifactInput } from '../types.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** A CIDv1 (raw leaves) of some bytes, with their sha256 in hex, as the artifact store computes them. */
async function content (text: string): Promise<{ cid: CID, sha256: string, size: number }> {
  const bytes = new TextEncoder().encode(text)
  const digest = await sha256.digest(bytes)
  return { cid: CID.create(1, raw.code, digest), sha256: hex(digest.digest), size: bytes.length }
}

const input = (c: { cid: CID, sha256: string, size: number }, over: Partial<ArtifactInput> = {}): ArtifactInput => ({
  cid: c.cid.toString(),
  name: 'model.gguf',
  size: c.size,
  sha256: c.sha256,
  media_type: 'application/octet-stream',
  produced_by: null,
  replication: { min: 2, max: 4 },
  ...over
})

describe('ArtifactIndexClient on an embedded conductor', () => {
  let t: TwoAgentConductor
  let a: ArtifactIndexClient
  let b: ArtifactIndexClient
  let keyA: Uint8Array
  let keyB: Uint8Array

  beforeAll(async () => {
    t = await createTwoAgentConductor()
    keyA = t.keyA
    keyB = t.keyB
    a = new ArtifactIndexClient(t.clientA)
    b = new ArtifactIndexClient(t.clientB, { role_name: ARTIFACT_INDEX_ROLE })
  }, 60_000)
  afterAll(async () => { await t?.[Symbol.asyncDispose]() })

  it('records artifacts signed by their producer; get, list and byProducer read them back', async () => {
    const model = await content('a model')
    const cid = model.cid.toString()
    expect(await a.get(cid)).toEqual([])
    const before = Date.now() * 1000
    const first = await a.record(input(model, { produced_by: { task: 'build-42' } }))
    expect(first).toMatchObject({ ...input(model, { produced_by: { task: 'build-42' } }), producer: keyA, author: keyA })
    expect(first.action_hash).toBeInstanceOf(Uint8Array)
    expect(first.action_hash).toHaveLength(39)
    expect(first.created_at).toBeGreaterThanOrEqual(before)
    expect(first.created_at).toBeLessThanOrEqual(Date.now() * 1000)
    // the same statement again is the same record
    expect(hex((await a.record(input(model, { produced_by: { task: 'build-42' } }))).action_hash)).toBe(hex(first.action_hash))

    // another producer records the same CID, under another name: both records, earliest first, read by anyone
    const second = await b.record(input(model, { name: 'copy.gguf', replication: { min: 1, max: 1 } }))
    const both = await a.get(cid)
    expect(both.map(r => r.name)).toEqual(['model.gguf', 'copy.gguf'])
    expect(both[0]).toEqual(first)
    expect(both[1]).toEqual(second)
    expect(both[1]!.producer).toEqual(keyB)

    // a CID in another text form names the same artifact; records hold the canonical text
    const inBase58 = model.cid.toString(base58btc)
    expect(inBase58).not.toBe(cid)
    expect((await b.get(inBase58)).map(r => r.cid)).toEqual([cid, cid])
    const wasm = await content('a wasm module')
    const third = await a.record(input(wasm, { cid: wasm.cid.toString(base58btc), name: 'task.wasm', media_type: 'application/wasm', produced_by: { allocation: 'alloc-7' } }))
    expect(third.cid).toBe(wasm.cid.toString())

    // list: newest first, bounded
    expect((await b.list()).map(r => r.name)).toEqual(['task.wasm', 'copy.gguf', 'model.gguf'])
    expect((await b.list({ limit: 2 })).map(r => r.name)).toEqual(['task.wasm', 'copy.gguf'])
    await expect(a.list({ limit: 0 })).rejects.toThrow(/ZomeInputError: list's limit must be a whole number from 1 to 10000/)

    expect((await b.byProducer(keyA)).map(r => r.name)).toEqual(['model.gguf', 'task.wasm'])
    expect((await a.byProducer(keyB)).map(r => r.name)).toEqual(['copy.gguf'])
    await expect(a.byProducer(new Uint8Array(39))).rejects.toThrow(/ZomeInputError: by_producer takes an agent key/)
    await expect(a.get('not-a-cid')).rejects.toThrow(/ZomeInputError: get takes a CID \(CIDv0 or CIDv1\)/)
  })

  it('states provenance: derived from a CID, built by, produced under an allocation', async () => {
    const base = await content('base weights')
    const tuned = await content('fine-tuned weights')
    const cid = tuned.cid.toString()
    expect(await a.provenance(cid)).toEqual([])
    const derived = await a.link({ cid, kind: 'derived_from', target: base.cid.toString(base58btc) })
    expect(derived).toMatchObject({ cid, kind: 'derived_from', target: base.cid.toString(), author: keyA })
    expect(derived.at).toBeGreaterThan(0)
    // idempotent per author, CID, kind and target
    expect(hex((await a.link({ cid, kind: 'derived_from', target: base.cid.toString() })).action_hash)).toBe(hex(derived.action_hash))
    const built = await b.link({ cid, kind: 'built_by', target: 'uhCAkbuilder' })
    await a.link({ cid, kind: 'produced_under', target: 'alloc-9' })
    const all = await b.provenance(tuned.cid.toString(base58btc))
    expect(all.map(p => [p.kind, p.target])).toEqual([['derived_from', base.cid.toString()], ['built_by', 'uhCAkbuilder'], ['produced_under', 'alloc-9']])
    expect(all[0]).toEqual(derived)
    expect(all[1]).toEqual(built)
    expect(all[1]!.author).toEqual(keyB)
    expect(await a.provenance(base.cid.toString())).toEqual([])
  })

  it('provides and withdraws CIDs: providers per CID, this agent\'s provided CIDs, the replication status', async () => {
    const blob = await content('a blob')
    const cid = blob.cid.toString()
    expect(await a.status(cid)).toBeNull()
    expect(await a.providers(cid)).toEqual([])
    await a.record(input(blob, { replication: { min: 2, max: 3 } }))

    const pa = await a.provide(cid)
    expect(pa.provider).toEqual(keyA)
    expect(pa.since).toBeGreaterThan(0)
    // idempotent per author and CID, in any text form of it
    expect(await a.provide(blob.cid.toString(base58btc))).toEqual(pa)
    const pb = await b.provide(cid)
    expect(await b.providers(cid)).toEqual([pa, pb])
    expect(await a.status(cid)).toEqual({ cid, min: 2, max: 3, providers: [pa, pb] })
    expect(await a.provided()).toEqual([{ cid, since: pa.since, action_hash: pa.action_hash }])

    // a withdrawn provider is gone for every reader; withdrawing twice is a no-op
    expect(await b.withdraw(cid)).toBe(true)
    expect(await b.withdraw(cid)).toBe(false)
    expect(await a.providers(cid)).toEqual([pa])
    expect(await b.provided()).toEqual([])
    expect((await a.status(cid))?.providers).toEqual([pa])
    // and may provide again: a new statement
    const again = await b.provide(cid)
    expect(hex(again.action_hash)).not.toBe(hex(pb.action_hash))
    expect(await a.providers(cid)).toEqual([pa, again])
    await expect(a.provide('QmNotACid')).rejects.toThrow(/ZomeInputError: provide takes a CID/)
  })

  it('gives up waiting when the caller aborts', async () => {
    const controller = new AbortController()
    controller.abort()
    await expect(a.providers('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', { signal: controller.signal })).rejects.toBeInstanceOf(ZomeCallAbortedError)
  })
})
