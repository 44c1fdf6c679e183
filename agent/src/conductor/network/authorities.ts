/**
 * Who is an authority for what: this node's storage arc, the arcs its peers claim, and which of
 * those claims it trusts. A claim arrives with every sync exchange (each side sends its arc); it
 * counts toward coverage only once a sync showed the peer holding what this node holds in the
 * sectors they share (the peer is "confirmed"), so a peer claiming an arc it does not hold cannot
 * make this node shrink its own. Unknown peers are taken to hold everything when choosing whom to
 * ask (asking costs one hedge delay at worst) and nothing when sizing arcs.
 *
 * The arc is resized (`arc.ts` `nextArc`, with its hysteresis band) at most once per
 * `resizeIntervalMs`, so the moves of others are seen first. A mesh of fewer live confirmed nodes
 * than the band's top keeps full arcs, which is the behaviour of a small mesh.
 *
 * ```ts
 * const keeper = new ArcKeeper({ targetRedundancy: 5 }, { self: { peer, location }, connected: () => mesh.peers(), locationOf })
 * keeper.claim(peer, theirArcSet)
 * keeper.authorities(dhtLocation(basis))   // connected peers whose arc holds it, nearest first
 * ```
 */
import type { ComponentLogger } from '../../logger.ts'
import {
  and, arcContains, arcFromSectors, arcSectors, authoritiesFor, countSectors, coverage, FULL_ARC, hasSector, nextArc, SECTOR_COUNT, sectorHolders, sectorRanges, sectorSet,
  type Arc, type ArcPeer, type SectorSet
} from './arc.ts'

export interface ArcKeeperInit {
  /** authorities wanted per DHT location. @default 5 */
  targetRedundancy?: number
  /** ms between two resizes of this node's arc. @default 30000 */
  resizeIntervalMs?: number
}

export interface ArcKeeperComponents {
  self: { peer: string, location: number }
  /** the peers connected now */
  connected: () => string[]
  /** a peer's DHT location (its agent key's) */
  locationOf: (peer: string) => number
  logger: ComponentLogger
}

interface Claim { arc: Arc, confirmed: boolean }

export interface PeerArcStatus { peer: string, location: number, arc: Arc, confirmed: boolean }

export interface ArcStatus {
  /** this node's declared storage arc */
  arc: Arc
  /** its length in sectors, of 512 */
  sectors: number
  /** the fewest authorities seen (this node and confirmed peers) for any sector of this arc */
  authoritiesSeen: number
  /** coverage as arc sizing counts it (confirmed peers located inside this arc) */
  coverage: number
  targetRedundancy: number
  peers: PeerArcStatus[]
}

/** The arc a set of sectors describes, when it is one run around the ring; null otherwise (or when empty). */
export function arcOfSet (set: SectorSet): Arc {
  const runs = sectorRanges(set)
  if (runs.length === 0) return null
  if (runs.length === 1) return arcFromSectors(runs[0]![0], runs[0]![1])
  // one run across sector 0 comes back as two: [0, a] and [b, 512 - b]
  const [first, last] = [runs[0]!, runs[runs.length - 1]!]
  if (runs.length === 2 && first[0] === 0 && last[0] + last[1] === SECTOR_COUNT) return arcFromSectors(last[0], last[1] + first[1])
  return null
}

export class ArcKeeper {
  readonly targetRedundancy: number
  private readonly resizeIntervalMs: number
  private readonly c: ArcKeeperComponents
  private readonly log: ComponentLogger
  private readonly claims = new Map<string, Claim>()
  private current: Arc = FULL_ARC
  private currentSet: SectorSet = sectorSet(FULL_ARC)
  private lastResize = Number.NEGATIVE_INFINITY

  constructor (init: ArcKeeperInit, components: ArcKeeperComponents) {
    this.targetRedundancy = init.targetRedundancy ?? 5
    if (!Number.isInteger(this.targetRedundancy) || this.targetRedundancy < 1) throw new RangeError(`targetRedundancy must be a positive integer, got ${this.targetRedundancy}`)
    this.resizeIntervalMs = init.resizeIntervalMs ?? 30_000
    this.c = components
    this.log = components.logger.forComponent('flexnode:dht-arc')
  }

  get arc (): Arc { return this.current }
  get sectors (): SectorSet { return this.currentSet }

  /** Whether this node is an authority for a location. */
  holds (location: number): boolean {
    return arcContains(this.current, location)
  }

