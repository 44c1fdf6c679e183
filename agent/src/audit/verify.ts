/**
 * Verification of a node's audit chain, pure over its records and the node's key: every record's
 * hash is recomputed from its canonical encoding (an edited record fails), its signature checked
 * against the node's agent key (a re-hashed forgery fails), and the chain walked by seq and prev
 * (a dropped record leaves a gap, a record moved out of its place is out of order, a replaced one
 * breaks the next record's prev).
 *
 * ```ts
 * const v = verifyChain(records, node)           // node: the agent key, `uhCAk…`
 * if (!v.ok) for (const p of v.problems) console.log(p.seq, p.reason, p.message)
 * verifyChain(pgRows, node, { head: log.head() }) // also: nothing is missing at the end
 * ```
 */
import { createPublicKey, verify as edVerify, type KeyObject } from 'node:crypto'
import { decodeHash } from '../holo/hash.ts'
import { GENESIS_PREV } from './constants.ts'
import { canonicalJson, recordHash, recordId } from './record.ts'
import type { AuditProblem, AuditRecord, AuditVerification } from './types.ts'

const HEX64 = /^[0-9a-f]{64}$/
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/** problems listed at most (a wholesale forgery would otherwise list every record) */
const MAX_PROBLEMS = 1000

export interface VerifyOptions {
  /** the chain's known last record (the node's own outbox head): records missing after the last one given are a gap */
  head?: { seq: number, hash: string } | null
}

/** Records added one at a time (in the order they are listed), then `result()`. */
export class ChainVerifier {
  private readonly node: string
  private readonly key: KeyObject | null
  private readonly problems: AuditProblem[] = []
  private problemCount = 0
  private checked = 0
  /** the chain is verified without gaps up to here */
  private lastSeq = 0
  private lastHash = GENESIS_PREV
  private maxSeen = 0
  /** records that came before their predecessor (after a gap, or out of order) */
  private readonly stray = new Map<number, { prev: string, hash: string, id: string }>()
  /** hashes of records seen, where a duplicate's hash is compared (in-order ones only need lastHash) */
  private readonly seenHash = new Map<number, string>()

