/**
 * What the CLI's commands share: finding the node running on a data dir (its `node.json`) and
 * rendering tables. Kept free of heavy imports so every command starts fast.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RUNTIME_FILE } from '../constants.ts'
import { FlexnodeError, errorMessage } from '../errors.ts'
import type { ReadyInfo } from '../node.ts'
import { pidAlive } from '../process.ts'

/** No node runs on the data dir: no node.json, a dead pid, or nothing listening on its admin port. */
export class NodeNotRunningError extends FlexnodeError {
  static override readonly name = 'NodeNotRunningError'
  readonly dataDir: string

  constructor (dataDir: string, detail?: string) {
    super(`no flexnode is running on ${dataDir}${detail === undefined ? '' : ` (${detail})`}`)
    this.dataDir = dataDir
  }
}

/** What a running node wrote to `<data-dir>/node.json`. */
export interface RuntimeInfo extends ReadyInfo {
  pid: number
  started_at?: string
}


const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) <= 65535

/** Read and check `node.json`; throws NodeNotRunningError when no live node wrote it. */
export async function readRuntimeInfo (dataDir: string): Promise<RuntimeInfo> {
  const path = join(dataDir, RUNTIME_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new NodeNotRunningError(dataDir)
    throw new FlexnodeError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new FlexnodeError(`${path} is not valid JSON: ${errorMessage(err)}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new FlexnodeError(`${path} is not valid JSON: not an object`)
  const v = parsed as Record<string, unknown>
  // a file left by a dead process means no node, whatever else it holds
  if (Number.isInteger(v.pid) && (v.pid as number) > 0 && !pidAlive(v.pid as number)) throw new NodeNotRunningError(dataDir, `${RUNTIME_FILE} names pid ${String(v.pid)}, which is not running`)
  if (!Number.isInteger(v.pid) || (v.pid as number) <= 0 || !isPort(v.admin_port) || !isPort(v.app_port) ||
    typeof v.installed_app_id !== 'string' || typeof v.agent_pub_key !== 'string' || typeof v.peer_id !== 'string' ||
    typeof v.network !== 'string' || !Array.isArray(v.multiaddrs) || !v.multiaddrs.every(a => typeof a === 'string')) {
    throw new FlexnodeError(`${path} is malformed: expected pid, admin_port, app_port, installed_app_id, agent_pub_key, peer_id, network and multiaddrs`)
  }
  const info = v as unknown as RuntimeInfo
  return { ...info, data_dir: typeof v.data_dir === 'string' ? v.data_dir : dataDir }
}

export function shortId (id: string, head = 12, tail = 6): string {
  return id.length <= head + tail + 1 ? id : `${id.slice(0, head)}…${id.slice(-tail)}`
}

export function renderTable (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max([...h].length, ...rows.map(r => [...(r[i] ?? '')].length)))
  const line = (cells: string[]): string => cells.map((c, i) => c + ' '.repeat(Math.max(0, widths[i]! - [...c].length))).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n') + '\n'
}
