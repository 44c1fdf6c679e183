/**
 * The mesh-wide policies of `policy_store` as this node applies them: the `inference-access`
 * document (kind `access`), named MOE policies (kind `moe`) and the compute policy
 * `flexstack-compute` (kind `compute`, design §10.5) that placement follows.
 *
 * A shared policy takes effect only when its author is one of the mesh's policy admins, the agent
 * keys in the policy_store DNA property `policy_admins` (`flexnode start --policy-admin <key>`).
 * With no admins configured nobody's publication is applied: every provider keeps its local
 * policy, so one peer cannot stop the mesh by publishing a deny-everyone policy. The integrity
 * zome refuses non-admin publications and the coordinator skips them; this reader checks the
 * author once more.
 *
 * ```ts
 * const shared = sharedPolicies({ admins: ['uhCAk…'] }, { client, logger })
 * const access = await shared.access()        // ProviderPolicy | null
 * const moe = await shared.moe('ripple-moe')  // MoePolicy | null
 * const compute = await shared.compute()       // ComputePolicy | null
 * ```
 */
import type { AppClient } from '@holochain/client'
import { DEFAULT_COMPUTE_POLICY, DEFAULT_MOE_POLICY, parseComputePolicy, parseMoePolicy, type ComputePolicy, type MoePolicy } from '../../../scheduler/index.ts'
import { PolicyStoreClient } from '../../../zomes-ts/policy_store/client.ts'
import { isPlainObject } from '../conductor/codec.ts'
import { errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import type { ProviderPolicy } from '../inference/admission.ts'
import { parseAccessPolicy } from '../inference/peer.ts'

/** The access policy's name in policy_store. */
export const ACCESS_POLICY_NAME = 'inference-access'

/** A policy as `policies.get_policy` returns it. */
export interface PublishedPolicy { name: string, kind: string, document: unknown, version: number, author: string }

/**
 * The publication, when its author is a policy admin and it has the expected kind; else null.
 * With no admins, always null.
 */
export function acceptPublished (value: unknown, admins: readonly string[], kind: string): PublishedPolicy | null {
  if (admins.length === 0 || !isPlainObject(value)) return null
  const { author, kind: k } = value
  if (typeof author !== 'string' || !admins.includes(author) || k !== kind) return null
  return value as unknown as PublishedPolicy
}

export interface SharedPoliciesInit {
  /** agent keys (uhCAk…) whose publications count. @default none: shared policies are ignored */
  admins?: readonly string[]
}

export interface SharedPoliciesComponents {
  client: Pick<AppClient, 'callZome'>
  logger: ComponentLogger
}

export interface SharedPolicies {
  readonly admins: readonly string[]
  /** whether this agent key may publish the mesh's policies */
  isAdmin: (agent: string) => boolean
  /** the admins' `inference-access` policy, or null (none published, or no admins) */
  access: () => Promise<ProviderPolicy | null>
  /** the admins' MOE policy of this name, or null */
  moe: (name: string) => Promise<MoePolicy | null>
  /** the admins' compute policy (`flexstack-compute`), or null (none, no admins, or a document that does not parse: logged) */
  compute: () => Promise<ComputePolicy | null>
}

export function sharedPolicies (init: SharedPoliciesInit, c: SharedPoliciesComponents): SharedPolicies {
  const log = c.logger.forComponent('flexnode:policy')
  const admins = [...new Set(init.admins ?? [])]
  if (admins.length === 0) {
    log.info('no policy admins configured (--policy-admin): policies published to policy_store are ignored; this node applies its local policies only')
  }
  const store = new PolicyStoreClient(c.client)
  const ignored = new Set<string>()
  const read = async (name: string, kind: string): Promise<PublishedPolicy | null> => {
    if (admins.length === 0) return null
    // what the DHT holds is another node's input: checked again before it counts
    const got: unknown = await store.getPolicy(name)
    const accepted = acceptPublished(got, admins, kind)
    if (accepted === null && got !== null) {
      const key = `${name}:${isPlainObject(got) ? String(got.author) : '?'}`
      if (!ignored.has(key) && ignored.size < 1000) {
        ignored.add(key)
        log.warn({ policy: name, author: isPlainObject(got) ? got.author : undefined, kind: isPlainObject(got) ? got.kind : undefined }, 'ignoring a policy_store entry that is not an admin\'s publication of the expected kind')
      }
    }
    return accepted
  }
  return {
    admins,
    isAdmin: (agent) => admins.includes(agent),
    access: async () => {
      const p = await read(ACCESS_POLICY_NAME, 'access')
      return p === null ? null : parseAccessPolicy(p.document)
    },
    moe: async (name) => {
      const p = await read(name, 'moe')
      return p === null ? null : parseMoePolicy(p.document)
    },
    compute: async () => {
      const p = await read(DEFAULT_COMPUTE_POLICY.name, 'compute')
      if (p === null) return null
      try {
        return parseComputePolicy(p.document)
      } catch (err) {
        log.warn({ policy: p.name, version: p.version, err: errorMessage(err) }, 'the mesh\'s compute policy does not parse; placement keeps the built-in one')
        return null
      }
    }
  }
}

/** A policy admin publishes the built-in MOE policy to policy_store when the mesh has none yet. */
export async function publishDefaultMoePolicy (store: PolicyStoreClient, log: ComponentLogger, options: { signal?: AbortSignal } = {}): Promise<void> {
  try {
    const existing = await store.getPolicy(DEFAULT_MOE_POLICY.name, options)
    if (existing === null) await store.setPolicy({ name: DEFAULT_MOE_POLICY.name, kind: 'moe', document: { ...DEFAULT_MOE_POLICY } }, options)
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'could not publish the default MOE policy')
  }
}
