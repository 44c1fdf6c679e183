/**
 * The node keystore: the ed25519 keys of this node. The first key is the node key — its Holochain
 * AgentPubKey and, later, its libp2p PeerId. The file lives in the data dir with mode 0600 and is
 * encrypted at rest when a passphrase is given.
 *
 * File format (`keystore.json`), always `version: 1`, exactly one of:
 *
 * ```jsonc
 * // plaintext
 * { "version": 1, "keys": [{ "agentPubKey": "uhCAk…", "seed": "<base64 32 bytes>" }] }
 * // encrypted: ciphertext = chacha20-poly1305(scrypt(passphrase, salt), nonce, seed₀‖seed₁‖…)
 * { "version": 1, "encrypted": { "kdf": "scrypt", "N": 32768, "r": 8, "p": 1,
 *   "salt": "<b64>", "nonce": "<b64 12 bytes>", "ciphertext": "<b64 n×32 bytes>", "tag": "<b64 16 bytes>" } }
 * ```
 *
 * The AEAD's associated data binds the version, KDF name, N, r, p and salt. Writes are atomic
 * (temp file 0600 → fsync → rename) and re-apply mode 0600. Opening a plaintext keystore with a
 * passphrase encrypts it in place. The passphrase is NFC-normalized before scrypt.
 *
 * ```ts
 * const ks = await Keystore.open({ dataDir, passphrase })
 * const sig = ks.sign(ks.primary.agentPubKey, bytes)
 * verifySignature(ks.primary.publicKey, bytes, sig) // true
 * ```
 */
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import fs from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { DisposedError, FlexnodeError, InvalidInputError } from '../errors.ts'
import { agentPubKeyFromEd25519, encodeHash, sameKey } from '../holo/hash.ts'

export interface KeystoreInit {
  /** directory; created (mode 0700) if missing */
  dataDir: string
  /** when given, the file is encrypted at rest */
  passphrase?: string
  /** scrypt cost; @default 2**15 (N), r 8, p 1 — tests may pass a smaller N */
  scryptN?: number
}

export interface AgentKey {
  /** 39-byte HoloHash (Agent) */
  agentPubKey: Uint8Array
  /** 32-byte raw ed25519 public key */
  publicKey: Uint8Array
}

export const KEYSTORE_FILE = 'keystore.json'

const VERSION = 1
const SEED_LENGTH = 32
const SALT_LENGTH = 16
const NONCE_LENGTH = 12
const TAG_LENGTH = 16
const DEFAULT_N = 2 ** 15
const DEFAULT_R = 8
const DEFAULT_P = 1
/** refuse KDF parameters (from a file) that would need more than this much memory */
const MAX_SCRYPT_MEMORY = 2 ** 28
const MAX_FILE_SIZE = 1 << 20
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** The keystore file is encrypted and no passphrase was given. */
export class KeystoreLockedError extends FlexnodeError {
  static override readonly name = 'KeystoreLockedError'
  readonly path: string

  constructor (file: string) {
    super(`the keystore ${file} is encrypted; a passphrase is required`)
    this.path = file
  }
}

/** The AEAD tag check failed: the passphrase is wrong (or the ciphertext was altered). */
export class WrongPassphraseError extends FlexnodeError {
  static override readonly name = 'WrongPassphraseError'
  readonly path: string

  constructor (file: string) {
    super(`cannot decrypt the keystore ${file}: wrong passphrase or tampered file`)
    this.path = file
  }
}

/** The keystore file is unparsable, has an unknown version or malformed fields. */
export class KeystoreCorruptError extends FlexnodeError {
  static override readonly name = 'KeystoreCorruptError'
  readonly path: string

  constructor (file: string, reason: string, options?: ErrorOptions) {
    super(`the keystore ${file} is corrupt: ${reason}`, options)
    this.path = file
  }
}

/** sign/exportSeed was asked for a key this keystore does not hold. */
export class UnknownKeyError extends FlexnodeError {
  static override readonly name = 'UnknownKeyError'
  /** string form of the requested key */
  readonly agentPubKey: string

  constructor (agentPubKey: unknown) {
    const str = agentPubKey instanceof Uint8Array ? encodeHash(agentPubKey) : String(agentPubKey)
    super(`the keystore holds no key ${str}`)
    this.agentPubKey = str
  }
}

interface HeldKey {
  seed: Buffer
  privateKey: KeyObject
  publicKey: Uint8Array
  agentPubKey: Uint8Array
}

