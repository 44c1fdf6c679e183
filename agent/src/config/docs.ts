/**
 * The README's generated sections: the option table of `flexnode start`, made from the config
 * schema (`START_FIELDS`) between two markers. `npm run docs` rewrites it; a test fails when the
 * README is stale.
 *
 * ```ts
 * const fresh = renderReadme(await readFile('README.md', 'utf8'))
 * ```
 */
import { envName, flagSpec, START_FIELDS } from './start.ts'

export const START_OPTIONS_BEGIN = '<!-- generated: flexnode start options (npm run docs) -->'
export const START_OPTIONS_END = '<!-- end generated: flexnode start options -->'

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/</g, '&lt;')

/** The option table of `flexnode start`, in markdown. */
export function startOptionTable (): string {
  const rows = START_FIELDS.map(f => `| \`${flagSpec(f).replace(/\|/g, '\\|')}\` | \`${envName(f.name)}\` | \`${f.name}\` | ${cell(f.defaultText ?? '—')} | ${cell(f.description)}${f.multiple === true ? ' (repeatable)' : ''} |`)
  return [
    '| flag | environment | YAML key | default | meaning |',
    '|---|---|---|---|---|',
    '| `--config <file>` | `FLEXNODE_CONFIG` | — | `<data-dir>/flexnode.yaml` when it exists | read options from this YAML file (keys: the YAML keys below) |',
    ...rows
  ].join('\n')
}

/** `readme` with its generated section replaced by a fresh one; unchanged when it has no markers. */
export function renderReadme (readme: string): string {
  const begin = readme.indexOf(START_OPTIONS_BEGIN)
  const end = readme.indexOf(START_OPTIONS_END)
  if (begin < 0 || end < begin) throw new Error(`README has no ${START_OPTIONS_BEGIN} … ${START_OPTIONS_END} markers`)
  return `${readme.slice(0, begin + START_OPTIONS_BEGIN.length)}\n${startOptionTable()}\n${readme.slice(end)}`
}
