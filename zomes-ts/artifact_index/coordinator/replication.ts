/**
 * replication: which nodes hold a CID. A node that pins a CID states it (`provide`, once per CID)
 * and withdraws the statement when it unpins (`withdraw`: the record and its links are deleted,
 * by the provider only). The agent's artifacts service reads a CID's providers against the
 * `replication` policy of its record (`status`) to decide whether to pin or to stop.
 */
import type { Hdk } from '../../hdk/index.ts'
import { byteOrder, sameAgent } from '../rules.ts'
import type { ProvidedInfo, ProviderInfo, ProviderRecord, ReplicationStatus } from '../types.ts'
import { artifactsAt, checkCid, cidAnchor, me, providersAt, type LiveProvider } from './shared.ts'

const info = (p: LiveProvider): ProviderInfo => ({ provider: p.value.provider, since: p.value.since, action_hash: p.action_hash })

/** A CID's providers, the earliest record of each provider, earliest first. */
async function providersOf (hdk: Hdk, cid: string): Promise<ProviderInfo[]> {
  const seen = new Set<string>()
  const out: ProviderInfo[] = []
  for (const p of await providersAt(hdk, cidAnchor(hdk, cid), 'CidToProvider')) {
    const key = p.value.provider.subarray(0, 35).join()
    if (p.value.cid !== cid || !sameAgent(p.link.author, p.value.provider) || seen.has(key)) continue
    seen.add(key)
    out.push(info(p))
  }
  return out
}

/** States that the caller provides (holds) a CID. Idempotent: the caller's live record is returned when it has one. */
export async function provide (hdk: Hdk, cid: string): Promise<ProviderInfo> {
  const canonical = checkCid(cid, 'provide')
  const provider = await me(hdk)
  const mine = await providersAt(hdk, cidAnchor(hdk, canonical), 'CidToProvider', l => sameAgent(l.author, provider))
  const live = mine.find(p => p.value.cid === canonical)
  if (live !== undefined) return info(live)
  const entry: ProviderRecord = { cid: canonical, provider, since: hdk.sys_time() }
  const action_hash = await hdk.create_entry({ entry_type: 'ProviderRecord', entry })
  await hdk.create_link({ base: cidAnchor(hdk, canonical), target: action_hash, link_type: 'CidToProvider' })
  await hdk.create_link({ base: provider, target: action_hash, link_type: 'AgentToProvider' })
  return { provider, since: entry.since, action_hash }
}

/** Withdraws the caller's statement that it provides a CID (the record and its links); false when it had none. */
export async function withdraw (hdk: Hdk, cid: string): Promise<boolean> {
  const canonical = checkCid(cid, 'withdraw')
  const provider = await me(hdk)
  const mine = await providersAt(hdk, cidAnchor(hdk, canonical), 'CidToProvider', l => sameAgent(l.author, provider))
  if (mine.length === 0) return false
  const own = (await hdk.get_links({ base: provider, link_type: 'AgentToProvider' })).filter(l => sameAgent(l.author, provider))
  for (const p of mine) {
    await hdk.delete_link(p.link.create_link_hash)
    for (const l of own) if (byteOrder(l.target, p.action_hash) === 0) await hdk.delete_link(l.create_link_hash)
    await hdk.delete_entry(p.action_hash)
  }
  return true
}

/** A CID's providers (any text form of it), one per provider, earliest first. */
export async function providers (hdk: Hdk, cid: string): Promise<ProviderInfo[]> {
  return await providersOf(hdk, checkCid(cid, 'providers'))
}

/** The CIDs the caller provides, earliest first. */
export async function provided (hdk: Hdk): Promise<ProvidedInfo[]> {
  const provider = await me(hdk)
  const seen = new Set<string>()
  const out: ProvidedInfo[] = []
  for (const p of await providersAt(hdk, provider, 'AgentToProvider', l => sameAgent(l.author, provider))) {
    if (!sameAgent(p.value.provider, provider) || seen.has(p.value.cid)) continue
    seen.add(p.value.cid)
    out.push({ cid: p.value.cid, since: p.value.since, action_hash: p.action_hash })
  }
  return out
}

/** A CID's replication: the policy of its earliest record and its providers; null when it has no record. */
export async function status (hdk: Hdk, cid: string): Promise<ReplicationStatus | null> {
  const canonical = checkCid(cid, 'status')
  const first = (await artifactsAt(hdk, cidAnchor(hdk, canonical), 'CidToArtifact')).find(r => r.cid === canonical)
  if (first === undefined) return null
  return { cid: canonical, min: first.replication.min, max: first.replication.max, providers: await providersOf(hdk, canonical) }
}
