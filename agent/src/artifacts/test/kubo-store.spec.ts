import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../logger.ts'
import { kuboStore } from '../kubo-store.ts'
import { artifactStoreCompliance, failure } from './compliance.ts'

const logger = silentLogger()
const KUBO_API = process.env.KUBO_API

/** A 127.0.0.1 port nobody listens on (bound, then closed). */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('KuboStore', () => {
  if (KUBO_API !== undefined && KUBO_API !== '') {
    artifactStoreCompliance(`KuboStore at ${KUBO_API}`, async () => {
      const store = kuboStore({ api: KUBO_API })({ logger })
      await store.start()
      return { store, online: true, cleanup: async () => { await store.stop() } }
    })
  } else {
    it.skip('compliance suite: skipped because KUBO_API is not set — no Kubo binary can be installed on these machines (the npm `kubo` package downloads its binary at install time, which fails here, and Debian packages none); run a Kubo daemon and set KUBO_API=http://127.0.0.1:5001 to run it', () => {})
  }

  it('says a daemon that refuses connections is unavailable (ArtifactStoreUnavailableError)', async () => {
    const api = `http://127.0.0.1:${await closedPort()}`
    const store = kuboStore({ api })({ logger })
    await expect(store.start()).rejects.toMatchObject({ name: 'ArtifactStoreUnavailableError', api })
    await store.stop()
  })

  it('refuses a bad api URL and a bad timeout, and use before start', async () => {
    expect(() => kuboStore({ api: 'ftp://127.0.0.1:5001' })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'api' }))
    expect(() => kuboStore({ api: 'not a url' })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'api' }))
    expect(() => kuboStore({ timeoutMs: 0 })).toThrow(expect.objectContaining({ name: 'InvalidInputError', field: 'timeoutMs' }))
    const store = kuboStore({})({ logger })
    expect(await failure(store.pins())).toBe('NotStartedError')
    expect(await failure(store.has('nope'))).toBe('InvalidCidError')
  })
})