interface CipherState {
  key: Buffer
  N: number
  r: number
  p: number
  salt: Buffer
}

interface PlainFile {
  version: 1
  keys: Array<{ agentPubKey: string, seed: string }>
}

interface EncryptedFile {
  version: 1
  encrypted: {
    kdf: 'scrypt'
    N: number
    r: number
    p: number
    salt: string
    nonce: string
    ciphertext: string
    tag: string
  }
}

export class Keystore {
  readonly path: string
  readonly encrypted: boolean
  #keys: HeldKey[]
  #cipher: CipherState | undefined
  #disposed = false
  readonly #publicKeys = new PublicKeyCache()
  #queue: Promise<unknown> = Promise.resolve()

  private constructor (file: string, keys: HeldKey[], cipher: CipherState | undefined) {
    this.path = file
    this.#keys = keys
    this.#cipher = cipher
    this.encrypted = cipher !== undefined
  }

  /** Load the keystore in `dataDir`, or create it with one fresh primary key if there is none. */
  static async open (init: KeystoreInit): Promise<Keystore> {
    if (typeof init?.dataDir !== 'string' || init.dataDir === '') {
      throw new InvalidInputError('dataDir must be a non-empty string', { field: 'dataDir' })
    }
    const passphrase = init.passphrase
    if (passphrase !== undefined && (typeof passphrase !== 'string' || passphrase === '')) {
      throw new InvalidInputError('passphrase must be a non-empty string when given', { field: 'passphrase' })
    }
    const N = init.scryptN ?? DEFAULT_N
    if (!validScrypt(N, DEFAULT_R, DEFAULT_P)) {
      throw new InvalidInputError(`scryptN must be a power of two between 2 and ${MAX_SCRYPT_MEMORY / 128 / DEFAULT_R}, got ${N}`, { field: 'scryptN' })
    }
    await fs.mkdir(init.dataDir, { recursive: true, mode: 0o700 })
    const file = path.join(init.dataDir, KEYSTORE_FILE)

    const raw = await readIfExists(file)
    if (raw === undefined) {
      const cipher = passphrase === undefined ? undefined : await newCipher(passphrase, N)
      const keys = [freshKey()]
      const created = await writeAtomic(file, serialize(keys, cipher), { exclusive: true })
      if (created) return new Keystore(file, keys, cipher)
      // another process created it between our read and our link: load theirs
      zeroKeys(keys)
      cipher?.key.fill(0)
      return await Keystore.#load(file, await fs.readFile(file), passphrase, N)
    }
    return await Keystore.#load(file, raw, passphrase, N)
  }

