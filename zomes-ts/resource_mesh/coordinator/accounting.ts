/**
 * accounting: what each lease used (CPU-seconds, memory-GB-seconds, tokens, tasks), recorded by
 * its provider and summed for anyone who asks.
 */
import type { ActionHash, Hdk } from '../../hdk/index.ts'
import { ZomeInputError } from '../../hdk/errors.ts'
import { isHash } from '../../hdk/values.ts'
import type { UsageRecord } from '../types.ts'


/** The usage of one lease over its records. */
export interface UsageTotal { allocation: ActionHash, cpu_seconds: number, memory_gb_seconds: number, tokens: number, tasks: number, records: number }

/** Records usage of a lease this node provides (validation refuses anyone else's). */
export async function record_usage (hdk: Hdk, usage: UsageRecord): Promise<ActionHash> {
  if (typeof usage !== 'object' || usage === null || !isHash(usage.allocation)) throw new ZomeInputError('record_usage takes {allocation, cpu_seconds, memory_gb_seconds, tokens, tasks, at}')
  const hash = await hdk.create_entry({ entry_type: 'UsageRecord', entry: usage })
  await hdk.create_link({ base: usage.allocation, target: hash, link_type: 'AllocationToUsage' })
  return hash
}

/** The usage recorded for a lease, summed. */
export async function usage_of (hdk: Hdk, allocation: ActionHash): Promise<UsageTotal> {
  if (!isHash(allocation)) throw new ZomeInputError('usage_of takes an allocation\'s action hash')
  const total: UsageTotal = { allocation, cpu_seconds: 0, memory_gb_seconds: 0, tokens: 0, tasks: 0, records: 0 }
  for (const link of await hdk.get_links({ base: allocation, link_type: 'AllocationToUsage' })) {
    const record = await hdk.get(link.target)
    const u = record === null ? undefined : hdk.entry_of<UsageRecord>(record)
    if (u === undefined) continue
    total.cpu_seconds += u.cpu_seconds
    total.memory_gb_seconds += u.memory_gb_seconds
    total.tokens += u.tokens
    total.tasks += u.tasks
    total.records++
  }
  return total
}
