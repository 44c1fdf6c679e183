/**
 * The simulation's clock: a binary heap of events ordered by time, then by the order they were
 * scheduled, so equal times run in a deterministic order.
 */
export class EventQueue<E> {
  private readonly times: number[] = []
  private readonly seqs: number[] = []
  private readonly items: E[] = []
  private seq = 0
  now = 0

  get size (): number { return this.items.length }

  /** schedule `item` at absolute time `at` (ms) */
  at (at: number, item: E): void {
    this.times.push(at)
    this.seqs.push(this.seq++)
    this.items.push(item)
    this.up(this.items.length - 1)
  }

  /** schedule `item` `delay` ms from now */
  after (delay: number, item: E): void {
    this.at(this.now + delay, item)
  }

  /** the next event, advancing `now`, or undefined when empty or past `until` */
  pop (until = Number.POSITIVE_INFINITY): E | undefined {
    if (this.items.length === 0 || this.times[0]! > until) return undefined
    const item = this.items[0]!
    this.now = this.times[0]!
    const last = this.items.length - 1
    this.swap(0, last)
    this.times.pop()
    this.seqs.pop()
    this.items.pop()
    if (this.items.length > 0) this.down(0)
    return item
  }

  private less (i: number, j: number): boolean {
    return this.times[i]! < this.times[j]! || (this.times[i] === this.times[j] && this.seqs[i]! < this.seqs[j]!)
  }

  private swap (i: number, j: number): void {
    const t = this.times[i]!
    this.times[i] = this.times[j]!
    this.times[j] = t
    const s = this.seqs[i]!
    this.seqs[i] = this.seqs[j]!
    this.seqs[j] = s
    const e = this.items[i]!
    this.items[i] = this.items[j]!
    this.items[j] = e
  }

  private up (i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(i, p)) return
      this.swap(i, p)
      i = p
    }
  }

  private down (i: number): void {
    const n = this.items.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < n && this.less(l, m)) m = l
      if (r < n && this.less(r, m)) m = r
      if (m === i) return
      this.swap(i, m)
      i = m
    }
  }
}
