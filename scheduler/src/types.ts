/**
 * Types shared by the scheduler's modules (and its errors), so none of them imports another in a cycle.
 */

/** `inference.moe_query`'s `model_votes` item, plus the node and where the vote went. */
export interface ModelVote {
  model: string
  node: string
  /** sha256 hex of the normalized answer; null for a failed vote */
  response_hash: string | null
  /** the weight the vote contributed (0 for a failed vote) */
  weight: number
  latency_ms: number
  /** index into `clusters`; null for a failed vote */
  cluster: number | null
  /** why the vote failed */
  error?: string
}
