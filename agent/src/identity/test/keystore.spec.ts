import { describe, it, expect, afterEach } from 'vitest'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Keystore, KEYSTORE_FILE, PublicKeyCache, verifySignature } from '../keystore.ts'
import type { KeystoreInit } from '../keystore.ts'
import { agentPubKeyFromEd25519, encodeHash, sameKey } from '../../holo/hash.ts'

const N = 2 ** 12
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

const dirs: string[] = []
const stores: Keystore[] = []

afterEach(async () => {
  for (const ks of stores.splice(0)) ks.dispose()
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true })
})

async function tempDir (): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flexnode-keystore-'))
  dirs.push(dir)
  return dir
}

async function open (init: Omit<KeystoreInit, 'scryptN'> & { scryptN?: number }): Promise<Keystore> {
  const ks = await Keystore.open({ scryptN: N, ...init })
  stores.push(ks)
  return ks
}

async function caught (p: Promise<unknown> | (() => unknown)): Promise<Error> {
  try {
    if (typeof p === 'function') p()
    else await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected an error')
}

function seedBase64 (ks: Keystore): string {
  return Buffer.from(ks.exportSeed(ks.primary.agentPubKey)).toString('base64')
}

describe('Keystore', () => {
  it('creates a 0600 keystore with one uhCAk… primary key', async () => {
    const dataDir = path.join(await tempDir(), 'nested', 'data')
    const ks = await open({ dataDir })
    expect(ks.path).toBe(path.join(dataDir, KEYSTORE_FILE))
    expect(ks.encrypted).toBe(false)
    const stat = await fs.stat(ks.path)
    expect(stat.mode & 0o777).toBe(0o600)
    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o700)
    expect(ks.primary.agentPubKey.length).toBe(39)
    expect(ks.primary.publicKey.length).toBe(32)
    expect(encodeHash(ks.primary.agentPubKey).startsWith('uhCAk')).toBe(true)
    expect(ks.primary.agentPubKey).toEqual(agentPubKeyFromEd25519(ks.primary.publicKey))
    expect(ks.list()).toHaveLength(1)
    expect(ks.exportSeed(ks.primary.agentPubKey).length).toBe(32)
    expect((await fs.readdir(dataDir)).filter(f => f.endsWith('.tmp'))).toEqual([])
  })

  it('reopens with the same key', async () => {
    const dataDir = await tempDir()
    const a = await open({ dataDir })
    const b = await open({ dataDir })
    expect(b.primary.agentPubKey).toEqual(a.primary.agentPubKey)
    expect(b.exportSeed(b.primary.agentPubKey)).toEqual(a.exportSeed(a.primary.agentPubKey))
  })

  it('signs; signatures verify with verifySignature and plain node:crypto', async () => {
    const ks = await open({ dataDir: await tempDir() })
    const data = new TextEncoder().encode('hello flexnode')
    const sig = ks.sign(ks.primary.agentPubKey, data)
    expect(sig).toBeInstanceOf(Uint8Array)
    expect(sig.length).toBe(64)
    expect(verifySignature(ks.primary.publicKey, data, sig)).toBe(true)

    const pub = crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, ks.primary.publicKey]), format: 'der', type: 'spki' })
    expect(crypto.verify(null, data, pub, sig)).toBe(true)

    // the exported seed is the same private key
    const jwk = pub.export({ format: 'jwk' })
    const priv = crypto.createPrivateKey({ key: { ...jwk, d: Buffer.from(ks.exportSeed(ks.primary.agentPubKey)).toString('base64url') }, format: 'jwk' })
    expect(verifySignature(ks.primary.publicKey, data, new Uint8Array(crypto.sign(null, data, priv)))).toBe(true)

    const tampered = Uint8Array.from(data)
    tampered[0]! ^= 1
    expect(verifySignature(ks.primary.publicKey, tampered, sig)).toBe(false)
  })

  it('verifySignature returns false on malformed input', () => {
    const k = new Uint8Array(32)
    expect(verifySignature(k, new Uint8Array(1), new Uint8Array(64))).toBe(false)
    expect(verifySignature(new Uint8Array(31), new Uint8Array(1), new Uint8Array(64))).toBe(false)
    expect(verifySignature(k, new Uint8Array(1), new Uint8Array(63))).toBe(false)
    expect(verifySignature(null as unknown as Uint8Array, new Uint8Array(1), new Uint8Array(64))).toBe(false)
    expect(verifySignature(k, 'x' as unknown as Uint8Array, new Uint8Array(64))).toBe(false)
  })

  it('verify() checks any key through the keystore\'s own key cache, and throws DisposedError after dispose', async () => {
    const a = await open({ dataDir: await tempDir() })
    const b = await open({ dataDir: await tempDir() })
    const data = new Uint8Array([1, 2, 3])
    const sig = b.sign(b.primary.agentPubKey, data)
    // a verifies a key it does not hold; b's cache is not touched by a's verification
    expect(a.verify(b.primary.publicKey, data, sig)).toBe(true)
    expect(a.verify(b.primary.publicKey, new Uint8Array([9]), sig)).toBe(false)
    expect(a.verify(new Uint8Array(31), data, sig)).toBe(false)
    const cache = new PublicKeyCache(2)
    for (const ks of [a, b, a]) expect(verifySignature(ks.primary.publicKey, data, ks.sign(ks.primary.agentPubKey, data), { keys: cache })).toBe(true)
    expect(cache.size).toBe(2)
    a.dispose()
    expect(() => a.verify(b.primary.publicKey, data, sig)).toThrow(expect.objectContaining({ name: 'DisposedError' }))
    expect(b.verify(b.primary.publicKey, data, sig)).toBe(true)
  })

  it('has() ignores the location bytes', async () => {
    const ks = await open({ dataDir: await tempDir() })
    const zeroed = Uint8Array.from(ks.primary.agentPubKey)
    zeroed.fill(0, 35)
    expect(ks.has(zeroed)).toBe(true)
    expect(verifySignature(ks.primary.publicKey, new Uint8Array([1]), ks.sign(zeroed, new Uint8Array([1])))).toBe(true)
    expect(ks.has(agentPubKeyFromEd25519(new Uint8Array(32).fill(7)))).toBe(false)
  })

  it('writes no seed in plaintext when a passphrase is given', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir, passphrase: 'correct horse' })
    await ks.generate()
    expect(ks.encrypted).toBe(true)
    const raw = await fs.readFile(ks.path)
    expect((await fs.stat(ks.path)).mode & 0o777).toBe(0o600)
    for (const k of ks.list()) {
      const seed = Buffer.from(ks.exportSeed(k.agentPubKey))
      expect(raw.includes(seed)).toBe(false)
      for (const enc of ['base64', 'base64url', 'hex'] as const) expect(raw.toString('utf8')).not.toContain(seed.toString(enc))
    }
    const json = JSON.parse(raw.toString('utf8'))
    expect(json.version).toBe(1)
    expect(json.keys).toBeUndefined()
    expect(json.encrypted.kdf).toBe('scrypt')
    expect(json.encrypted.N).toBe(N)

    const again = await open({ dataDir, passphrase: 'correct horse' })
    expect(again.list().map(k => encodeHash(k.agentPubKey))).toEqual(ks.list().map(k => encodeHash(k.agentPubKey)))
    expect(seedBase64(again)).toBe(seedBase64(ks))
  })

  it('wrong passphrase → WrongPassphraseError, file unchanged', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir, passphrase: 'right' })
    const before = await fs.readFile(ks.path)
    const err = await caught(Keystore.open({ dataDir, passphrase: 'wrong', scryptN: N }))
    expect(err.name).toBe('WrongPassphraseError')
    expect((await fs.readFile(ks.path)).equals(before)).toBe(true)
  })

  it('encrypted without a passphrase → KeystoreLockedError', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir, passphrase: 'secret' })
    const before = await fs.readFile(ks.path)
    const err = await caught(Keystore.open({ dataDir }))
    expect(err.name).toBe('KeystoreLockedError')
    expect((await fs.readFile(ks.path)).equals(before)).toBe(true)
  })

  it('corrupt JSON → KeystoreCorruptError with path', async () => {
    const dataDir = await tempDir()
    const file = path.join(dataDir, KEYSTORE_FILE)
    await fs.writeFile(file, '{"version":1,"keys":[', { mode: 0o600 })
    const err = await caught(Keystore.open({ dataDir }))
    expect(err.name).toBe('KeystoreCorruptError')
    expect((err as Error & { path: string }).path).toBe(file)
  })

  it('bad version / bad field sizes → KeystoreCorruptError', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir })
    const good = JSON.parse(await fs.readFile(ks.path, 'utf8'))
    const cases: unknown[] = [
      { ...good, version: 2 },
      { version: 1 },
      { version: 1, keys: [] },
      { version: 1, keys: [{ ...good.keys[0], seed: Buffer.alloc(31).toString('base64') }] },
      // a seed changed behind the recorded public key must not load as a different key
      { version: 1, keys: [{ ...good.keys[0], seed: Buffer.alloc(32, 1).toString('base64') }] },
      [1, 2, 3],
      null
    ]
    for (const body of cases) {
      await fs.writeFile(ks.path, JSON.stringify(body))
      const err = await caught(Keystore.open({ dataDir }))
      expect(err.name, JSON.stringify(body)).toBe('KeystoreCorruptError')
    }
  })

  it('truncated or tampered ciphertext never yields a different key', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir, passphrase: 'pw' })
    const original = encodeHash(ks.primary.agentPubKey)
    const good = JSON.parse(await fs.readFile(ks.path, 'utf8'))
    const ct = Buffer.from(good.encrypted.ciphertext, 'base64')
    const flipped = Buffer.from(ct)
    flipped[0]! ^= 1
    const variants = [
      { ...good.encrypted, ciphertext: ct.subarray(0, 20).toString('base64') },
      { ...good.encrypted, ciphertext: '' },
      { ...good.encrypted, ciphertext: flipped.toString('base64') },
      { ...good.encrypted, ciphertext: Buffer.concat([ct, ct]).toString('base64') },
      { ...good.encrypted, tag: Buffer.alloc(16).toString('base64') },
      { ...good.encrypted, tag: Buffer.alloc(8).toString('base64') },
      { ...good.encrypted, nonce: Buffer.alloc(12).toString('base64') },
      { ...good.encrypted, N: N * 2 }, // KDF params are bound: a changed N must not decrypt
      { ...good.encrypted, r: 9 },
      { ...good.encrypted, N: 3 },
      { ...good.encrypted, kdf: 'argon2' }
    ]
    for (const encrypted of variants) {
      await fs.writeFile(ks.path, JSON.stringify({ version: 1, encrypted }))
      const err = await caught(Keystore.open({ dataDir, passphrase: 'pw', scryptN: N }))
      expect(['KeystoreCorruptError', 'WrongPassphraseError'], JSON.stringify(encrypted)).toContain(err.name)
    }
    await fs.writeFile(ks.path, JSON.stringify(good))
    const restored = await open({ dataDir, passphrase: 'pw' })
    expect(encodeHash(restored.primary.agentPubKey)).toBe(original)
  })

  it('generate() persists a second key', async () => {
    const dataDir = await tempDir()
    for (const passphrase of [undefined, 'pw']) {
      const dir = path.join(dataDir, passphrase ?? 'plain')
      const ks = await open({ dataDir: dir, passphrase })
      const second = await ks.generate()
      expect(sameKey(second.agentPubKey, ks.primary.agentPubKey)).toBe(false)
      expect(ks.list()).toHaveLength(2)
      expect(ks.has(second.agentPubKey)).toBe(true)
      expect((await fs.stat(ks.path)).mode & 0o777).toBe(0o600)
      const reopened = await open({ dataDir: dir, passphrase })
      expect(reopened.list().map(k => encodeHash(k.agentPubKey))).toEqual(ks.list().map(k => encodeHash(k.agentPubKey)))
      expect(reopened.primary.agentPubKey).toEqual(ks.primary.agentPubKey)
      const data = new Uint8Array([1, 2, 3])
      expect(verifySignature(second.publicKey, data, reopened.sign(second.agentPubKey, data))).toBe(true)
    }
  })

  it('concurrent generate() calls all persist', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir })
    await Promise.all([ks.generate(), ks.generate(), ks.generate()])
    expect(ks.list()).toHaveLength(4)
    expect((await open({ dataDir })).list()).toHaveLength(4)
  })

  it('unknown key → UnknownKeyError', async () => {
    const ks = await open({ dataDir: await tempDir() })
    const other = agentPubKeyFromEd25519(new Uint8Array(32).fill(9))
    const err = await caught(() => ks.sign(other, new Uint8Array([1])))
    expect(err.name).toBe('UnknownKeyError')
    expect((err as Error & { agentPubKey: string }).agentPubKey).toBe(encodeHash(other))
    expect((await caught(() => ks.exportSeed(other))).name).toBe('UnknownKeyError')
  })

  it('dispose is idempotent; afterwards every method throws DisposedError', async () => {
    const ks = await open({ dataDir: await tempDir() })
    const key = ks.primary.agentPubKey
    ks.dispose()
    ks.dispose()
    expect((await caught(() => ks.primary)).name).toBe('DisposedError')
    expect((await caught(() => ks.list())).name).toBe('DisposedError')
    expect((await caught(() => ks.has(key))).name).toBe('DisposedError')
    expect((await caught(() => ks.sign(key, new Uint8Array(1)))).name).toBe('DisposedError')
    expect((await caught(() => ks.exportSeed(key))).name).toBe('DisposedError')
    expect((await caught(ks.generate())).name).toBe('DisposedError')
  })

  it('upgrades a plaintext keystore to encrypted when opened with a passphrase', async () => {
    const dataDir = await tempDir()
    const plain = await open({ dataDir })
    const seed = seedBase64(plain)
    expect(await fs.readFile(plain.path, 'utf8')).toContain(seed)

    const upgraded = await open({ dataDir, passphrase: 'new pw' })
    expect(upgraded.encrypted).toBe(true)
    expect(upgraded.primary.agentPubKey).toEqual(plain.primary.agentPubKey)
    const raw = await fs.readFile(upgraded.path, 'utf8')
    expect(raw).not.toContain(seed)
    expect(JSON.parse(raw).keys).toBeUndefined()
    expect((await fs.stat(upgraded.path)).mode & 0o777).toBe(0o600)

    expect((await caught(Keystore.open({ dataDir }))).name).toBe('KeystoreLockedError')
    const reopened = await open({ dataDir, passphrase: 'new pw' })
    expect(seedBase64(reopened)).toBe(seed)
  })

  it('re-applies mode 0600 when writing', async () => {
    const dataDir = await tempDir()
    const ks = await open({ dataDir })
    await fs.chmod(ks.path, 0o644)
    await ks.generate()
    expect((await fs.stat(ks.path)).mode & 0o777).toBe(0o600)
  })

  it('rejects an empty passphrase and a non-power-of-two scryptN', async () => {
    const dataDir = await tempDir()
    expect((await caught(Keystore.open({ dataDir, passphrase: '' }))).name).toBe('InvalidInputError')
    expect((await caught(Keystore.open({ dataDir, passphrase: 'x', scryptN: 1000 }))).name).toBe('InvalidInputError')
  })
})
