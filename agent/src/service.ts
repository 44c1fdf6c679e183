/**
 * The shape of every component of a node, and the one way they are started and stopped.
 *
 * A service is built by a factory `x(init)(components)`: `init` holds its options (all optional,
 * each with a `@default`), `components` the narrowest slice of the node it needs. The
 * composition root (`node.ts`) lists the services in order; `startServices` builds and starts
 * each with the components the ones before it provided, and stops them in reverse, also when
 * start-up fails or is aborted half-way.
 *
 * ```ts
 * const running = await startServices([
 *   { name: 'mesh', provides: 'mesh', create: (c) => mesh({ listen })(c) },
 *   { name: 'registry', create: (c) => registryService({})(c) }
 * ], components<Components>({ logger }), { signal, log })
 * await running.stop()
 * ```
 */
import { AbortError, DisposedError, FlexnodeError, errorMessage } from './errors.ts'
import type { ComponentLogger } from './logger.ts'

export interface StartOptions {
  /** aborts a start that takes long (a model load, a slow disk) */
  signal?: AbortSignal
}

/** A component of the node: started once, stopped once (`stop` is idempotent). */
export interface Service extends AsyncDisposable {
  /** what it resolves with (a bound port…) is the service's own business */
  start: (options?: StartOptions) => Promise<unknown>
  /** releases everything the service holds; waits for a start in progress. Idempotent. */
  stop: () => Promise<void>
}

/**
 * One entry of the node's service list. `create` is called after every entry before it has
 * started, with the components they provided; with `provides`, the service itself becomes the
 * component of that name for the entries after it.
 */
export type ServiceEntry<C> =
  | { [K in keyof C]: { name: string, provides: K, create: (components: C) => C[K] & Service } }[keyof C]
  | { name: string, provides?: undefined, create: (components: C) => Service }

/** A service's product (its keystore, its conductor…) was asked for before the service started. */
export class NotStartedError extends FlexnodeError {
  static override readonly name = 'NotStartedError'
  readonly service: string

  constructor (service: string) {
    super(`${service} has not started`)
    this.service = service
  }
}

/** A component was used before the service that provides it was started (an ordering bug). */
export class MissingComponentError extends FlexnodeError {
  static override readonly name = 'MissingComponentError'
  readonly component: string

  constructor (component: string) {
    super(`the component ${JSON.stringify(component)} is not available yet: the service that provides it comes later in the node's service list, or was not configured`)
    this.component = component
  }
}

/**
 * The node's components: a typed object whose fields are filled as services start; reading one
 * that is not there yet throws `MissingComponentError` instead of handing out `undefined`.
 */
export function components<C extends object> (initial: Partial<C>): C {
  return new Proxy({ ...initial }, {
    get (target, key, receiver) {
      if (typeof key === 'symbol' || key === 'then' || Reflect.has(target, key)) return Reflect.get(target, key, receiver)
      throw new MissingComponentError(key)
    }
  }) as C
}

export interface RunningServices {
  /** the started services' names, in start order */
  readonly names: readonly string[]
  /** stops every service in reverse order; one failing stop does not keep the others running. Idempotent. */
  stop: () => Promise<void>
}

export interface StartServicesOptions extends StartOptions {
  log: ComponentLogger
}

/** Builds and starts the services in order; on failure or abort, stops what started, in reverse. */
export async function startServices<C extends object> (entries: ReadonlyArray<ServiceEntry<C>>, comps: C, options: StartServicesOptions): Promise<RunningServices> {
  const { signal, log } = options
  const started: Array<{ name: string, service: Service }> = []
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      for (const { name, service } of [...started].reverse()) {
        try {
          await service.stop()
        } catch (err) {
          log.warn({ service: name, err: errorMessage(err) }, 'a service failed to stop')
        }
      }
    })()
    await stopping
  }
  let starting: { name: string, service: Service, settled: boolean } | undefined
  try {
    for (const entry of entries) {
      if (signal?.aborted === true) throw new AbortError('start-up was aborted')
      const service = entry.create(comps)
      // a start that fails half-way still holds resources: the service is stopped like the others
      started.push({ name: entry.name, service })
      if (entry.provides !== undefined) (comps as Record<PropertyKey, unknown>)[entry.provides] = service
      log.debug({ service: entry.name }, 'starting')
      const current: { name: string, service: Service, settled: boolean } = starting = { name: entry.name, service, settled: false }
      const t0 = performance.now()
      await abortable(service.start({ signal }).finally(() => { current.settled = true }), signal)
      log.debug({ service: entry.name, ms: Math.round(performance.now() - t0) }, 'started')
    }
  } catch (err) {
    if (starting !== undefined && !starting.settled) {
      // abandoned by an abort and maybe stuck: it is stopped once its start settles, without
      // holding up the rest of the clean-up
      const { name, service } = starting
      started.pop()
      service.stop().catch((e: unknown) => { log.warn({ service: name, err: errorMessage(e) }, 'a service failed to stop after an aborted start') })
    }
    await stop()
    throw err
  }
  return { names: started.map(s => s.name), stop }
}

/**
 * `work`, or `AbortError` as soon as `signal` aborts: a step that ignores the signal (a stuck
 * disk) does not hold start-up. What it makes later is released by the service's own `stop()`.
 */
async function abortable<T> (work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await work
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined)
      reject(new AbortError('start-up was aborted'))
    }
    if (signal.aborted) { onAbort(); return }
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      made => { signal.removeEventListener('abort', onAbort); resolve(made) },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) }
    )
  })
}

/**
 * A service from a start and a stop function: `stop` runs once, after a start in progress has
 * settled (so a late start's resources are released), and not at all if `start` never ran.
 */
export function service (parts: { start: (options?: StartOptions) => Promise<void>, stop: () => Promise<void> | void }): Service {
  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      if (starting === undefined) return
      await starting.catch(() => undefined)
      await parts.stop()
    })()
    await stopping
  }
  return {
    start: async (options) => {
      if (stopping !== undefined) throw new DisposedError('this service')
      starting ??= parts.start(options)
      await starting
    },
    stop,
    [Symbol.asyncDispose]: stop
  }
}
