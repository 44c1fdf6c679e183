/**
 * `npm run docs`: regenerates the README's generated sections (the option table of
 * `flexnode start` from the config schema, the command reference from the CLI's program).
 *
 * ```
 * npm run docs
 * ```
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { renderReadme } from '../agent/src/config/docs.ts'

const readme = join(import.meta.dirname, '..', 'README.md')
const before = await readFile(readme, 'utf8')
const after = renderReadme(before)
if (after !== before) await writeFile(readme, after)
process.stdout.write(after === before ? 'README.md is up to date\n' : 'README.md regenerated\n')
