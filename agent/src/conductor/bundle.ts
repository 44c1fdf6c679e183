/**
 * hApp and DNA bundles, in Holochain's bundle shape: `gzip(msgpack({manifest, resources}))`.
 *
 * flexnode's zomes are TypeScript; packing a DNA bundles each zome with esbuild into one
 * self-contained, platform-neutral ES module, the way a Rust zome becomes one WASM file. The
 * module bytes are the zome's "wasm" and their hash enters the DNA hash, so two nodes share a
 * DNA exactly when they run the same validation code with the same modifiers.
 *
 * ```ts
 * const happ = await packHapp('dnas/happ.yaml')            // bytes, as `hc app pack` makes
 * const { manifest, dnas } = readHappBundle(happ)
 * ```
 */
import { gunzipSync, gzipSync } from 'node:zlib'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { build } from 'esbuild'
import { parse as parseYaml } from 'yaml'
import { decode, encode, isPlainObject } from './codec.ts'
import { BundleError } from './errors.ts'

export interface ZomeManifest {
  name: string
  /** resource name inside the bundle (or a source path in a YAML manifest) */
  path: string
  dependencies?: Array<{ name: string }>
}

export interface DnaManifest {
  manifest_version: '0'
  name: string
  integrity: {
    network_seed?: string | null
    properties?: Record<string, unknown> | null
    zomes: ZomeManifest[]
  }
  coordinator: { zomes: ZomeManifest[] }
}

export interface AppRoleManifest {
  name: string
  provisioning?: { strategy: 'create', deferred?: boolean }
  dna: {
    path?: string
    modifiers?: { network_seed?: string | null, properties?: Record<string, unknown> | null }
    clone_limit?: number
  }
}

export interface AppManifest {
  manifest_version: '0'
  name: string
  description?: string | null
  roles: AppRoleManifest[]
  allow_deferred_memproofs?: boolean
}

export interface DnaBundle {
  manifest: DnaManifest
  /** zome name -> ES module bytes */
  code: Map<string, Uint8Array>
}

export interface HappBundle {
  manifest: AppManifest
  /** role name -> DNA bundle */
  dnas: Map<string, DnaBundle>
}

/** The biggest bundle accepted, compressed or not. */
const MAX_BUNDLE_BYTES = 64 * 1024 * 1024
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

/** Bundle one TS zome into a self-contained ES module. */
async function buildZome (sourcePath: string): Promise<Uint8Array> {
  const abs = resolve(sourcePath)
  try {
    const out = await build({
      entryPoints: [abs],
      absWorkingDir: dirname(dirname(abs)),
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      write: false,
      legalComments: 'none',
      logLevel: 'silent',
      charset: 'utf8'
    })
    const file = out.outputFiles[0]
    if (file === undefined) throw new BundleError(`esbuild produced no output for ${sourcePath}`, { path: sourcePath })
    return file.contents
  } catch (err) {
    if (err instanceof BundleError) throw err
    throw new BundleError(`cannot bundle zome ${sourcePath}: ${err instanceof Error ? err.message : String(err)}`, { path: sourcePath, cause: err })
  }
}

/**
 * Reads dna.yaml / happ.yaml files and bundles their TS zomes, keeping each bundled zome for the
 * life of this instance (a conductor owns one, so reinstalling or reopening in the same process
 * does not run esbuild again). A failed bundle is not kept.
 */
export class ZomeBundler {
  private readonly code = new Map<string, Promise<Uint8Array>>()

  /** Bundle one TS zome into a self-contained ES module (cached by this instance). */
  async bundleZome (sourcePath: string): Promise<Uint8Array> {
    const abs = resolve(sourcePath)
    let p = this.code.get(abs)
    if (p === undefined) {
      p = buildZome(abs)
      p.catch(() => { this.code.delete(abs) })
      this.code.set(abs, p)
    }
    return await p
  }

  /** Read a dna.yaml and bundle its zomes. */
  async loadDnaYaml (path: string): Promise<DnaBundle> {
    const manifest = checkDnaManifest(await readYaml(path), path)
    const code = new Map<string, Uint8Array>()
    for (const zome of [...manifest.integrity.zomes, ...manifest.coordinator.zomes]) {
      code.set(zome.name, await this.bundleZome(resolve(dirname(path), zome.path)))
    }
    return { manifest: withResourcePaths(manifest), code }
  }

  /** Read a happ.yaml whose roles point at dna.yaml files, bundling every DNA. */
  async loadHappYaml (path: string): Promise<HappBundle> {
    const manifest = checkAppManifest(await readYaml(path), path)
    const dnas = new Map<string, DnaBundle>()
    for (const role of manifest.roles) {
      if (role.dna.path === undefined) throw new BundleError(`role ${role.name} in ${path} has no dna.path`, { path })
      dnas.set(role.name, await this.loadDnaYaml(resolve(dirname(path), role.dna.path)))
    }
    return { manifest: { ...manifest, roles: manifest.roles.map(r => ({ ...r, dna: { ...r.dna, path: `${r.name}.dna` } })) }, dnas }
  }

