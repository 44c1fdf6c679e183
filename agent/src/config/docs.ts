/**
 * The README's generated sections, each between two markers: the option table of `flexnode start`,
 * made from the config schema (`START_FIELDS`), and the command reference, made from the commander
 * program (`cli/program.ts`, whose commands take their option texts from the operations' schemas).
 * `npm run docs` rewrites them; a test fails when the README is stale.
 *
 * ```ts
 * const fresh = renderReadme(await readFile('README.md', 'utf8'))
 * ```
 */
import type { Command } from 'commander'
import { program } from '../cli/program.ts'
import { envName, flagSpec, START_FIELDS } from './start.ts'

export const START_OPTIONS_BEGIN = '<!-- generated: flexnode start options (npm run docs) -->'
export const START_OPTIONS_END = '<!-- end generated: flexnode start options -->'
export const COMMANDS_BEGIN = '<!-- generated: flexnode commands (npm run docs) -->'
export const COMMANDS_END = '<!-- end generated: flexnode commands -->'

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

/** The commands whose options are `flexnode start`'s, rendered in its own table. */
const START_OPTION_COMMANDS = new Set(['flexnode start', 'flexnode config show'])

const code = (text: string): string => `\`${text.replace(/\|/g, '\\|')}\``

/** An option's meaning with what commander knows of it: its choices, default, whether it is required. */
function optionMeaning (o: Command['options'][number]): string {
  const more = [
    o.argChoices === undefined ? '' : `one of ${o.argChoices.join(', ')}`,
    o.defaultValue === undefined ? '' : `default ${String(o.defaultValue)}`,
    o.mandatory ? 'required' : ''
  ].filter(m => m !== '')
  return cell(`${o.description}${more.length === 0 ? '' : ` (${more.join('; ')})`}`)
}

/** One command's usage line, description, arguments and options, then its subcommands'. */
function commandSection (cmd: Command, name: string): string[] {
  const subs = cmd.commands.filter(c => c.name() !== 'help')
  const out = [`### ${code(`${name} ${cmd.usage()}`.trim())}`, '', cell(cmd.description()), '']
  if (START_OPTION_COMMANDS.has(name)) {
    out.push('Options: those of `flexnode start`, in the table of its options above' + (cmd.options.some(o => o.long === '--json') ? ', and `--json`.' : '.'), '')
  } else {
    const rows = [
      ...cmd.registeredArguments.map(a => `| ${code(a.required ? `<${a.name()}>` : `[${a.name()}]`)} | ${cell(a.description === '' ? '—' : a.description)} |`),
      ...cmd.options.map(o => `| ${code(o.flags)} | ${optionMeaning(o)} |`)
    ]
    if (rows.length > 0) out.push('| argument / option | meaning |', '|---|---|', ...rows, '')
  }
  return [...out, ...subs.flatMap(c => commandSection(c, `${name} ${c.name()}`))]
}

/** The command reference: every command of the program, with its usage line, arguments and options. */
export function commandReference (): string {
  const prog = program({ code: 0 }, {})
  const global = prog.options.map(o => `| ${code(o.flags)} | ${optionMeaning(o)} |`)
  return [
    `Every command has \`--help\`. Options of \`flexnode\` itself, given before the command:`,
    '',
    '| option | meaning |',
    '|---|---|',
    ...global,
    '',
    ...prog.commands.filter(c => c.name() !== 'help').flatMap(c => commandSection(c, `flexnode ${c.name()}`))
  ].join('\n').trimEnd()
}

/** `text` with what is between `begin` and `end` replaced by `content`. */
function replaceBetween (text: string, begin: string, end: string, content: string): string {
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from < 0 || to < from) throw new Error(`README has no ${begin} … ${end} markers`)
  return `${text.slice(0, from + begin.length)}\n${content}\n${text.slice(to)}`
}

/** `readme` with its generated sections replaced by fresh ones. */
export function renderReadme (readme: string): string {
  return replaceBetween(replaceBetween(readme, START_OPTIONS_BEGIN, START_OPTIONS_END, startOptionTable()), COMMANDS_BEGIN, COMMANDS_END, commandReference())
}
