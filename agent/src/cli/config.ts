/**
 * `flexnode config show`: the effective configuration of `flexnode start` — defaults, the config
 * file (`--config`, or `<data-dir>/flexnode.yaml`), `FLEXNODE_*` variables and the flags given,
 * in that order of precedence — and where each value came from.
 *
 * ```
 * flexnode config show --http-port 8080            # a table: KEY, VALUE, SOURCE
 * FLEXNODE_NETWORK=testnet flexnode config show --json
 * ```
 */
import type { LoadedStartConfig } from '../config/start.ts'
import { renderTable } from './runtime.ts'

const show = (value: unknown): string => value === null ? '-' : typeof value === 'string' ? value : JSON.stringify(value)

/** The effective configuration as a table, the config file first. */
export function renderConfig (config: LoadedStartConfig): string {
  const rows = Object.entries(config.sources).map(([key, { value, source }]) => [key, show(value), source])
  return `config file: ${config.file ?? 'none'}\n${renderTable(['KEY', 'VALUE', 'SOURCE'], rows)}`
}

export async function configShowCommand (config: LoadedStartConfig, opts: { json: boolean }): Promise<number> {
  process.stdout.write(opts.json ? `${JSON.stringify({ file: config.file ?? null, options: config.sources }, null, 2)}\n` : renderConfig(config))
  return 0
}
