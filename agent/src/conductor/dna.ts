/**
 * DNA definitions and their loaded zomes.
 *
 * A `DnaDef` is what the conductor stores per DNA: name, modifiers (network seed, properties as
 * msgpack bytes), and the integrity and coordinator zomes with their code hashes. The DNA hash is
 * the hash of `{modifiers, integrity_zomes}` only, as in Holochain: coordinators can change
 * without changing the DNA.
 */
import { mkdir, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { IntegrityZome, ZomeFunction, EntryTypeDef } from '../../../zomes-ts/hdk/index.ts'
import { encodeHash, hashEquals, hashFromBytes, hashFromContent, type HoloHash } from '../holo/hash.ts'
import type { DnaBundle } from './bundle.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import { BundleError } from './errors.ts'

export interface DnaModifiers {
  network_seed: string
  /** msgpack of the properties map */
  properties: Uint8Array
}

export type ZomeDef = [string, { wasm_hash: HoloHash, dependencies: string[] }]

export interface DnaDef {
  name: string
  modifiers: DnaModifiers
  integrity_zomes: ZomeDef[]
  coordinator_zomes: ZomeDef[]
  lineage: HoloHash[]
}

export interface ModifiersOverride {
  network_seed?: string | null
  properties?: Record<string, unknown> | null
}

export function dnaHashOf (def: Pick<DnaDef, 'modifiers' | 'integrity_zomes'>): HoloHash {
  return hashFromContent({ modifiers: def.modifiers, integrity_zomes: def.integrity_zomes }, 'Dna')
}

/** Resolve a bundle and its overrides (later ones win) into a DnaDef and its code by hash. */
export function resolveDna (bundle: DnaBundle, ...overrides: Array<ModifiersOverride | undefined>): { def: DnaDef, hash: HoloHash, code: Map<string, Uint8Array> } {
  let seed = bundle.manifest.integrity.network_seed ?? ''
  let properties: Record<string, unknown> = bundle.manifest.integrity.properties ?? {}
  for (const o of overrides) {
    if (o === undefined) continue
    if (typeof o.network_seed === 'string') seed = o.network_seed
    if (o.properties != null) properties = { ...properties, ...o.properties }
  }
  const code = new Map<string, Uint8Array>()
  const zdef = (z: { name: string, dependencies?: Array<{ name: string }> }): ZomeDef => {
    const bytes = bundle.code.get(z.name)
    if (bytes === undefined) throw new BundleError(`DNA ${bundle.manifest.name} has no code for zome ${z.name}`)
    const wasmHash = hashFromBytes(bytes, 'Wasm')
    code.set(encodeHash(wasmHash), bytes)
    return [z.name, { wasm_hash: wasmHash, dependencies: (z.dependencies ?? []).map(d => d.name) }]
  }
  const def: DnaDef = {
    name: bundle.manifest.name,
    modifiers: { network_seed: seed, properties: encode(properties) },
    integrity_zomes: bundle.manifest.integrity.zomes.map(zdef),
    coordinator_zomes: bundle.manifest.coordinator.zomes.map(zdef),
    lineage: []
  }
  return { def, hash: dnaHashOf(def), code }
}

export function encodeDnaDef (def: DnaDef): Uint8Array {
  return encode(def)
}

export function decodeDnaDef (bytes: Uint8Array): DnaDef {
  return decode(bytes) as DnaDef
}

export function dnaProperties (def: DnaDef): Record<string, unknown> {
  const p = decode(def.modifiers.properties)
  return isPlainObject(p) ? p : {}
}

export interface LoadedIntegrityZome {
  name: string
  index: number
  module: IntegrityZome
  entryTypes: Map<string, { index: number, def: EntryTypeDef }>
  linkTypes: Map<string, number>
}

export interface LoadedCoordinatorZome {
  name: string
  functions: Map<string, ZomeFunction>
  init?: (hdk: unknown) => unknown
  /** integrity zome indices this coordinator may write entries and links of */
  dependencies: number[]
}

export interface LoadedDna {
  hash: HoloHash
  def: DnaDef
  properties: Record<string, unknown>
  integrity: LoadedIntegrityZome[]
  coordinators: Map<string, LoadedCoordinatorZome>
}

const RESERVED = new Set(['init', 'validate', 'entry_types', 'link_types', 'default'])

/**
 * Loads zome modules by code hash: the code is written once to `<codeDir>/<hash>.mjs` and
 * imported from there, so a restarted node runs exactly the code it installed.
 */
export class ZomeLoader {
  private readonly codeDir: string
  private readonly modules = new Map<string, Promise<Record<string, unknown>>>()

  constructor (codeDir: string) {
    this.codeDir = codeDir
  }

  private async module (hash: HoloHash, code: () => Uint8Array | undefined): Promise<Record<string, unknown>> {
    const key = encodeHash(hash)
    let p = this.modules.get(key)
    if (p === undefined) {
      p = (async () => {
        const file = join(this.codeDir, `${key}.mjs`)
        try {
          await access(file)
        } catch {
          const bytes = code()
          if (bytes === undefined) throw new BundleError(`no code stored for zome ${key}`)
          if (!hashEquals(hashFromBytes(bytes, 'Wasm'), hash)) throw new BundleError(`zome code does not match its hash ${key}`)
          await mkdir(this.codeDir, { recursive: true, mode: 0o700 })
          await writeFile(file, bytes, { mode: 0o600 })
        }
        try {
          return await import(pathToFileURL(file).href) as Record<string, unknown>
        } catch (err) {
          throw new BundleError(`zome ${key} failed to load: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
        }
      })()
      p.catch(() => this.modules.delete(key))
      this.modules.set(key, p)
    }
    return p
  }

  async load (hash: HoloHash, def: DnaDef, code: (wasmHash: HoloHash) => Uint8Array | undefined): Promise<LoadedDna> {
    const integrity: LoadedIntegrityZome[] = []
    for (const [index, [name, { wasm_hash: wasmHash }]] of def.integrity_zomes.entries()) {
      const mod = await this.module(wasmHash, () => code(wasmHash))
      if (typeof mod.validate !== 'function') throw new BundleError(`integrity zome ${name} exports no validate()`)
      const entryDefs = (Array.isArray(mod.entry_types) ? mod.entry_types : []) as EntryTypeDef[]
      const linkDefs = (Array.isArray(mod.link_types) ? mod.link_types : []) as string[]
      const entryTypes = new Map<string, { index: number, def: EntryTypeDef }>()
      entryDefs.forEach((d, i) => {
        if (typeof d?.name !== 'string') throw new BundleError(`integrity zome ${name}: entry_types[${i}] has no name`)
        entryTypes.set(d.name, { index: i, def: d })
      })
      const linkTypes = new Map<string, number>()
      linkDefs.forEach((l, i) => {
        if (typeof l !== 'string') throw new BundleError(`integrity zome ${name}: link_types[${i}] must be a string`)
        linkTypes.set(l, i)
      })
      integrity.push({ name, index, module: mod as unknown as IntegrityZome, entryTypes, linkTypes })
    }
    const coordinators = new Map<string, LoadedCoordinatorZome>()
    for (const [name, { wasm_hash: wasmHash, dependencies }] of def.coordinator_zomes) {
      const mod = await this.module(wasmHash, () => code(wasmHash))
      const functions = new Map<string, ZomeFunction>()
      for (const [fname, fn] of Object.entries(mod)) {
        if (typeof fn === 'function' && !RESERVED.has(fname) && !fname.startsWith('_')) functions.set(fname, fn as ZomeFunction)
      }
      const deps = dependencies.length > 0
        ? dependencies.map(d => {
          const i = integrity.findIndex(z => z.name === d)
          if (i < 0) throw new BundleError(`coordinator ${name} depends on unknown integrity zome ${d}`)
          return i
        })
        : integrity.map(z => z.index)
      coordinators.set(name, { name, functions, init: typeof mod.init === 'function' ? mod.init as (hdk: unknown) => unknown : undefined, dependencies: deps })
    }
    return { hash, def, properties: dnaProperties(def), integrity, coordinators }
  }
}
