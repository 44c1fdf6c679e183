/**
 * The conductor database's schema, as numbered migrations. Each migration moves the schema one
 * version up; `ConductorStore` runs the pending ones at open, all in one transaction, and records
 * the version in `PRAGMA user_version` (and in `meta.schema_version`, where schema 1 kept it) and
 * each applied step in `schema_migration`. A migration is never edited once released: a change
 * to the schema is a new entry at the end of the list.
 *
 * ```ts
 * export const MIGRATIONS = [..., { version: 3, description: 'audit outbox', up: (db) => { db.exec('CREATE TABLE ...') } }]
 * ```
 */
import type { Database } from 'better-sqlite3'

export interface Migration {
  /** the version this migration brings the schema to: 1, 2, 3… in order, no gaps */
  version: number
  description: string
  /** runs inside the upgrade's transaction; a throw rolls the whole upgrade back */
  up: (db: Database) => void
}

/** Schema 1: the tables of the release before migrations existed (kept exactly as it shipped). */
const V1_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS zome_code (hash BLOB PRIMARY KEY, code BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dna_def (hash BLOB PRIMARY KEY, def BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS app (
  id TEXT PRIMARY KEY, agent BLOB NOT NULL, def BLOB NOT NULL,
  status TEXT NOT NULL, disabled_reason BLOB, installed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS app_interface (port INTEGER PRIMARY KEY, allowed_origins TEXT NOT NULL, installed_app_id TEXT);
CREATE TABLE IF NOT EXISTS chain_action (
  dna BLOB NOT NULL, author BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
  type TEXT NOT NULL, timestamp INTEGER NOT NULL, entry_hash BLOB, entry_type TEXT,
  action BLOB NOT NULL, signature BLOB NOT NULL,
  PRIMARY KEY (dna, author, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS chain_action_hash ON chain_action (hash);
CREATE TABLE IF NOT EXISTS entry (dna BLOB NOT NULL, hash BLOB NOT NULL, blob BLOB NOT NULL, private INTEGER NOT NULL, PRIMARY KEY (dna, hash));
CREATE TABLE IF NOT EXISTS dht_op (
  dna BLOB NOT NULL, hash BLOB NOT NULL, type TEXT NOT NULL, basis BLOB NOT NULL, location INTEGER NOT NULL,
  action_hash BLOB NOT NULL, author BLOB NOT NULL, stage TEXT NOT NULL, validation_status TEXT,
  when_integrated INTEGER, authored INTEGER NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT,
  UNIQUE (dna, hash)
);
CREATE INDEX IF NOT EXISTS dht_op_stage ON dht_op (dna, stage);
CREATE TABLE IF NOT EXISTS dht_action (
  dna BLOB NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL, seq INTEGER NOT NULL, timestamp INTEGER NOT NULL,
  type TEXT NOT NULL, entry_hash BLOB, original_action BLOB, deletes_action BLOB,
  base BLOB, target BLOB, link_add BLOB, zome_index INTEGER, link_type INTEGER, tag BLOB,
  action BLOB NOT NULL, signature BLOB NOT NULL, status TEXT NOT NULL,
  PRIMARY KEY (dna, hash)
);
CREATE INDEX IF NOT EXISTS dht_action_entry ON dht_action (dna, entry_hash) WHERE entry_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS dht_action_update ON dht_action (dna, original_action, timestamp) WHERE original_action IS NOT NULL;
CREATE INDEX IF NOT EXISTS dht_action_delete ON dht_action (dna, deletes_action) WHERE deletes_action IS NOT NULL;
CREATE INDEX IF NOT EXISTS dht_action_link ON dht_action (dna, base, zome_index, link_type) WHERE type = 'CreateLink';
CREATE INDEX IF NOT EXISTS dht_action_link_del ON dht_action (dna, link_add) WHERE link_add IS NOT NULL;
CREATE INDEX IF NOT EXISTS dht_action_author ON dht_action (dna, author, seq);
CREATE TABLE IF NOT EXISTS cap_grant (
  dna BLOB NOT NULL, author BLOB NOT NULL, action_hash BLOB NOT NULL, tag TEXT NOT NULL,
  access TEXT NOT NULL, secret BLOB, assignees BLOB, functions BLOB NOT NULL,
  created_at INTEGER NOT NULL, revoked_at INTEGER,
  PRIMARY KEY (dna, action_hash)
);
CREATE INDEX IF NOT EXISTS cap_grant_secret ON cap_grant (dna, author, secret);
CREATE TABLE IF NOT EXISTS limbo (dna BLOB NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL, seq INTEGER NOT NULL, waiting_for BLOB NOT NULL, record BLOB NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (dna, hash));
CREATE INDEX IF NOT EXISTS limbo_waiting ON limbo (dna, waiting_for);
CREATE INDEX IF NOT EXISTS limbo_author ON limbo (dna, author);
CREATE TABLE IF NOT EXISTS warrant (dna BLOB NOT NULL, hash BLOB NOT NULL, warrantee BLOB NOT NULL, kind TEXT NOT NULL, blob BLOB NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (dna, hash));
CREATE INDEX IF NOT EXISTS warrant_warrantee ON warrant (warrantee);
CREATE TABLE IF NOT EXISTS receipt (dna BLOB NOT NULL, action_hash BLOB NOT NULL, validator BLOB NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (dna, action_hash, validator));
CREATE TABLE IF NOT EXISTS nonce (agent BLOB NOT NULL, nonce BLOB NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (agent, nonce));
CREATE INDEX IF NOT EXISTS nonce_expires ON nonce (expires);
`

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'source chains, DHT ops and records, apps, zome code, cap grants, limbo, warrants, receipts, nonces',
    up: (db) => { db.exec(V1_SCHEMA) }
  },
  {
    version: 2,
    description: 'schema_migration: a log of the migrations applied to this database',
    up: (db) => {
      db.exec('CREATE TABLE schema_migration (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER)')
    }
  },
  {
    version: 3,
    description: 'dht_op_location: ops by DHT location, for anti-entropy by sector',
    up: (db) => {
      db.exec('CREATE INDEX IF NOT EXISTS dht_op_location ON dht_op (dna, location)')
    }
  },
  {
    version: 4,
    description: 'retention: dht_action.in_summary (own records past the horizon leave the sync summary) and the indexes pruning uses',
    up: (db) => {
      db.exec(`
ALTER TABLE dht_action ADD COLUMN in_summary INTEGER NOT NULL DEFAULT 1;
CREATE INDEX dht_action_age ON dht_action (dna, timestamp) WHERE in_summary = 1 AND status = 'Valid';
CREATE INDEX dht_action_target ON dht_action (dna, target) WHERE target IS NOT NULL;
CREATE INDEX dht_op_action ON dht_op (dna, action_hash);
`)
    }
  },
  {
    version: 5,
    description: 'audit_outbox: the hash-chained, signed audit records (agent/src/audit/), and how far each sink has shipped them',
    up: (db) => {
      db.exec(`
CREATE TABLE audit_outbox (
  seq INTEGER PRIMARY KEY, node TEXT NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL,
  actor TEXT, subject TEXT, detail TEXT NOT NULL, trace_id TEXT,
  prev TEXT NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL
);
CREATE INDEX audit_outbox_at ON audit_outbox (at);
CREATE INDEX audit_outbox_kind ON audit_outbox (kind, seq);
CREATE TABLE audit_shipped (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL);
`)
    }
  }
]

/** The schema version this code reads and writes. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0