  static async #load (file: string, raw: Buffer, passphrase: string | undefined, N: number): Promise<Keystore> {
    const parsed = parseFile(file, raw)
    if ('keys' in parsed) {
      const keys = parsed.keys
      if (passphrase === undefined) return new Keystore(file, keys, undefined)
      // upgrade: encrypt the plaintext keystore in place
      const cipher = await newCipher(passphrase, N)
      await writeAtomic(file, serialize(keys, cipher))
      return new Keystore(file, keys, cipher)
    }
    if (passphrase === undefined) throw new KeystoreLockedError(file)
    const enc = parsed.encrypted
    const key = await deriveKey(passphrase, enc.salt, enc.N, enc.r, enc.p)
    const cipher: CipherState = { key, N: enc.N, r: enc.r, p: enc.p, salt: enc.salt }
    let plain: Buffer
    try {
      const decipher = crypto.createDecipheriv('chacha20-poly1305', key, enc.nonce, { authTagLength: TAG_LENGTH })
      decipher.setAAD(associatedData(cipher), { plaintextLength: enc.ciphertext.length })
      decipher.setAuthTag(enc.tag)
      plain = Buffer.concat([decipher.update(enc.ciphertext), decipher.final()])
    } catch {
      key.fill(0)
      throw new WrongPassphraseError(file)
    }
    const keys: HeldKey[] = []
    try {
      for (let off = 0; off < plain.length; off += SEED_LENGTH) keys.push(holdKey(plain.subarray(off, off + SEED_LENGTH)))
    } finally {
      plain.fill(0)
    }
    if (hasDuplicates(keys)) {
      zeroKeys(keys)
      key.fill(0)
      throw new KeystoreCorruptError(file, 'duplicate keys')
    }
    return new Keystore(file, keys, cipher)
  }

  /** The node key (the first key). */
  get primary (): AgentKey {
    this.#assertOpen()
    return publicView(this.#keys[0]!)
  }

  list (): AgentKey[] {
    this.#assertOpen()
    return this.#keys.map(publicView)
  }

  /** Whether a key is held; the 4 DHT-location bytes are ignored. */
  has (agentPubKey: Uint8Array): boolean {
    this.#assertOpen()
    return this.#find(agentPubKey) !== undefined
  }

  /** Add a fresh key and persist the keystore atomically. */
  async generate (): Promise<AgentKey> {
    this.#assertOpen()
    const run = this.#queue.then(async () => {
      this.#assertOpen()
      const added = freshKey()
      const next = [...this.#keys, added]
      try {
        await writeAtomic(this.path, serialize(next, this.#cipher))
      } catch (err) {
        zeroKeys([added])
        throw err
      }
      if (this.#disposed) {
        zeroKeys([added])
        throw new DisposedError('Keystore')
      }
      this.#keys = next
      return publicView(added)
    })
    this.#queue = run.catch(() => undefined)
    return await run
  }

  /** A 64-byte detached ed25519 signature of `data` by a held key. */
  sign (agentPubKey: Uint8Array, data: Uint8Array): Uint8Array {
    this.#assertOpen()
    if (!(data instanceof Uint8Array)) throw new InvalidInputError('data to sign must be a Uint8Array', { field: 'data' })
    const held = this.#find(agentPubKey)
    if (held === undefined) throw new UnknownKeyError(agentPubKey)
    return new Uint8Array(crypto.sign(null, data, held.privateKey))
  }

  /**
   * Verify a detached ed25519 signature by any key (held or not), with this keystore's cache of
   * public-key objects. Malformed input gives `false`.
   */
  verify (publicKey32: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
    this.#assertOpen()
    return verifySignature(publicKey32, data, signature, { keys: this.#publicKeys })
  }

  /** The 32-byte ed25519 seed (private key) of a held key — used to build the libp2p PeerId. */
  exportSeed (agentPubKey: Uint8Array): Uint8Array {
    this.#assertOpen()
    const held = this.#find(agentPubKey)
    if (held === undefined) throw new UnknownKeyError(agentPubKey)
    return new Uint8Array(held.seed)
  }

  /** Forget the keys (seeds are zeroed). Idempotent; afterwards every method throws DisposedError. */
  dispose (): void {
    if (this.#disposed) return
    this.#disposed = true
    zeroKeys(this.#keys)
    this.#keys = []
    this.#cipher?.key.fill(0)
    this.#cipher = undefined
  }

  #find (agentPubKey: Uint8Array): HeldKey | undefined {
    if (!(agentPubKey instanceof Uint8Array)) return undefined
    return this.#keys.find(k => sameKey(k.agentPubKey, agentPubKey))
  }

  #assertOpen (): void {
    if (this.#disposed) throw new DisposedError('Keystore')
  }
}

/** Public-key objects kept per cache. @default 1024 */
const PUBLIC_KEY_CACHE_SIZE = 1024

function publicKeyObject (publicKey32: Uint8Array): crypto.KeyObject {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey32]), format: 'der', type: 'spki' })
}

/**
 * Public-key objects of recently seen keys (building one costs about as much as a verify),
 * oldest dropped first. Each `Keystore` owns one; nothing is shared between instances.
 */
export class PublicKeyCache {
  readonly #keys = new Map<string, crypto.KeyObject>()
  readonly #size: number

  constructor (size: number = PUBLIC_KEY_CACHE_SIZE) {
    this.#size = size
  }

  get (publicKey32: Uint8Array): crypto.KeyObject {
    const id = Buffer.from(publicKey32.buffer, publicKey32.byteOffset, 32).toString('base64')
    let key = this.#keys.get(id)
    if (key === undefined) {
      key = publicKeyObject(publicKey32)
      if (this.#keys.size >= this.#size) this.#keys.delete(this.#keys.keys().next().value as string)
      this.#keys.set(id, key)
    }
    return key
  }

  get size (): number {
    return this.#keys.size
  }
}

/**
 * Verify a detached ed25519 signature. Never throws: malformed input gives `false`. With
 * `options.keys` the public-key object comes from (and is kept in) that cache.
 */
export function verifySignature (publicKey32: Uint8Array, data: Uint8Array, signature: Uint8Array, options: { keys?: PublicKeyCache } = {}): boolean {
  try {
    if (!(publicKey32 instanceof Uint8Array) || publicKey32.length !== 32) return false
    if (!(data instanceof Uint8Array)) return false
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false
    return crypto.verify(null, data, options.keys?.get(publicKey32) ?? publicKeyObject(publicKey32), signature)
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------

function holdKey (seed: Uint8Array): HeldKey {
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed])
  const privateKey = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  der.fill(0)
  const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' })
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32))
  return { seed: Buffer.from(seed), privateKey, publicKey, agentPubKey: agentPubKeyFromEd25519(publicKey) }
}

