/**
 * Baselines measured in the same run as everything else, so ratios compare like with like:
 *
 * - raw better-sqlite3 inserts into a chain-row-shaped table on a temp file with the conductor's
 *   pragmas (WAL, synchronous=NORMAL): one INSERT per transaction (what one zome call costs at
 *   least: one transaction) and 1000 per transaction for context;
 * - raw ed25519 sign + verify with node:crypto over the SHA-512 of a ~300-byte message (the
 *   signing cost floor of a signed zome call: the client signs, the conductor verifies).
 */
import { createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { tempDir } from '../fixtures/index.ts'
import { measureSync, type BenchResult, type Report } from './util.ts'

export const SQLITE_TX1 = 'baseline.sqlite.insert.tx1'
export const ED25519 = 'baseline.ed25519.sign_verify'

const BLOB_BYTES = 300
const BATCH = 1000

export async function run (report: Report): Promise<void> {
  await using dir = await tempDir('flexnode-bench-sqlite-')
  const db = new Database(join(dir.path, 'bench.sqlite'))
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec('CREATE TABLE chain (hash BLOB PRIMARY KEY, seq INTEGER NOT NULL, blob BLOB NOT NULL)')
    const insert = db.prepare('INSERT INTO chain (hash, seq, blob) VALUES (?, ?, ?)')
    const blob = randomBytes(BLOB_BYTES)
    let seq = 0
    // hashes are random (like action hashes), so inserts land all over the primary-key B-tree
    const row = (): void => { insert.run(randomBytes(32), seq++, blob) }
    const one = db.transaction(row)
    const batch = db.transaction(() => { for (let i = 0; i < BATCH; i++) row() })

    report.add(measureSync({ id: SQLITE_TX1, name: 'sqlite INSERT, 1 per tx', group: 'baseline', warmup: 500, budgetMs: 2000, fn: () => { one() } }))
    report.add(measureSync({
      id: 'baseline.sqlite.insert.tx1000',
      name: `sqlite INSERT, ${BATCH} per tx (rows/s)`,
      group: 'baseline',
      warmup: 3,
      budgetMs: 1500,
      unitsPerOp: BATCH,
      fn: () => { batch() },
      note: `p50/p95 are per ${BATCH}-row transaction`
    }))
    report.log(`  sqlite table holds ${fmtRows(db.prepare('SELECT count(*) AS n FROM chain').get() as { n: number })} rows`)
  } finally {
    db.close()
  }

  report.add(measureSignVerify({ id: ED25519, name: 'ed25519 sha512+sign+verify', group: 'baseline' }))
}

/**
 * Raw ed25519 over the SHA-512 of a ~300-byte message, signed and verified with node:crypto: the
 * signing floor of a signed zome call (the client signs, the conductor verifies). Exported so other
 * benches can measure it again right beside their own figures.
 */
export function measureSignVerify (opts: { id: string, name: string, group: string, budgetMs?: number }): BenchResult {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const message = randomBytes(BLOB_BYTES)
  return measureSync({
    ...opts,
    warmup: 200,
    budgetMs: opts.budgetMs ?? 1500,
    fn: (i) => {
      message.writeUInt32LE(i, 0)
      const digest = createHash('sha512').update(message).digest()
      const sig = sign(null, digest, privateKey)
      if (!verify(null, digest, publicKey, sig)) throw new Error('ed25519 signature did not verify')
    }
  })
}

function fmtRows (r: { n: number }): string {
  return r.n.toLocaleString('en-US')
}
