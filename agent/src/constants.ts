/** Agent-wide defaults. */
import { homedir } from 'node:os'
import { join } from 'node:path'

export const DEFAULT_DATA_DIR = join(homedir(), '.flexnode')
export const DEFAULT_NETWORK = 'local'
export const NETWORKS = ['mainnet', 'testnet', 'local'] as const
export type NetworkName = typeof NETWORKS[number]
export const INSTALLED_APP_ID = 'flexstack'
/** Longest retention `--prune-after-days` (and a network profile's `prune-<days>d`) may ask for. */
export const MAX_PRUNE_AFTER_DAYS = 36_500
/** Seconds between heartbeats (presence refreshes; a record lives 2.5 intervals). */
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 10
/** Seconds after which an unchanged NodeCapability is advertised again (a changed one goes out at once). */
export const DEFAULT_ADVERTISE_INTERVAL_SECONDS = 86_400
export const DEFAULT_HOST = '127.0.0.1'
export const READY_PREFIX = 'FLEXNODE_READY'
/** The runtime file a started node writes into its data dir, for the CLI's other commands. */
export const RUNTIME_FILE = 'node.json'
export const LOCK_FILE = 'flexnode.lock'
/**
 * After SIGTERM/SIGINT during start-up, how long stopping what already started may take before
 * the process exits anyway (a step such as a native model load cannot be interrupted).
 */
export const START_ABORT_GRACE_MS = 10_000