function freshKey (): HeldKey {
  const seed = crypto.randomBytes(SEED_LENGTH)
  try {
    return holdKey(seed)
  } finally {
    seed.fill(0)
  }
}

function publicView (k: HeldKey): AgentKey {
  return { agentPubKey: Uint8Array.from(k.agentPubKey), publicKey: Uint8Array.from(k.publicKey) }
}

function zeroKeys (keys: HeldKey[]): void {
  for (const k of keys) k.seed.fill(0)
}

function hasDuplicates (keys: HeldKey[]): boolean {
  return new Set(keys.map(k => encodeHash(k.agentPubKey))).size !== keys.length
}

function validScrypt (N: unknown, r: unknown, p: unknown): boolean {
  return Number.isSafeInteger(N) && Number.isSafeInteger(r) && Number.isSafeInteger(p) &&
    (N as number) >= 2 && ((N as number) & ((N as number) - 1)) === 0 &&
    (r as number) >= 1 && (r as number) <= 32 && (p as number) >= 1 && (p as number) <= 16 &&
    128 * (N as number) * (r as number) <= MAX_SCRYPT_MEMORY
}

async function deriveKey (passphrase: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  const maxmem = 128 * r * (N + 2) + 128 * r * p + (1 << 20)
  return await new Promise((resolve, reject) => {
    crypto.scrypt(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

async function newCipher (passphrase: string, N: number): Promise<CipherState> {
  const salt = crypto.randomBytes(SALT_LENGTH)
  const key = await deriveKey(passphrase, salt, N, DEFAULT_R, DEFAULT_P)
  return { key, N, r: DEFAULT_R, p: DEFAULT_P, salt }
}

/** AEAD associated data: binds the format version and every KDF parameter. */
function associatedData (c: Omit<CipherState, 'key'>): Buffer {
  return Buffer.from(`flexnode-keystore|v${VERSION}|scrypt|N=${c.N}|r=${c.r}|p=${c.p}|salt=${c.salt.toString('base64')}`, 'utf8')
}

function serialize (keys: HeldKey[], cipher: CipherState | undefined): Buffer {
  if (cipher === undefined) {
    const body: PlainFile = {
      version: VERSION,
      keys: keys.map(k => ({ agentPubKey: encodeHash(k.agentPubKey), seed: k.seed.toString('base64') }))
    }
    return Buffer.from(JSON.stringify(body, null, 2) + '\n', 'utf8')
  }
  const plain = Buffer.concat(keys.map(k => k.seed))
  try {
    const nonce = crypto.randomBytes(NONCE_LENGTH)
    const c = crypto.createCipheriv('chacha20-poly1305', cipher.key, nonce, { authTagLength: TAG_LENGTH })
    c.setAAD(associatedData(cipher), { plaintextLength: plain.length })
    const ciphertext = Buffer.concat([c.update(plain), c.final()])
    const body: EncryptedFile = {
      version: VERSION,
      encrypted: {
        kdf: 'scrypt',
        N: cipher.N,
        r: cipher.r,
        p: cipher.p,
        salt: cipher.salt.toString('base64'),
        nonce: nonce.toString('base64'),
        ciphertext: ciphertext.toString('base64'),
        tag: c.getAuthTag().toString('base64')
      }
    }
    return Buffer.from(JSON.stringify(body, null, 2) + '\n', 'utf8')
  } finally {
    plain.fill(0)
  }
}

type Parsed =
  | { keys: HeldKey[] }
  | { encrypted: { N: number, r: number, p: number, salt: Buffer, nonce: Buffer, ciphertext: Buffer, tag: Buffer } }

function parseFile (file: string, raw: Buffer): Parsed {
  const corrupt = (reason: string, cause?: unknown): KeystoreCorruptError =>
    new KeystoreCorruptError(file, reason, cause === undefined ? undefined : { cause })
  if (raw.length > MAX_FILE_SIZE) throw corrupt(`file is larger than ${MAX_FILE_SIZE} bytes`)
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    throw corrupt('not valid JSON', err)
  }
  if (!isRecord(json)) throw corrupt('not a JSON object')
  if (json.version !== VERSION) throw corrupt(`unsupported version ${JSON.stringify(json.version)}`)
  const hasKeys = json.keys !== undefined
  const hasEnc = json.encrypted !== undefined
  if (hasKeys === hasEnc) throw corrupt('exactly one of "keys" and "encrypted" must be present')

  if (hasKeys) {
    if (!Array.isArray(json.keys) || json.keys.length === 0) throw corrupt('"keys" must be a non-empty array')
    const keys: HeldKey[] = []
    try {
      for (const [i, entry] of json.keys.entries()) {
        if (!isRecord(entry)) throw corrupt(`keys[${i}] is not an object`)
        const seed = strictBase64(entry.seed)
        if (seed === undefined || seed.length !== SEED_LENGTH) throw corrupt(`keys[${i}].seed is not 32 bytes of base64`)
        const held = holdKey(seed)
        seed.fill(0)
        keys.push(held)
        if (entry.agentPubKey !== encodeHash(held.agentPubKey)) throw corrupt(`keys[${i}].agentPubKey does not match its seed`)
      }
      if (hasDuplicates(keys)) throw corrupt('duplicate keys')
    } catch (err) {
      zeroKeys(keys)
      throw err
    }
    return { keys }
  }

  const enc = json.encrypted
  if (!isRecord(enc)) throw corrupt('"encrypted" is not an object')
  if (enc.kdf !== 'scrypt') throw corrupt(`unsupported kdf ${JSON.stringify(enc.kdf)}`)
  if (!validScrypt(enc.N, enc.r, enc.p)) throw corrupt('invalid or excessive scrypt parameters')
  const salt = strictBase64(enc.salt)
  const nonce = strictBase64(enc.nonce)
  const ciphertext = strictBase64(enc.ciphertext)
  const tag = strictBase64(enc.tag)
  if (salt === undefined || salt.length < SALT_LENGTH) throw corrupt(`salt must be at least ${SALT_LENGTH} bytes of base64`)
  if (nonce === undefined || nonce.length !== NONCE_LENGTH) throw corrupt(`nonce must be ${NONCE_LENGTH} bytes of base64`)
  if (tag === undefined || tag.length !== TAG_LENGTH) throw corrupt(`tag must be ${TAG_LENGTH} bytes of base64`)
  if (ciphertext === undefined || ciphertext.length === 0 || ciphertext.length % SEED_LENGTH !== 0) {
    throw corrupt(`ciphertext must be a non-empty multiple of ${SEED_LENGTH} bytes of base64`)
  }
  return { encrypted: { N: enc.N as number, r: enc.r as number, p: enc.p as number, salt, nonce, ciphertext, tag } }
}

/** Decode canonical (padded) base64; anything Buffer.from would silently repair gives undefined. */
function strictBase64 (value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return undefined
  const bytes = Buffer.from(value, 'base64')
  return bytes.toString('base64') === value ? bytes : undefined
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

async function readIfExists (file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * Write `bytes` to `file` atomically: a 0600 temp file beside it, fsync, then rename (or, with
 * `exclusive`, hard-link so an existing file is never replaced — returns false if one exists).
 */
async function writeAtomic (file: string, bytes: Buffer, opts: { exclusive?: boolean } = {}): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`
  let linked = true
  try {
    const fh = await fs.open(tmp, 'wx', 0o600)
    try {
      await fh.chmod(0o600)
      await fh.writeFile(bytes)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (opts.exclusive === true) {
      try {
        await fs.link(tmp, file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        linked = false
      }
    } else {
      await fs.rename(tmp, file)
    }
  } finally {
    await fs.rm(tmp, { force: true })
  }
  if (!linked) return false
  await fs.chmod(file, 0o600)
  await syncDir(path.dirname(file))
  return true
}

/** fsync the directory so the rename itself is durable (best effort: not every platform allows it). */
async function syncDir (dir: string): Promise<void> {
  let fh: FileHandle | undefined
  try {
    fh = await fs.open(dir, 'r')
    await fh.sync()
  } catch {
    // unsupported (e.g. Windows); the data itself was already fsynced
  } finally {
    await fh?.close()
  }
}
