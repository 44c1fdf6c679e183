/**
 * DNA definitions and their loaded zomes.
 *
 * A `DnaDef` is what the conductor stores per DNA: name, modifiers (network seed, properties as
 * msgpack bytes), and the integrity and coordinator zomes with their code hashes. The DNA hash is
 * the hash of `{modifiers, integrity_zomes}` only, as in Holochain: coordinators can change
 * without changing the DNA.
 */
import type { EntryTypeDef, Hdk, Op, OpType, ValidateContext, ValidateResult } from '../../../zomes-ts/hdk/index.ts'
import { errorMessage } from '../errors.ts'
import { encodeHash, hashEquals, hashFromBytes, hashFromContent, type HoloHash } from '../holo/hash.ts'
import type { DnaBundle } from './bundle.ts'
import { decode, encode, isPlainObject } from './codec.ts'
import { BundleError } from './errors.ts'
import type { DnaStatic, ExportsInfo, HostApi, ZomeSource } from './sandbox/host.ts'

/**
 * What runs zome code for the conductor. The node uses `ZomeSandbox` (QuickJS in a worker);
 * the benchmarks also measure the unsandboxed in-process runtime behind this same seam.
 */
export interface ZomeRuntime {
  /** Load a DNA's zome modules; resolves with each zome's exports. Loading again replaces them. */
  loadDna: (key: string, label: string, info: DnaStatic, zomes: ZomeSource[]) => Promise<Record<string, ExportsInfo>>
  unloadDna: (key: string) => void
  /** Call a coordinator function; the HDK calls it makes are answered by `hdk`. */
  call: (key: string, zome: string, fn: string, hdk: HostApi, payload: unknown, options?: { signal?: AbortSignal }) => Promise<unknown>
  /** An integrity zome's `validate` over every op type of one action: the verdict. Synchronous. */
  validate: (key: string, zome: string, base: unknown, types: readonly string[], ctx: HostApi) => unknown
  dispose: () => void
}

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
  /**
   * The zome's `validate`, run in its sandbox once per op type of one action (the op marshalled
   * once); the first result that is not Valid, or Valid.
   */
  validate: (base: Omit<Op, 'type'>, types: readonly OpType[], ctx: ValidateContext) => ValidateResult
  entryTypes: Map<string, { index: number, def: EntryTypeDef }>
  linkTypes: Map<string, number>
}

/**
 * The HDK as the conductor answers it: an async HDK function may answer at once (the sandbox hands
 * zome code a promise either way, see `PROMISED_HDK_FUNCTIONS`), and does whenever the local store
 * has what it needs.
 */
