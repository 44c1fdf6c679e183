/**
 * Zome-call nonces: a nonce the conductor accepted is refused ever after (until it expires): in the
 * same process, after the database is closed and reopened, after a transaction that rolled back,
 * and a call that commits writes its nonce in the same transaction as its records.
 */
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../../../../fixtures/index.ts'
import { ConductorStore } from '../store.ts'

const agent = (): Uint8Array => new Uint8Array(randomBytes(39))
const later = (): number => Date.now() + 60_000

describe('zome-call nonces', () => {
  it('a used nonce is refused again in the same process and after a reopen', async () => {
    await using dir = await tempDir('flexnode-nonce-')
    const path = join(dir.path, 'db.sqlite')
    const a = agent()
    const n = new Uint8Array(randomBytes(32))
    let store = new ConductorStore({ path })
    expect(store.useNonce(a, n, later())).toBe(true)
    expect(store.useNonce(a, n, later())).toBe(false)
    // the same nonce from another agent is another nonce
    expect(store.useNonce(agent(), n, later())).toBe(true)
    store.dispose()
    store = new ConductorStore({ path })
    expect(store.useNonce(a, n, later())).toBe(false)
    store.dispose()
  })

  it('a call that commits writes its nonce with its records, and a rollback loses no nonce', async () => {
    await using dir = await tempDir('flexnode-nonce-')
    const path = join(dir.path, 'db.sqlite')
    const store = new ConductorStore({ path })
    const onDisk = (a: Uint8Array, n: Uint8Array): boolean => {
      const other = new Database(path, { readonly: true })
      try {
        return other.prepare('SELECT 1 FROM nonce WHERE agent = ? AND nonce = ?').get(Buffer.from(a), Buffer.from(n)) !== undefined
      } finally {
        other.close()
      }
    }
    const a = agent()
    const first = new Uint8Array(randomBytes(32))
    expect(store.useNonce(a, first, later())).toBe(true)
    store.transaction(() => { store.setMeta('committed', new Uint8Array([1])) })
    expect(onDisk(a, first)).toBe(true)

    const second = new Uint8Array(randomBytes(32))
    expect(store.useNonce(a, second, later())).toBe(true)
    expect(() => store.transaction(() => { store.setMeta('half', new Uint8Array([1])); throw new Error('invalid commit') })).toThrow('invalid commit')
    expect(store.getMeta('half')).toBeUndefined()
    expect(store.useNonce(a, second, later())).toBe(false)
    store.transaction(() => { store.setMeta('next', new Uint8Array([1])) })
    expect(onDisk(a, second)).toBe(true)
    store.dispose()
  })
})