  constructor (node: string) {
    this.node = node
    let key: KeyObject | null = null
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, decodeHash(node, 'Agent').subarray(3, 35)]), format: 'der', type: 'spki' })
    } catch {
      this.problem({ seq: 0, reason: 'malformed', message: `the node key ${JSON.stringify(node)} is not an AgentPubKey` })
    }
    this.key = key
  }

  private problem (p: AuditProblem): void {
    this.problemCount++
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(p)
  }

  add (r: AuditRecord): void {
    this.checked++
    const seq = r?.seq
    if (typeof r !== 'object' || r === null || !Number.isSafeInteger(seq) || seq < 1) {
      this.problem({ seq: typeof seq === 'number' ? seq : 0, reason: 'malformed', message: 'not an audit record (no positive integer seq)' })
      return
    }
    const id = typeof r.id === 'string' ? r.id : undefined
    const at = { seq, id }
    if (r.node !== this.node) {
      this.problem({ ...at, reason: 'node', message: `belongs to node ${String(r.node)}, not ${this.node}` })
      return
    }
    if (id !== recordId(this.node, seq)) this.problem({ ...at, reason: 'malformed', message: `its id ${JSON.stringify(r.id)} is not ${recordId(this.node, seq)}` })
    let computed: string
    try {
      if (!HEX64.test(r.hash) || !HEX64.test(r.prev) || !Number.isSafeInteger(r.at) || typeof r.kind !== 'string') throw new Error('a field has the wrong shape')
      computed = recordHash({ node: r.node, seq, at: r.at, kind: r.kind, actor: r.actor ?? null, subject: r.subject ?? null, detail: canonicalJson(r.detail, 'detail'), trace_id: r.trace_id ?? null, prev: r.prev })
    } catch (err) {
      this.problem({ ...at, reason: 'malformed', message: `cannot be encoded: ${err instanceof Error ? err.message : String(err)}` })
      return
    }
    if (computed !== r.hash) {
      this.problem({ ...at, reason: 'hash', message: `was edited: its content hashes to ${computed.slice(0, 16)}…, not its recorded hash ${r.hash.slice(0, 16)}…` })
    } else if (!this.signatureHolds(r.hash, r.signature)) {
      this.problem({ ...at, reason: 'signature', message: 'its signature is not the node\'s over its hash (forged, or re-hashed after an edit)' })
    }
    this.link(seq, r.prev, r.hash, id ?? recordId(this.node, seq))
  }

  private signatureHolds (hash: string, signature: unknown): boolean {
    if (this.key === null || typeof signature !== 'string') return false
    const sig = Buffer.from(signature, 'base64')
    if (sig.length !== 64) return false
    try {
      return edVerify(null, Buffer.from(hash, 'hex'), this.key, sig)
    } catch {
      return false
    }
  }

  private link (seq: number, prev: string, hash: string, id: string): void {
    const before = this.seenHash.get(seq)
    if (before !== undefined || seq <= this.lastSeq || this.stray.has(seq)) {
      this.problem({ seq, id, reason: 'duplicate', message: before !== undefined && before !== hash ? 'a second, different record with this seq (a fork)' : 'listed twice' })
      return
    }
    if (seq < this.maxSeen) this.problem({ seq, id, reason: 'order', message: `out of order: listed after seq ${this.maxSeen}` })
    this.maxSeen = Math.max(this.maxSeen, seq)
    if (seq !== this.lastSeq + 1) {
      this.stray.set(seq, { prev, hash, id })
      return
    }
    this.advance(seq, prev, hash, id)
    for (let next = this.stray.get(this.lastSeq + 1); next !== undefined; next = this.stray.get(this.lastSeq + 1)) {
      this.stray.delete(this.lastSeq + 1)
      this.advance(this.lastSeq + 1, next.prev, next.hash, next.id)
    }
  }

  private advance (seq: number, prev: string, hash: string, id: string): void {
    if (prev !== this.lastHash) {
      this.problem({ seq, id, reason: 'prev', message: seq === 1 ? 'the first record\'s prev is not all zeros' : `its prev is not the hash of record ${seq - 1} (a record before it was replaced or removed)` })
    }
    this.lastSeq = seq
    this.lastHash = hash
    // seqs up to lastSeq are answered by `seq <= lastSeq`; only their hash for fork reports is kept
    if (this.seenHash.size < 100_000) this.seenHash.set(seq, hash)
  }

  result (options: VerifyOptions = {}): AuditVerification {
    // whatever is still stray sits after a gap
    const strays = [...this.stray.entries()].sort((a, b) => a[0] - b[0])
    let expected = this.lastSeq + 1
    let prevHash: string | null = null
    for (const [seq, s] of strays) {
      if (seq !== expected) {
        this.problem({ seq: expected, reason: 'gap', message: seq - expected === 1 ? `record ${expected} is missing` : `records ${expected}–${seq - 1} are missing` })
        prevHash = null
      }
      if (prevHash !== null && s.prev !== prevHash) this.problem({ seq, id: s.id, reason: 'prev', message: `its prev is not the hash of record ${seq - 1}` })
      prevHash = s.hash
      expected = seq + 1
    }
    const head = options.head
    if (head != null) {
      if (head.seq > this.maxSeen) {
        this.problem({ seq: this.maxSeen + 1, reason: 'gap', message: head.seq === this.maxSeen + 1 ? `record ${head.seq} (the node's last) is missing` : `records ${this.maxSeen + 1}–${head.seq} (up to the node's last) are missing` })
      } else if (head.seq === this.lastSeq && head.hash !== this.lastHash) {
        this.problem({ seq: head.seq, reason: 'hash', message: 'differs from the node\'s own record with this seq' })
      }
    }
    this.problems.sort((a, b) => a.seq - b.seq)
    return { ok: this.problemCount === 0, checked: this.checked, last_seq: this.maxSeen, problems: this.problems }
  }
}

/** Verify a node's records (as listed: a listing out of seq order is itself a problem). */
export function verifyChain (records: Iterable<AuditRecord>, node: string, options: VerifyOptions = {}): AuditVerification {
  const v = new ChainVerifier(node)
  for (const r of records) v.add(r)
  return v.result(options)
}
