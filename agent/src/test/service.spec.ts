import { describe, expect, it } from 'vitest'
import { silentLogger } from '../logger.ts'
import { components, service, startServices, type Service, type ServiceEntry } from '../service.ts'

interface Parts { events: string[], store?: { value: number } & Service, reader?: { read: () => number } & Service }

/** a service that records its start and stop in `events` */
function recorder (name: string, events: string[], opts: { failStart?: boolean, failStop?: boolean, startGate?: Promise<void> } = {}): Service {
  return service({
    start: async () => {
      events.push(`start ${name}`)
      await opts.startGate
      if (opts.failStart === true) throw new Error(`${name} cannot start`)
      events.push(`started ${name}`)
    },
    stop: () => {
      events.push(`stop ${name}`)
      if (opts.failStop === true) throw new Error(`${name} cannot stop`)
    }
  })
}

const log = silentLogger().forComponent('test')

describe('startServices', () => {
  it('starts in order with the components provided before, and stops in reverse, once', async () => {
    const c = components<Parts>({ events: [] })
    const entries: Array<ServiceEntry<Parts>> = [
      { name: 'store', provides: 'store', create: (p) => Object.assign(recorder('store', p.events), { value: 41 }) },
      { name: 'reader', provides: 'reader', create: (p) => Object.assign(recorder('reader', p.events), { read: () => p.store!.value + 1 }) },
      { name: 'tail', create: (p) => recorder('tail', p.events) }
    ]
    const running = await startServices(entries, c, { log })
    expect(running.names).toEqual(['store', 'reader', 'tail'])
    expect(c.reader!.read()).toBe(42)
    await running.stop()
    await running.stop()
    expect(c.events).toEqual(['start store', 'started store', 'start reader', 'started reader', 'start tail', 'started tail', 'stop tail', 'stop reader', 'stop store'])
  })

  it('reading a component nobody provided yet is a typed error, not undefined', async () => {
    const c = components<Parts>({ events: [] })
    const entries: Array<ServiceEntry<Parts>> = [
      { name: 'reader', provides: 'reader', create: (p) => Object.assign(recorder('reader', p.events), { read: () => p.store!.value }) }
    ]
    await expect(startServices(entries, c, { log })).resolves.toBeDefined()
    expect(() => c.reader!.read()).toThrow(expect.objectContaining({ name: 'MissingComponentError', component: 'store' }))
  })

  it('a failing start stops what started (the failed one too), in reverse, and rethrows', async () => {
    const c = components<Parts>({ events: [] })
    const entries: Array<ServiceEntry<Parts>> = [
      { name: 'a', create: (p) => recorder('a', p.events, { failStop: true }) },
      { name: 'b', create: (p) => recorder('b', p.events, { failStart: true }) },
      { name: 'c', create: (p) => recorder('c', p.events) }
    ]
    await expect(startServices(entries, c, { log })).rejects.toThrow('b cannot start')
    // a's failing stop is logged, not thrown over b's error
    expect(c.events).toEqual(['start a', 'started a', 'start b', 'stop b', 'stop a'])
  })

  it('an abort during a stuck start rejects at once, stops the rest, and stops the stuck one when it finishes', async () => {
    const c = components<Parts>({ events: [] })
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const controller = new AbortController()
    const entries: Array<ServiceEntry<Parts>> = [
      { name: 'a', create: (p) => recorder('a', p.events) },
      { name: 'stuck', create: (p) => recorder('stuck', p.events, { startGate: gate }) },
      { name: 'never', create: (p) => recorder('never', p.events) }
    ]
    const starting = startServices(entries, c, { log, signal: controller.signal })
    await new Promise<void>((resolve) => { const poll = (): void => { if (c.events.includes('start stuck')) resolve(); else setImmediate(poll) }; poll() })
    controller.abort()
    await expect(starting).rejects.toMatchObject({ name: 'AbortError' })
    expect(c.events).toEqual(['start a', 'started a', 'start stuck', 'stop a'])
    release()
    await new Promise<void>((resolve) => { const poll = (): void => { if (c.events.includes('stop stuck')) resolve(); else setImmediate(poll) }; poll() })
    expect(c.events).toEqual(['start a', 'started a', 'start stuck', 'stop a', 'started stuck', 'stop stuck'])
  })

  it('an already-aborted signal starts nothing', async () => {
    const c = components<Parts>({ events: [] })
    await expect(startServices<Parts>([{ name: 'a', create: (p: Parts) => recorder('a', p.events) }], c, { log, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' })
    expect(c.events).toEqual([])
  })
})

describe('service()', () => {
  it('does not stop what never started, and refuses to start once stopped', async () => {
    const events: string[] = []
    const s = recorder('x', events)
    await s.stop()
    await expect(s.start()).rejects.toMatchObject({ name: 'DisposedError' })
    expect(events).toEqual([])
  })
})
