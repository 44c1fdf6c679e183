/**
 * Gossip on gossipsub, behind the network gate: only peers that passed the check may hand us
 * messages, messages authored or relayed by a blocked peer are dropped, and topics are joined
 * while the node runs (subscriptions made before start join at start).
 *
 * ```ts
 * const gossip = new MeshGossip({ pubsub, gate, blocked, log })
 * const unsubscribe = gossip.subscribe('/flexstack/testnet/news', (data, from) => { … })
 * gossip.start()
 * await gossip.publish('/flexstack/testnet/news', bytes)
 * ```
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { GossipSub, GossipsubMessage, Message as GossipMessage } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { errorMessage } from '../errors.ts'
import type { ComponentLogger } from '../logger.ts'
import type { NetworkGate } from './gate.ts'
import { MeshProtocolError, type GossipJudge, type GossipVerdict, type SubscribeOptions } from './types.ts'

export type GossipHandler = (data: Uint8Array, from: string) => void

export interface MeshGossipComponents {
  pubsub: Pick<GossipSub, 'publish' | 'subscribe' | 'unsubscribe' | 'topicValidators' | 'addEventListener'>
  gate: Pick<NetworkGate, 'isVerified'>
  blocked: ReadonlySet<string>
  log: ComponentLogger
}

interface Subscriber { handler?: GossipHandler, judge?: GossipJudge }

const SEVERITY: Record<GossipVerdict, number> = { accept: 0, ignore: 1, reject: 2 }

export class MeshGossip {
  readonly #c: MeshGossipComponents
  readonly #subs = new Map<string, Set<Subscriber>>()
  #running = false

  constructor (components: MeshGossipComponents) {
    this.#c = components
    components.pubsub.addEventListener('gossipsub:message', evt => { this.#onMessage(evt.detail) })
  }

  /** Join every subscribed topic (the pubsub service runs from here on). */
  start (): void {
    this.#running = true
    for (const topic of this.#subs.keys()) this.#join(topic)
  }

  stop (): void {
    this.#running = false
  }

  async publish (topic: string, data: Uint8Array): Promise<void> {
    try {
      await this.#c.pubsub.publish(topic, data)
    } catch (err) {
      throw new MeshProtocolError(`publish to ${topic} failed: ${errorMessage(err)}`, { cause: err, protocol: topic })
    }
  }

  /** Deliver the topic's messages to `handler`, or have `options.judge` rule on each first. */
  subscribe (topic: string, handler: GossipHandler | undefined, options: SubscribeOptions = {}): () => void {
    let set = this.#subs.get(topic)
    if (set === undefined) {
      set = new Set()
      this.#subs.set(topic, set)
      if (this.#running) this.#join(topic)
    }
    const entry: Subscriber = { handler, judge: options.judge }
    const subs = set
    subs.add(entry)
    return () => {
      if (!subs.delete(entry) || subs.size > 0 || this.#subs.get(topic) !== subs) return
      this.#subs.delete(topic)
      if (this.#running) this.#leave(topic)
    }
  }

  #join (topic: string): void {
    this.#c.pubsub.topicValidators.set(topic, this.#validate)
    this.#c.pubsub.subscribe(topic)
  }

  #leave (topic: string): void {
    this.#c.pubsub.unsubscribe(topic)
    this.#c.pubsub.topicValidators.delete(topic)
  }

  #validate = (propagationSource: PeerId, msg: GossipMessage): TopicValidatorResult => {
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    const { blocked } = this.#c
    if (blocked.has(propagationSource.toString()) || blocked.has(msg.from.toString())) return TopicValidatorResult.Ignore
    // the network gate covers gossip too: only a peer that passed the check may hand us messages
    if (!this.#c.gate.isVerified(propagationSource.toString())) return TopicValidatorResult.Ignore
    let verdict: GossipVerdict = 'accept'
    for (const { judge } of [...this.#subs.get(msg.topic) ?? []]) {
      if (judge === undefined) continue
      let v: GossipVerdict
      try {
        v = judge(msg.data, msg.from.toString())
      } catch (err) {
        this.#c.log.warn({ topic: msg.topic, err: errorMessage(err) }, 'gossip judge threw')
        v = 'ignore'
      }
      if (SEVERITY[v] > SEVERITY[verdict]) verdict = v
    }
    return verdict === 'accept' ? TopicValidatorResult.Accept : verdict === 'reject' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  #onMessage ({ msg, propagationSource }: GossipsubMessage): void {
    if (msg.type !== 'signed') return
    const from = msg.from.toString()
    if (this.#c.blocked.has(from) || this.#c.blocked.has(propagationSource.toString())) return
    const subs = this.#subs.get(msg.topic)
    if (subs === undefined) return
    for (const { handler } of [...subs]) {
      if (handler === undefined) continue
      try {
        handler(msg.data, from)
      } catch (err) {
        this.#c.log.warn({ topic: msg.topic, from, err: errorMessage(err) }, 'gossip handler threw')
      }
    }
  }
}
