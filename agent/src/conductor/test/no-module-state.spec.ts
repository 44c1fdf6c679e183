/**
 * No global state (ARCHITECTURE.md): the conductor's and the keystore's modules keep no mutable
 * caches at module level; such state belongs to a component instance (a conductor, a keystore),
 * so two nodes in one process (tryorama, tests) never share or leak it.
 */
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const AGENT_SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/**
 * a top-level binding initialised with an empty container (filled at run time: a cache);
 * constant lookup tables built from a literal (`new Set(['a', 'b'])`) are not state
 */
const MODULE_STATE = /^(?:export\s+)?(?:const|let|var)\s+(\w+)\s*(?::[^=]+)?=\s*new\s+(?:Map|Set|WeakMap|WeakSet|Array)\s*(?:<[^(]*>)?\(\s*\)/gm

async function sources (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name !== 'test') out.push(...await sources(p))
    } else if (e.name.endsWith('.ts')) {
      out.push(p)
    }
  }
  return out
}

describe('module-level state', () => {
  it('conductor/ and identity/ hold no module-level caches', async () => {
    const found: string[] = []
    const files = [...await sources(join(AGENT_SRC, 'conductor')), ...await sources(join(AGENT_SRC, 'identity'))]
    expect(files.length).toBeGreaterThan(10)
    for (const file of files) {
      const text = await readFile(file, 'utf8')
      for (const m of text.matchAll(MODULE_STATE)) found.push(`${relative(AGENT_SRC, file)}: ${m[1]}`)
    }
    expect(found).toEqual([])
  })
})
