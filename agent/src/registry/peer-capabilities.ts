/**
 * The mesh's NodeCapabilities as routing reads them: one `query_peers` zome call serves every
 * request of the next `maxAgeMs` (capabilities change at heartbeat pace, and routing checks live
 * connections anyway), and concurrent readers share one call in flight.
 *
 * ```ts
 * const capabilities = peerCapabilities({ maxAgeMs: 1000 })({ registry: new AgentRegistryClient(client) })
 * await capabilities()   // NodeCapability[]
 * ```
 */
import type { AgentRegistryClient } from '../../../zomes-ts/agent_registry/client.ts'
import type { NodeCapability } from '../../../zomes-ts/agent_registry/types.ts'

export interface PeerCapabilitiesInit {
  /** how long one answer serves. @default 1000 */
  maxAgeMs?: number
}

export interface PeerCapabilitiesComponents {
  registry: Pick<AgentRegistryClient, 'queryPeers'>
}

export function peerCapabilities (init: PeerCapabilitiesInit = {}) {
  const maxAgeMs = init.maxAgeMs ?? 1000
  return (components: PeerCapabilitiesComponents): () => Promise<NodeCapability[]> => {
    let last: { at: number, answer: Promise<NodeCapability[]> } | undefined
    return async () => {
      const now = performance.now()
      if (last === undefined || now - last.at > maxAgeMs) {
        // every node, with its liveness from presence (`offline`: no live presence record):
        // routing picks connected peers whose presence is live; draining nodes are left out
        const answer = components.registry.queryPeers({ availability: ['online', 'busy', 'offline'] })
        const entry = { at: now, answer }
        last = entry
        // a failed call is not kept: the next reader asks again
        answer.catch(() => { if (last === entry) last = undefined })
      }
      return await last.answer
    }
  }
}
