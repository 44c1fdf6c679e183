/**
 * `POST /v1/backup` on the node's HTTP API: a consistent backup of the running node (its database
 * snapshotted online, its pins from the artifacts service), streamed as the archive
 * (`application/x-tar`, with its `content-length`). This is what `flexnode backup` uses while the
 * node runs.
 *
 * The archive holds the node's private entries and its (encrypted) keystore, and the HTTP API has
 * no users: a caller proves it may read the node's data dir with the header
 * `x-flexnode-data-dir-proof: <hex sha256 of "flexnode backup v1\n" + the bytes of keystore.json>`
 * (the file is 0600 in a 0700 dir; `dataDirProof` computes it). Without a right proof: 403
 * `BackupForbiddenError`. Body (optional): `{include_plaintext_keystore?: boolean}`; a plaintext
 * keystore without it is 409 `PlaintextKeystoreError`.
 *
 * ```sh
 * proof=$( (printf 'flexnode backup v1\n'; cat ~/.flexnode/keystore.json) | sha256sum | cut -d' ' -f1)
 * curl -s -X POST localhost:8080/v1/backup -H "x-flexnode-data-dir-proof: $proof" -o node.tar
 * ```
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { KEYSTORE_FILE } from '../identity/keystore.ts'
import { parseFields } from '../http/input.ts'
import { HttpApiError } from '../http/openai.ts'
import type { HttpRoutes } from '../http/types.ts'
import { nodeBackup, type NodeBackup } from './backup.ts'
import { backupBody } from './schemas.ts'

export const BACKUP_PROOF_HEADER = 'x-flexnode-data-dir-proof'
const PROOF_CONTEXT = 'flexnode backup v1\n'

/** The proof that the caller can read `dataDir` (see the file's doc). */
export async function dataDirProof (dataDir: string): Promise<string> {
  const keystore = await readFile(join(dataDir, KEYSTORE_FILE))
  return createHash('sha256').update(PROOF_CONTEXT).update(keystore).digest('hex')
}

/** The request did not prove it may read the node's data dir. */
export class BackupForbiddenError extends HttpApiError {
  static override readonly name: string = 'BackupForbiddenError'
  override readonly status = 403
  override readonly type = 'permission_error'
  override readonly code = 'data_dir_proof_required'

  constructor () {
    super(`a backup needs the header ${BACKUP_PROOF_HEADER} proving read access to the node's data dir (flexnode backup sends it)`)
  }
}

export interface BackupRoutesComponents {
  backup: NodeBackup
  /** the node's data dir: the proof is checked against its keystore file */
  dataDir: string
}

export function backupRoutes (c: BackupRoutesComponents): HttpRoutes {
  return {
    paths: {
      '/v1/backup': {
        POST: async ({ req, res, signal, readOptionalJson }) => {
          const given = req.headers[BACKUP_PROOF_HEADER]
          const expected = Buffer.from(await dataDirProof(c.dataDir), 'hex')
          const proof = typeof given === 'string' && /^[0-9a-f]{64}$/i.test(given) ? Buffer.from(given, 'hex') : undefined
          if (proof === undefined || !timingSafeEqual(proof, expected)) throw new BackupForbiddenError()
          const body = parseFields(backupBody, await readOptionalJson())
          await using archive = await c.backup.create({ signal, includePlaintextKeystore: body.include_plaintext_keystore === true })
          const stamp = archive.manifest.created_at.replace(/[:.]/g, '-')
          res.writeHead(200, {
            'content-type': 'application/x-tar',
            'content-length': archive.size,
            'content-disposition': `attachment; filename="flexnode-backup-${stamp}.tar"`
          })
          await pipeline(archive.stream({ signal }), res, { signal })
        }
      }
    }
  }
}

export interface NodeBackupRoutesComponents {
  /** the node's data dir */
  dataDir: string
  /** the node's agent key */
  agent: Uint8Array
  /** the running conductor, which snapshots its database online */
  conductor: { backupDatabase: (destination: string) => Promise<void> }
  /** the CIDs the node pins (the artifacts service's `pins()`). @default none: `pins_included: false` */
  pins?: () => Promise<string[]>
}

/** `POST /v1/backup` of a running node (what `node.ts` mounts). */
export function nodeBackupRoutes (c: NodeBackupRoutesComponents): HttpRoutes {
  const backup = nodeBackup({})({ dataDir: c.dataDir, agent: c.agent, pins: c.pins, snapshot: async (file) => { await c.conductor.backupDatabase(file) } })
  return backupRoutes({ backup, dataDir: c.dataDir })
}