  /** Pack a happ.yaml into `.happ` bytes. */
  async packHapp (happYamlPath: string): Promise<Uint8Array> {
    return encodeHappBundle(await this.loadHappYaml(happYamlPath))
  }
}

async function readYaml (path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new BundleError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { path, cause: err })
  }
  try {
    return parseYaml(text)
  } catch (err) {
    throw new BundleError(`${path} is not valid YAML: ${err instanceof Error ? err.message : String(err)}`, { path, cause: err })
  }
}

function withResourcePaths (m: DnaManifest): DnaManifest {
  const z = (zome: ZomeManifest): ZomeManifest => ({ ...zome, path: `${zome.name}.mjs` })
  return { ...m, integrity: { ...m.integrity, zomes: m.integrity.zomes.map(z) }, coordinator: { zomes: m.coordinator.zomes.map(z) } }
}

/** Read a happ.yaml whose roles point at dna.yaml files, bundling every DNA (no cache kept). */
export async function loadHappYaml (path: string): Promise<HappBundle> {
  return await new ZomeBundler().loadHappYaml(path)
}

export function encodeDnaBundle (dna: DnaBundle): Uint8Array {
  const resources: Record<string, Uint8Array> = {}
  for (const [name, code] of dna.code) resources[`${name}.mjs`] = code
  return gzipSync(encode({ manifest: dna.manifest, resources }))
}

export function encodeHappBundle (happ: HappBundle): Uint8Array {
  const resources: Record<string, Uint8Array> = {}
  for (const [role, dna] of happ.dnas) resources[`${role}.dna`] = encodeDnaBundle(dna)
  return gzipSync(encode({ manifest: happ.manifest, resources }))
}

/** Pack a happ.yaml into `.happ` bytes (no cache kept). */
export async function packHapp (happYamlPath: string): Promise<Uint8Array> {
  return await new ZomeBundler().packHapp(happYamlPath)
}

function unpack (bytes: Uint8Array, what: string): { manifest: unknown, resources: Record<string, unknown> } {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new BundleError(`${what} bundle is empty`)
  if (bytes.length > MAX_BUNDLE_BYTES) throw new BundleError(`${what} bundle is larger than ${MAX_BUNDLE_BYTES} bytes`)
  let raw: Buffer
  try {
    raw = gunzipSync(bytes, { maxOutputLength: MAX_BUNDLE_BYTES })
  } catch (err) {
    throw new BundleError(`${what} bundle is not gzip data: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  let doc: unknown
  try {
    doc = decode(raw)
  } catch (err) {
    throw new BundleError(`${what} bundle is not msgpack: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  if (!isPlainObject(doc) || !isPlainObject(doc.resources)) throw new BundleError(`${what} bundle must hold {manifest, resources}`)
  return { manifest: doc.manifest, resources: doc.resources }
}

export function readDnaBundle (bytes: Uint8Array): DnaBundle {
  const { manifest: m, resources } = unpack(bytes, 'DNA')
  const manifest = checkDnaManifest(m, 'DNA bundle')
  const code = new Map<string, Uint8Array>()
  for (const zome of [...manifest.integrity.zomes, ...manifest.coordinator.zomes]) {
    const res = resources[zome.path]
    if (!(res instanceof Uint8Array)) throw new BundleError(`DNA bundle ${manifest.name} lacks the resource ${zome.path} of zome ${zome.name}`)
    code.set(zome.name, res)
  }
  return { manifest, code }
}

export function readHappBundle (bytes: Uint8Array): HappBundle {
  const { manifest: m, resources } = unpack(bytes, 'hApp')
  const manifest = checkAppManifest(m, 'hApp bundle')
  const dnas = new Map<string, DnaBundle>()
  for (const role of manifest.roles) {
    const path = role.dna.path
    const res = path === undefined ? undefined : resources[path]
    if (!(res instanceof Uint8Array)) throw new BundleError(`hApp bundle lacks the DNA resource of role ${role.name}`)
    dnas.set(role.name, readDnaBundle(res))
  }
  return { manifest, dnas }
}

// -- manifest checks -----------------------------------------------------------------------

function checkName (value: unknown, where: string): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) throw new BundleError(`${where} must be a name of letters, digits, _ . - (at most 64), got ${JSON.stringify(value)}`)
  return value
}

