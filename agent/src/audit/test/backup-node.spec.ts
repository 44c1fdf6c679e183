/**
 * The round trip a user makes, on real nodes (real conductor, real libp2p on 127.0.0.1): node A,
 * with an encrypted keystore and a mesh of one other node B, writes to its chains; `flexnode
 * backup` (the CLI as a child process, asking the running node over POST /v1/backup) → A is
 * gone → `flexnode restore` (in-process) into a fresh dir → a node started on it has A's agent key and peer id, reads A's
 * earlier entries, and rejoins B's mesh.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createTestAgent, tempDir, waitUntil, type TempDir, type TestAgent } from '../../../../fixtures/index.ts'
import { runFlexnode } from '../../../../fixtures/spawn-node.ts'
import { restoreCommand, restoreOptionsOf } from '../../cli/backup.ts'
import { PolicyStoreClient } from '../../../../zomes-ts/policy_store/client.ts'
import { openBackupFile, restoreBackup } from '../backup.ts'
import { BACKUP_PROOF_HEADER, dataDirProof } from '../backup-routes.ts'

const PASSPHRASE = 'correct horse battery staple'

let b: TestAgent
let a: TestAgent
let tmp: TempDir
let archive: string
let agentKey: string
let peerId: string

beforeAll(async () => {
  tmp = await tempDir('flexnode-backup-node-')
  b = await createTestAgent()
  a = await createTestAgent({ dataDir: join(tmp.path, 'a'), passphrase: PASSPHRASE, bootstrap: b.node.info.multiaddrs })
  agentKey = a.node.info.agent_pub_key
  peerId = a.node.info.peer_id
  await new PolicyStoreClient(a.node.client).setPolicy({ name: 'before-backup', kind: 'compute', document: { scheduling: { algorithm: 'spread' } } })
  archive = join(tmp.path, 'a.tar')
}, 60_000)

afterAll(async () => {
  await a?.[Symbol.asyncDispose]()
  await b?.[Symbol.asyncDispose]()
  await tmp?.[Symbol.asyncDispose]()
})

describe('backup → restore of a running node', () => {
  it('POST /v1/backup wants the data-dir proof', async () => {
    const url = `http://127.0.0.1:${a.node.info.http_port}/v1/backup`
    const denied = await fetch(url, { method: 'POST' })
    expect(denied.status).toBe(403)
    expect(((await denied.json()) as { error: { name: string } }).error.name).toBe('BackupForbiddenError')
    const wrong = await fetch(url, { method: 'POST', headers: { [BACKUP_PROOF_HEADER]: '0'.repeat(64) } })
    expect(wrong.status).toBe(403)
    // a bad body, once the proof is right: 400 naming the field, nothing streamed
    for (const [body, param] of [[{ include_plaintext_keystore: 'yes' }, 'include_plaintext_keystore'], [{ to: '/tmp/x' }, 'to'], [[], 'body']] as const) {
      const bad = await fetch(url, { method: 'POST', headers: { [BACKUP_PROOF_HEADER]: await dataDirProof(a.dataDir), 'content-type': 'application/json' }, body: JSON.stringify(body) })
      expect(bad.status, JSON.stringify(body)).toBe(400)
      expect(((await bad.json()) as { error: { name: string, param: string } }).error, JSON.stringify(body)).toMatchObject({ name: 'InvalidInputError', param })
    }
    const ok = await fetch(url, { method: 'POST', headers: { [BACKUP_PROOF_HEADER]: await dataDirProof(a.dataDir) } })
    expect(ok.status).toBe(200)
    expect(ok.headers.get('content-type')).toBe('application/x-tar')
    expect((await ok.arrayBuffer()).byteLength).toBe(Number(ok.headers.get('content-length')))
  })

  it('flexnode backup asks the running node; the archive is whole and its keystore encrypted', async () => {
    const res = await runFlexnode(['backup', '--data-dir', a.dataDir, '--to', archive, '--json'])
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    const out = JSON.parse(res.stdout) as { to: string, size: number, manifest: { agent: string, keystore_encrypted: boolean, pins_included: boolean } }
    expect(out.to).toBe(archive)
    expect(out.manifest).toMatchObject({ agent: agentKey, keystore_encrypted: true })
    expect((await stat(archive)).size).toBe(out.size)
  })

  it('restore refuses a non-empty target and a wrong passphrase, writing nothing', async () => {
    await expect(restoreBackup({ dataDir: a.dataDir, from: openBackupFile(archive) })).rejects.toMatchObject({ name: 'RestoreTargetNotEmptyError' })
    await expect(restoreBackup({ dataDir: join(tmp.path, 'wrong'), from: openBackupFile(archive), passphrase: 'not it' })).rejects.toMatchObject({ name: 'WrongPassphraseError' })
    expect((await readdir(tmp.path)).sort()).toEqual(['a', 'a.tar'])
  })

  it('a node on the restored dir has the same agent key and peer id, reads its entries, and rejoins the mesh', async () => {
    await a.node.stop()
    const restoredDir = join(tmp.path, 'restored')
    // the restore command in-process (the backup above ran it as a child process)
    const opts = restoreOptionsOf({ from: archive, dataDir: restoredDir, json: true }, PASSPHRASE)
    let printed = ''
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { printed += String(chunk); return true })
    try {
      expect(await restoreCommand(opts)).toBe(0)
    } finally {
      write.mockRestore()
    }
    const restored = JSON.parse(printed) as { chains: Array<{ author: string, length: number }> }
    expect(restored.chains.length).toBeGreaterThanOrEqual(2)
    expect(restored.chains.every(c => c.author === agentKey && c.length >= 3)).toBe(true)

    // B is told when the restored node connects (A's old connection is gone)
    let rejoined = false
    const off = b.node.mesh.onPeer('connect', (id) => { if (id === peerId) rejoined = true })
    await using a2 = await createTestAgent({ dataDir: restoredDir, passphrase: PASSPHRASE, bootstrap: b.node.info.multiaddrs })
    expect(a2.node.info.agent_pub_key).toBe(agentKey)
    expect(a2.node.info.peer_id).toBe(peerId)
    expect(await new PolicyStoreClient(a2.node.client).getPolicy('before-backup')).toMatchObject({ name: 'before-backup', author: agentKey })
    await waitUntil(() => rejoined && b.node.mesh.peers().includes(peerId), { timeoutMs: 15_000, what: 'B to see the restored node connect' })
    off()
    // and it goes on writing on its restored chain
    await new PolicyStoreClient(a2.node.client).setPolicy({ name: 'after-restore', kind: 'compute', document: { scheduling: { algorithm: 'pack' } } })
  })
})
