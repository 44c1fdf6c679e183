import { describe, expect, it } from 'vitest'
import { tempDir, TEST_SCRYPT_N } from '../../../../fixtures/index.ts'
import { keystoreService } from '../keystore-service.ts'

describe('keystoreService', () => {
  it('opens the data dir\'s keystore on start, the same key again, and wipes it on stop', async () => {
    await using dir = await tempDir()
    const first = keystoreService({ scryptN: TEST_SCRYPT_N })({ dataDir: dir })
    expect(() => first.keystore).toThrow(expect.objectContaining({ name: 'NotStartedError' }))
    await first.start()
    const agent = first.keystore.primary.agentPubKey
    const keystore = first.keystore
    await first.stop()
    await first.stop()
    expect(() => keystore.sign(agent, new Uint8Array(1))).toThrow(expect.objectContaining({ name: 'DisposedError' }))
    await expect(first.start()).rejects.toMatchObject({ name: 'DisposedError' })

    await using again = keystoreService({ scryptN: TEST_SCRYPT_N })({ dataDir: dir })
    await again.start()
    expect(again.keystore.primary.agentPubKey).toEqual(agent)
  })
})