function checkZomes (value: unknown, where: string): ZomeManifest[] {
  if (!Array.isArray(value)) throw new BundleError(`${where} must be a list of zomes`)
  const seen = new Set<string>()
  return value.map((z: unknown, i) => {
    if (!isPlainObject(z)) throw new BundleError(`${where}[${i}] must be a zome {name, path}`)
    const name = checkName(z.name, `${where}[${i}].name`)
    if (seen.has(name)) throw new BundleError(`${where} names zome ${name} twice`)
    seen.add(name)
    if (typeof z.path !== 'string' || z.path.length === 0) throw new BundleError(`${where}[${i}].path must be a path`)
    const deps = z.dependencies
    if (deps !== undefined && deps !== null && !Array.isArray(deps)) throw new BundleError(`${where}[${i}].dependencies must be a list`)
    const dependencies = (deps ?? []).map((d: unknown, j: number) => {
      if (!isPlainObject(d)) throw new BundleError(`${where}[${i}].dependencies[${j}] must be {name}`)
      return { name: checkName(d.name, `${where}[${i}].dependencies[${j}].name`) }
    })
    return { name, path: z.path, dependencies }
  })
}

function checkProperties (value: unknown, where: string): Record<string, unknown> | null {
  if (value === undefined || value === null) return null
  if (!isPlainObject(value)) throw new BundleError(`${where} must be a map`)
  return value
}

export function checkDnaManifest (value: unknown, where: string): DnaManifest {
  if (!isPlainObject(value)) throw new BundleError(`${where}: the DNA manifest must be a map`)
  if (String(value.manifest_version) !== '0') throw new BundleError(`${where}: manifest_version must be '0'`)
  const name = checkName(value.name, `${where}: name`)
  const integrity = value.integrity
  if (!isPlainObject(integrity)) throw new BundleError(`${where}: integrity section is missing`)
  const coordinator = value.coordinator ?? { zomes: [] }
  if (!isPlainObject(coordinator)) throw new BundleError(`${where}: coordinator must be a map`)
  const seed = integrity.network_seed
  if (seed !== undefined && seed !== null && typeof seed !== 'string') throw new BundleError(`${where}: integrity.network_seed must be a string`)
  const iz = checkZomes(integrity.zomes, `${where}: integrity.zomes`)
  if (iz.length === 0) throw new BundleError(`${where}: a DNA needs at least one integrity zome`)
  const cz = checkZomes(coordinator.zomes ?? [], `${where}: coordinator.zomes`)
  const inames = new Set(iz.map(z => z.name))
  for (const z of cz) {
    if (inames.has(z.name)) throw new BundleError(`${where}: zome ${z.name} is both integrity and coordinator`)
    for (const d of z.dependencies ?? []) {
      if (!inames.has(d.name)) throw new BundleError(`${where}: coordinator ${z.name} depends on unknown integrity zome ${d.name}`)
    }
  }
  return {
    manifest_version: '0',
    name,
    integrity: { network_seed: seed ?? null, properties: checkProperties(integrity.properties, `${where}: integrity.properties`), zomes: iz },
    coordinator: { zomes: cz }
  }
}

export function checkAppManifest (value: unknown, where: string): AppManifest {
  if (!isPlainObject(value)) throw new BundleError(`${where}: the app manifest must be a map`)
  if (String(value.manifest_version) !== '0') throw new BundleError(`${where}: manifest_version must be '0'`)
  const name = checkName(value.name, `${where}: name`)
  if (!Array.isArray(value.roles) || value.roles.length === 0) throw new BundleError(`${where}: roles must be a non-empty list`)
  const seen = new Set<string>()
  const roles = value.roles.map((r: unknown, i: number): AppRoleManifest => {
    if (!isPlainObject(r)) throw new BundleError(`${where}: roles[${i}] must be a map`)
    const rname = checkName(r.name, `${where}: roles[${i}].name`)
    if (seen.has(rname)) throw new BundleError(`${where}: role ${rname} appears twice`)
    seen.add(rname)
    const dna = r.dna
    if (!isPlainObject(dna)) throw new BundleError(`${where}: roles[${i}].dna must be a map`)
    const mods = dna.modifiers
    if (mods !== undefined && mods !== null && !isPlainObject(mods)) throw new BundleError(`${where}: roles[${i}].dna.modifiers must be a map`)
    const seed = isPlainObject(mods) ? mods.network_seed : undefined
    if (seed !== undefined && seed !== null && typeof seed !== 'string') throw new BundleError(`${where}: roles[${i}].dna.modifiers.network_seed must be a string`)
    return {
      name: rname,
      provisioning: { strategy: 'create', deferred: false },
      dna: {
        path: typeof dna.path === 'string' ? dna.path : undefined,
        modifiers: { network_seed: seed ?? null, properties: checkProperties(isPlainObject(mods) ? mods.properties : undefined, `${where}: roles[${i}].dna.modifiers.properties`) }
      }
    }
  })
  return { manifest_version: '0', name, description: typeof value.description === 'string' ? value.description : null, roles, allow_deferred_memproofs: false }
}