export type HostHdk = { [K in keyof Hdk]: Hdk[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R | Promise<R> : Hdk[K] }

/** A coordinator function run in the zome's sandbox; `signal` abandons the call. */
export type SandboxedFunction = (hdk: HostHdk, payload: unknown, options?: { signal?: AbortSignal }) => Promise<unknown>

export interface LoadedCoordinatorZome {
  name: string
  functions: Map<string, SandboxedFunction>
  init?: SandboxedFunction
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

const VALIDATE_RESULTS = new Set(['Valid', 'Invalid', 'UnresolvedDependencies'])

/** A validate() result from the sandbox, checked: anything malformed is Invalid, never trusted. */
function checkValidateResult (zome: string, value: unknown): ValidateResult {
  if (!isPlainObject(value) || typeof value.type !== 'string' || !VALIDATE_RESULTS.has(value.type)) {
    return { type: 'Invalid', reason: `validate() of zome ${zome} returned no result` }
  }
  if (value.type === 'Invalid') return { type: 'Invalid', reason: typeof value.reason === 'string' ? value.reason.slice(0, 4096) : 'invalid' }
  if (value.type === 'UnresolvedDependencies') {
    const hashes = Array.isArray(value.hashes) ? value.hashes.filter((h): h is Uint8Array => h instanceof Uint8Array && h.length === 39).slice(0, 256) : []
    return { type: 'UnresolvedDependencies', hashes }
  }
  return { type: 'Valid' }
}

/**
 * Loads zome modules into the sandbox (QuickJS): one runtime per
 * DNA, one context per zome. The code comes from the conductor's store (or an install's bundle)
 * by hash and is checked against its hash before it runs, so a restarted node runs exactly the
 * code it installed.
 */
export class ZomeLoader {
  private readonly sandbox: ZomeRuntime
  private readonly loaded = new Set<string>()

  constructor (sandbox: ZomeRuntime) {
    this.sandbox = sandbox
  }

  async load (hash: HoloHash, def: DnaDef, code: (wasmHash: HoloHash) => Uint8Array | undefined): Promise<LoadedDna> {
    const key = encodeHash(hash)
    const zomes: ZomeSource[] = []
    for (const [name, { wasm_hash: wasmHash }] of [...def.integrity_zomes, ...def.coordinator_zomes]) {
      const bytes = code(wasmHash)
      if (bytes === undefined) throw new BundleError(`no code stored for zome ${name} (${encodeHash(wasmHash)})`)
      if (!hashEquals(hashFromBytes(bytes, 'Wasm'), wasmHash)) throw new BundleError(`the code of zome ${name} does not match its hash ${encodeHash(wasmHash)}`)
      zomes.push({ name, code: bytes })
    }
    const properties = dnaProperties(def)
    const info: DnaStatic = {
      hash,
      name: def.name,
      modifiers: { network_seed: def.modifiers.network_seed, properties },
      zome_names: [...def.integrity_zomes, ...def.coordinator_zomes].map(([n]) => n)
    }
    let exports: Record<string, ExportsInfo>
    try {
      exports = await this.sandbox.loadDna(key, def.name, info, zomes)
    } catch (err) {
      throw new BundleError(`DNA ${def.name} (${key}) failed to load: ${errorMessage(err)}`, { cause: err })
    }
    this.loaded.add(key)
    try {
      const integrity: LoadedIntegrityZome[] = []
      for (const [index, [name]] of def.integrity_zomes.entries()) {
        const mod = exports[name]
        if (mod === undefined || !mod.functions.includes('validate')) throw new BundleError(`integrity zome ${name} exports no validate()`)
        const entryDefs: unknown[] = Array.isArray(mod.values.entry_types) ? mod.values.entry_types : []
        const linkDefs: unknown[] = Array.isArray(mod.values.link_types) ? mod.values.link_types : []
        const entryTypes = new Map<string, { index: number, def: EntryTypeDef }>()
        entryDefs.forEach((d, i) => {
          if (!isPlainObject(d) || typeof d.name !== 'string') throw new BundleError(`integrity zome ${name}: entry_types[${i}] has no name`)
          entryTypes.set(d.name, { index: i, def: { name: d.name, visibility: d.visibility === 'private' ? 'private' : 'public' } })
        })
        const linkTypes = new Map<string, number>()
        linkDefs.forEach((l, i) => {
          if (typeof l !== 'string') throw new BundleError(`integrity zome ${name}: link_types[${i}] must be a string`)
          linkTypes.set(l, i)
        })
        const validate = (base: Omit<Op, 'type'>, types: readonly OpType[], ctx: ValidateContext): ValidateResult =>
          checkValidateResult(name, this.sandbox.validate(key, name, base, types, ctx as unknown as HostApi))
        integrity.push({ name, index, validate, entryTypes, linkTypes })
      }
      const coordinators = new Map<string, LoadedCoordinatorZome>()
      for (const [name, { dependencies }] of def.coordinator_zomes) {
        const mod = exports[name]
        if (mod === undefined) throw new BundleError(`coordinator zome ${name} did not load`)
        const functions = new Map<string, SandboxedFunction>()
        const bind = (fname: string): SandboxedFunction => async (hdk, payload, options) => await this.sandbox.call(key, name, fname, hdk as unknown as HostApi, payload, options)
        for (const fname of mod.functions) {
          if (!RESERVED.has(fname) && !fname.startsWith('_')) functions.set(fname, bind(fname))
        }
        const deps = dependencies.length > 0
          ? dependencies.map(d => {
            const i = integrity.findIndex(z => z.name === d)
            if (i < 0) throw new BundleError(`coordinator ${name} depends on unknown integrity zome ${d}`)
            return i
          })
          : integrity.map(z => z.index)
        coordinators.set(name, { name, functions, init: mod.functions.includes('init') ? bind('init') : undefined, dependencies: deps })
      }
      return { hash, def, properties, integrity, coordinators }
    } catch (err) {
      this.unload(hash)
      throw err
    }
  }

  /** Drop a DNA's zomes from the sandbox. */
  unload (hash: HoloHash): void {
    const key = encodeHash(hash)
    this.loaded.delete(key)
    this.sandbox.unloadDna(key)
  }

  /** Drop every DNA this loader loaded. */
  dispose (): void {
    for (const key of this.loaded) this.sandbox.unloadDna(key)
    this.loaded.clear()
  }
}
