/**
 * A local MOE policy file (`--moe-policy <file>`): YAML or JSON, `{inference_policy: …}` or the
 * bare policy, validated by the scheduler's parser. It overrides policy_store's policy of its name.
 */
import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { parseMoePolicy, type MoePolicy } from '../../../scheduler/index.ts'
import { FlexnodeError, errorMessage } from '../errors.ts'

export class PolicyFileError extends FlexnodeError {
  static override readonly name = 'PolicyFileError'
  readonly path: string

  constructor (path: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.path = path
  }
}

/** Reads and validates a MOE policy file. */
export async function loadPolicyFile (path: string, options: { signal?: AbortSignal } = {}): Promise<MoePolicy> {
  let text: string
  try {
    text = await readFile(path, { encoding: 'utf8', signal: options.signal })
  } catch (err) {
    throw new PolicyFileError(path, `cannot read the MOE policy ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err })
  }
  try {
    return parseMoePolicy(parseYaml(text))
  } catch (err) {
    throw new PolicyFileError(path, `${path}: ${errorMessage(err)}`, { cause: err })
  }
}
