/**
 * Component loggers. Every component receives a `ComponentLogger` and names its own children:
 *
 * ```ts
 * const log = createLogger({ level: 'info' }).forComponent('flexnode:conductor')
 * log.info({ port }, 'admin interface listening')
 * ```
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino'

export interface ComponentLogger {
  trace: PinoLogger['trace']
  debug: PinoLogger['debug']
  info: PinoLogger['info']
  warn: PinoLogger['warn']
  error: PinoLogger['error']
  forComponent: (name: string) => ComponentLogger
}

export interface LoggerInit {
  /** @default 'info' */
  level?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
  /** JSON lines (true) or one readable line per record (false). @default false */
  json?: boolean
  /** Where records go. @default stderr, so stdout stays free for machine-readable lines */
  destination?: DestinationStream
}

function wrap (logger: PinoLogger): ComponentLogger {
  return {
    trace: logger.trace.bind(logger),
    debug: logger.debug.bind(logger),
    info: logger.info.bind(logger),
    warn: logger.warn.bind(logger),
    error: logger.error.bind(logger),
    forComponent: (name: string) => wrap(logger.child({ component: name }))
  }
}

function readableLine (): DestinationStream {
  return {
    write (line: string): void {
      try {
        const rec = JSON.parse(line) as Record<string, unknown>
        const { level, time, component, msg, pid: _pid, hostname: _host, ...rest } = rec
        const name = typeof level === 'number' ? (pino.levels.labels[level] ?? String(level)) : String(level)
        const extra = Object.keys(rest).length > 0 ? ' ' + JSON.stringify(rest) : ''
        process.stderr.write(`${new Date(Number(time)).toISOString()} ${name.toUpperCase()} [${String(component ?? 'flexnode')}] ${String(msg ?? '')}${extra}\n`)
      } catch {
        process.stderr.write(line)
      }
    }
  }
}

export function createLogger (init: LoggerInit = {}): ComponentLogger {
  const destination = init.destination ?? (init.json === true ? pino.destination(2) : readableLine())
  return wrap(pino({ level: init.level ?? 'info', base: undefined }, destination))
}

/** A logger that drops everything: for tests and embedded uses that bring no logger. */
export function silentLogger (): ComponentLogger {
  return wrap(pino({ level: 'silent' }))
}