  /** A peer's claimed arc, as its sync exchange declared it. A changed claim must be confirmed again, unless it only shrank. */
  claim (peer: string, set: SectorSet): void {
    if (peer === this.c.self.peer) return
    const arc = arcOfSet(set)
    const before = this.claims.get(peer)
    const shrankOrSame = before !== undefined && isSubset(sectorSet(arc), sectorSet(before.arc))
    this.claims.set(peer, { arc, confirmed: shrankOrSame && before.confirmed })
    if (this.claims.size > 100_000) this.claims.delete(this.claims.keys().next().value!)
  }

  /**
   * A sync found the peer holding what this node holds in the sectors they share, comparing over
   * the arc `set` it claimed then. A claim made since (another arc) stays unconfirmed: the sync
   * says nothing about it.
   */
  confirm (peer: string, set: SectorSet): void {
    const claim = this.claims.get(peer)
    if (claim !== undefined && sameArc(claim.arc, arcOfSet(set))) claim.confirmed = true
  }

  /** Connected peers with the arcs they claim (unknown: full, unconfirmed). */
  peers (): PeerArcStatus[] {
    return this.c.connected().map(peer => {
      const claim = this.claims.get(peer)
      return { peer, location: this.c.locationOf(peer), arc: claim?.arc ?? FULL_ARC, confirmed: claim?.confirmed ?? false }
    })
  }

  private confirmedPeers (): ArcPeer[] {
    return this.peers().filter(p => p.confirmed).map(p => ({ location: p.location, arc: p.arc }))
  }

  /**
   * Connected peers that hold a location, nearest first, then (when `fallback`) the other
   * connected peers: whom to ask on a local miss, or to publish to. `claimedOnly` leaves out the
   * peers whose arc is not known yet (taken as full otherwise).
   */
  authorities (location: number, options: { fallback?: boolean, max?: number, claimedOnly?: boolean } = {}): string[] {
    const peers = this.peers().filter(p => options.claimedOnly !== true || this.claims.has(p.peer)).map(p => ({ ...p, id: p.peer }))
    const holders = authoritiesFor(location, peers).map(p => p.id)
    const out = options.fallback === true ? [...holders, ...peers.map(p => p.id).filter(id => !holders.includes(id))] : holders
    return out.slice(0, options.max ?? out.length)
  }

  /** True while every arc this node knows of is full: publishing to all is publishing to the authorities. */
  allFull (): boolean {
    return arcSectors(this.current) >= SECTOR_COUNT && this.peers().every(p => arcSectors(p.arc) >= SECTOR_COUNT)
  }

  /** Resize this node's arc from the confirmed peers, at most once per interval. Returns whether it changed. */
  resize (now = performance.now()): boolean {
    if (now - this.lastResize < this.resizeIntervalMs) return false
    this.lastResize = now
    const next = nextArc({ location: this.c.self.location, arc: this.current }, this.confirmedPeers(), { targetRedundancy: this.targetRedundancy })
    if (sameArc(next, this.current)) return false
    this.log.info({ from: arcSectors(this.current), to: arcSectors(next) }, 'storage arc resized (sectors of 512)')
    this.current = next
    this.currentSet = sectorSet(next)
    return true
  }

  private authoritiesSeen (peers: PeerArcStatus[]): number {
    const holders = sectorHolders([this.current, ...peers.filter(p => p.confirmed).map(p => p.arc)])
    let fewest = Number.POSITIVE_INFINITY
    for (let s = 0; s < SECTOR_COUNT; s++) if (hasSector(this.currentSet, s)) fewest = Math.min(fewest, holders[s]!)
    return Number.isFinite(fewest) ? fewest : 0
  }

  status (): ArcStatus {
    const peers = this.peers()
    const self = this.c.self.location
    return {
      arc: this.current,
      sectors: arcSectors(this.current),
      authoritiesSeen: this.authoritiesSeen(peers),
      coverage: coverage({ location: self, arc: this.current }, this.confirmedPeers()),
      targetRedundancy: this.targetRedundancy,
      peers
    }
  }
}

function sameArc (a: Arc, b: Arc): boolean {
  return a === b || (a !== null && b !== null && a[0] === b[0] && a[1] === b[1])
}

function isSubset (a: SectorSet, b: SectorSet): boolean {
  return countSectors(and(a, b)) === countSectors(a)
}
