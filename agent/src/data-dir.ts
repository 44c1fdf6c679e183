/**
 * The node's data dir as a service: created (0700) and locked on start, checked for a keystore
 * whose database is gone, and released on stop together with the runtime file other flexnode
 * commands read (`flexnode status`, `peers`, `infer`).
 *
 * ```ts
 * const dir = dataDirService({ dataDir: '/var/lib/flexnode' })({ logger })
 * await dir.start()
 * await dir.writeRuntime(info)
 * await dir.stop()
 * ```
 */
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { DB_FILE } from './conductor/constants.ts'
import { LOCK_FILE, RUNTIME_FILE } from './constants.ts'
import { FlexnodeError } from './errors.ts'
import { KEYSTORE_FILE } from './identity/keystore.ts'
import type { ComponentLogger } from './logger.ts'
import { pidAlive } from './process.ts'
import { service, type Service } from './service.ts'

export class DataDirInUseError extends FlexnodeError {
  static override readonly name = 'DataDirInUseError'
  readonly dataDir: string
  readonly pid: number

  constructor (dataDir: string, pid: number) {
    super(`data dir ${dataDir} is in use by a running flexnode (pid ${pid})`)
    this.dataDir = dataDir
    this.pid = pid
  }
}

/**
 * The data dir has a keystore but no database (missing or empty): the agent's source chain is
 * not here. Running genesis again would make a second chain under the same key, a fork.
 */
export class DatabaseMissingError extends FlexnodeError {
  static override readonly name = 'DatabaseMissingError'
  readonly dataDir: string
  readonly path: string
  readonly state: 'missing' | 'empty'

  constructor (dataDir: string, path: string, state: 'missing' | 'empty') {
    super(`the data dir ${dataDir} has a keystore but its database ${path} is ${state}: this agent's source chain is not here. ` +
      'Restore the database from a backup, or start with --new-chain to begin a new source chain under a new agent key ' +
      '(a second chain under the old key would be a fork, which the mesh warrants)')
    this.dataDir = dataDir
    this.path = path
    this.state = state
  }
}

async function sizeOf (path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * Refuse a keystore without its database, or with `newChain`, set the old keystore (and any
 * leftover WAL) aside so a new agent key and a new chain start. Nothing is deleted that holds data.
 */
async function guardLostDatabase (dataDir: string, newChain: boolean, log: ComponentLogger): Promise<void> {
  const keystore = join(dataDir, KEYSTORE_FILE)
  const db = join(dataDir, DB_FILE)
  if (await sizeOf(keystore) === undefined) return
  const size = await sizeOf(db)
  if (size !== undefined && size > 0) return
  if (!newChain) throw new DatabaseMissingError(dataDir, db, size === undefined ? 'missing' : 'empty')
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const kept = join(dataDir, `keystore.${stamp}.json.bak`)
  await rename(keystore, kept)
  if ((await sizeOf(`${db}-wal`) ?? 0) > 0) await rename(`${db}-wal`, `${db}-wal.${stamp}.bak`)
  await rm(`${db}-wal`, { force: true })
  await rm(`${db}-shm`, { force: true })
  await rm(db, { force: true })
  log.warn({ kept }, '--new-chain: the database was missing; starting a new source chain under a new agent key (the old keystore is kept)')
}

/** Take the data dir's lock file, replacing a stale one left by a dead process. */
async function lockDataDir (dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, LOCK_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      return async () => { await rm(path, { force: true }) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) throw new DataDirInUseError(dataDir, pid)
      await rm(path, { force: true })
    }
  }
  throw new DataDirInUseError(dataDir, -1)
}

export interface DataDirInit {
  /** the node's directory: keystore, database, models, runtime file */
  dataDir: string
  /**
   * When the data dir has a keystore but its database is missing or empty, start a new source
   * chain under a new agent key (the old keystore is kept as `keystore.<time>.json.bak`).
   * Without it such a start is refused (`DatabaseMissingError`).
   * @default false
   */
  newChain?: boolean
}

export interface DataDirComponents {
  logger: ComponentLogger
}

export interface DataDir extends Service {
  /** the absolute path */
  readonly path: string
  /** writes the runtime file (atomically, 0600) that the CLI's other commands read */
  writeRuntime: (info: object) => Promise<void>
}

export function dataDirService (init: DataDirInit) {
  return (components: DataDirComponents): DataDir => {
    const log = components.logger.forComponent('flexnode:data-dir')
    const path = resolve(init.dataDir)
    const runtime = join(path, RUNTIME_FILE)
    let unlock: (() => Promise<void>) | undefined
    const svc = service({
      start: async () => {
        await mkdir(path, { recursive: true, mode: 0o700 })
        unlock = await lockDataDir(path)
        await guardLostDatabase(path, init.newChain === true, log)
      },
      stop: async () => {
        // not locked (another node holds the dir): its runtime file is not ours to remove
        if (unlock === undefined) return
        await rm(runtime, { force: true })
        await unlock()
      }
    })
    return {
      ...svc,
      path,
      writeRuntime: async (info) => {
        await writeFile(`${runtime}.tmp`, JSON.stringify({ ...info, pid: process.pid, started_at: new Date().toISOString() }, null, 2), { mode: 0o600 })
        await rename(`${runtime}.tmp`, runtime)
      }
    }
  }
}
