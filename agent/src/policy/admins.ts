/**
 * The mesh's policy admins: the agent keys in the policy_store DNA property `policy_admins`
 * (`flexnode start --policy-admin <key>`). They are part of the DNA, so another set is another mesh.
 */
import { decode, isPlainObject } from '../conductor/codec.ts'
import { FlexnodeError, InvalidInputError } from '../errors.ts'
import { decodeHash } from '../holo/hash.ts'

/** The data dir's policy_store was installed with other policy admins: a different DNA, a different mesh. */
export class PolicyAdminsMismatchError extends FlexnodeError {
  static override readonly name = 'PolicyAdminsMismatchError'
  readonly dataDir: string
  readonly installed: string[]
  readonly requested: string[]

  constructor (dataDir: string, installed: string[], requested: string[]) {
    const list = (a: string[]): string => a.length === 0 ? 'none' : a.join(', ')
    super(`data dir ${dataDir} was installed with policy admins [${list(installed)}], but this start asks for [${list(requested)}]; ` +
      'the policy admins are part of the policy_store DNA, so another set is another mesh: start with the same --policy-admin flags, or use another --data-dir')
    this.dataDir = dataDir
    this.installed = installed
    this.requested = requested
  }
}

/** `--policy-admin` keys, validated, sorted and deduplicated (the order of flags must not change the DNA). */
export function normalizePolicyAdmins (keys: readonly string[] | undefined): string[] {
  const out = new Set<string>()
  for (const key of keys ?? []) {
    try {
      decodeHash(key, 'Agent')
    } catch {
      throw new InvalidInputError(`policy admin ${JSON.stringify(key)} is not an agent key (uhCAk…)`, { field: 'policyAdmins' })
    }
    out.add(key)
  }
  return [...out].sort()
}

/** The DNA properties that carry the admins (none at all without admins, so the default mesh keeps its DNA hash). */
export function policyAdminsProperties (admins: readonly string[]): { policy_admins: string[] } | undefined {
  return admins.length === 0 ? undefined : { policy_admins: [...admins] }
}

/** The policy admins an installed policy_store cell was created with, from its DNA properties. */
export function installedPolicyAdmins (properties: unknown): string[] {
  const props = properties instanceof Uint8Array ? decode(properties) : properties
  const list = isPlainObject(props) ? props.policy_admins : undefined
  return Array.isArray(list) ? list.filter((a): a is string => typeof a === 'string').sort() : []
}
