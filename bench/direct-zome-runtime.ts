/**
 * The zome runtime flexnode had before the sandbox: zome modules imported into the node's own
 * realm and called directly. Unsafe by design (a zome can do anything the node can), so it lives
 * here, for the benchmark to measure the sandbox's cost against, and is never used by the node.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { ZomeRuntime } from '../agent/src/conductor/dna.ts'
import { PROMISED_HDK_FUNCTIONS, type HostApi } from '../agent/src/conductor/sandbox/host.ts'
import type { DnaStatic, ExportsInfo, ZomeSource } from '../agent/src/conductor/sandbox/host.ts'

type Module = Record<string, unknown>

/** The HDK as zome code sees it in the sandbox: its async functions always give a promise. */
function promised (hdk: HostApi): HostApi {
  const out: HostApi = {}
  for (const [name, f] of Object.entries(hdk)) {
    out[name] = PROMISED_HDK_FUNCTIONS.has(name)
      ? (...args: never[]) => { try { return Promise.resolve(f(...args)) } catch (err) { return Promise.reject(err) } }
      : f
  }
  return out
}

export class DirectZomeRuntime implements ZomeRuntime {
  private readonly dir: string
  private readonly dnas = new Map<string, Map<string, Module>>()
  private seq = 0

  private constructor (dir: string) {
    this.dir = dir
  }

  static async create (): Promise<DirectZomeRuntime> {
    return new DirectZomeRuntime(await mkdtemp(join(tmpdir(), 'flexnode-direct-zomes-')))
  }

  async loadDna (key: string, _label: string, _info: DnaStatic, zomes: ZomeSource[]): Promise<Record<string, ExportsInfo>> {
    const mods = new Map<string, Module>()
    const out: Record<string, ExportsInfo> = {}
    for (const z of zomes) {
      const file = join(this.dir, `${this.seq++}-${z.name}.mjs`)
      await writeFile(file, z.code)
      const mod = await import(pathToFileURL(file).href) as Module
      mods.set(z.name, mod)
      const functions: string[] = []
      const values: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(mod)) {
        if (typeof v === 'function') functions.push(k)
        else values[k] = v
      }
      out[z.name] = { functions, values }
    }
    this.dnas.set(key, mods)
    return out
  }

  unloadDna (key: string): void {
    this.dnas.delete(key)
  }

  private fn (key: string, zome: string, fn: string): (...args: unknown[]) => unknown {
    const f = this.dnas.get(key)?.get(zome)?.[fn]
    if (typeof f !== 'function') throw new Error(`${zome}/${fn} is not loaded`)
    return f as (...args: unknown[]) => unknown
  }

  async call (key: string, zome: string, fn: string, hdk: HostApi, payload: unknown): Promise<unknown> {
    return await this.fn(key, zome, fn)(promised(hdk), payload)
  }

  validate (key: string, zome: string, base: unknown, types: readonly string[], ctx: HostApi): unknown {
    const validate = this.fn(key, zome, 'validate')
    for (const type of types) {
      const r = validate({ type, ...(base as object) }, ctx) as { type?: string } | null
      if (r === null || typeof r !== 'object' || typeof r.type !== 'string') return { type: 'NoResult' }
      if (r.type !== 'Valid') return r
    }
    return { type: 'Valid' }
  }

  dispose (): void {
    this.dnas.clear()
    void rm(this.dir, { recursive: true, force: true })
  }
}
