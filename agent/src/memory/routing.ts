/**
 * Where each shard of a collection lives, computed the same way on every node from the same DHT
 * entries: the ring epochs (`RingEpoch`, one per membership change) and the collection's
 * `ShardAssignment`s (a host's word that its copy of a shard is complete).
 *
 * For each epoch `e` the ring places shard `s` on `hosts_e(s)`. The hosts of the collection's
 * first epoch serve at once (the collection starts empty); a later host serves once it has copied
 * the shard and said so (an assignment for that epoch), or when it was serving in the epoch
 * before. Until every host of the newest epoch serves, the serving hosts of the epoch before keep
 * serving too: data is copied first and switched over after, so searches and writes never lose a
 * shard during a move. Writes go to everything serving and to the new hosts still copying.
 */
import { placeShards, type RingMember } from '../../../scheduler/index.ts'

export interface EpochView {
  epoch: number
  /** members as agent key strings (uhCAk…) with their weights */
  members: RingMember[]
}

export interface AssignmentView {
  shard: number
  epoch: number
  /** uhCAk… */
  host: string
  state: 'serving' | 'retired'
}

export interface RoutedCollection {
  /** the collection's uid (`name.created_at`) */
  uid: string
  shard_count: number
  replication_factor: number
  created_epoch: number
}

export interface ShardRoute {
  shard: number
  /** where the newest epoch places the shard, in ring order */
  hosts: string[]
  /** the replicas searched: complete copies */
  serving: string[]
  /** the new hosts still copying the shard: they take writes, not searches */
  copying: string[]
  /** serving hosts the newest epoch no longer places here: they leave once every new host serves */
  retiring: string[]
  /** every replica a write must reach: serving and copying */
  writeTo: string[]
}

/** The routes of a collection's shards; `epochs` ascending, one per number (`null` if none yet). */
export function routeCollection (collection: RoutedCollection, epochs: EpochView[], assignments: AssignmentView[]): ShardRoute[] {
  const relevant = epochs.filter(e => e.epoch >= collection.created_epoch)
  // a collection made in an epoch this node has not seen yet: place it on the newest one known
  if (relevant.length === 0 && epochs.length > 0) relevant.push(epochs[epochs.length - 1]!)
  const placements = relevant.map(e => placeShards({ collection: collection.uid, shard_count: collection.shard_count, replication_factor: collection.replication_factor, members: e.members }))
  const said = new Set(assignments.filter(a => a.state === 'serving').map(a => `${a.shard}/${a.epoch}/${a.host}`))
  const routes: ShardRoute[] = []
  for (let s = 0; s < collection.shard_count; s++) {
    if (relevant.length === 0) {
      routes.push({ shard: s, hosts: [], serving: [], copying: [], retiring: [], writeTo: [] })
      continue
    }
    // serving_e: hosts of epoch e with a complete copy; routed_e: what searches use in epoch e
    let serving = new Set<string>(placements[0]![s]!)
    let routed = new Set<string>(serving)
    for (let i = 1; i < relevant.length; i++) {
      const hosts = placements[i]![s]!
      const e = relevant[i]!.epoch
      const next = new Set(hosts.filter(h => serving.has(h) || said.has(`${s}/${e}/${h}`)))
      routed = next.size >= hosts.length ? new Set(next) : new Set([...next, ...routed])
      serving = next
    }
    const hosts = placements[placements.length - 1]![s]!
    const servingList = [...routed]
    const copying = hosts.filter(h => !routed.has(h))
    routes.push({
      shard: s,
      hosts,
      serving: servingList,
      copying,
      retiring: servingList.filter(h => !hosts.includes(h)),
      writeTo: [...servingList, ...copying]
    })
  }
  return routes
}
