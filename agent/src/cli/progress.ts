/**
 * Progress of the CLI's long operations (model load and pull, pin, get, backup, restore) on
 * stderr: a bar redrawn in place on a terminal, plain text otherwise (milestones on one line
 * when the total is known, the byte count when it ends when it is not).
 *
 * ```ts
 * const progress = Progress.onStderr('tiny-llama', 'loading')
 * progress.update(0.5)          // loading tiny-llama [###############---------------]  50%
 * progress.finish()
 * for await (const chunk of counted(source, progress)) …   // bytes of an unknown total
 * ```
 */

/** Width of the progress bar drawn on a terminal. */
const BAR_WIDTH = 30
/** Progress printed when stderr is not a terminal. */
const MILESTONES = [25, 50, 75, 100]

/** `654.4 KiB`, `3.8 GiB`. */
export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]!}`
}

export interface ProgressInit {
  /** draw a bar redrawn in place. @default false */
  tty?: boolean
  /** where the text goes */
  write: (s: string) => void
  /** what the line says is happening. @default 'loading' */
  verb?: string
}

/** One operation's progress line. */
export class Progress {
  private readonly id: string
  private readonly write: (s: string) => void
  private readonly tty: boolean
  private readonly verb: string
  private shown = -1
  private started = false
  private bytesDone = 0

  constructor (id: string, options: ProgressInit) {
    this.id = id
    this.tty = options.tty ?? false
    this.write = options.write
    this.verb = options.verb ?? 'loading'
  }

  /** Progress on this process's stderr, a bar when it is a terminal. */
  static onStderr (id: string, verb: string): Progress {
    return new Progress(id, { tty: process.stderr.isTTY, write: (s) => { process.stderr.write(s) }, verb })
  }

  /** A fraction done, 0..1. */
  update (progress: number): void {
    const percent = Math.max(0, Math.min(100, Math.floor(progress * 100)))
    if (this.tty) {
      if (percent === this.shown) return
      this.shown = percent
      this.started = true
      const filled = Math.round(percent / 100 * BAR_WIDTH)
      this.write(`\r${this.verb} ${this.id} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${String(percent).padStart(3)}%`)
      return
    }
    this.begin()
    for (const m of MILESTONES) {
      if (m > this.shown && percent >= m) {
        this.shown = m
        this.write(` ${m}%`)
      }
    }
  }

  /** Bytes done of a total not known in advance: a running count on a terminal, the count at the end otherwise. */
  bytes (done: number): void {
    this.bytesDone = done
    if (this.tty) {
      this.started = true
      this.write(`\r${this.verb} ${this.id}: ${formatBytes(done)}`)
      return
    }
    this.begin()
  }

  private begin (): void {
    if (this.started) return
    this.started = true
    this.write(`${this.verb} ${this.id}:`)
  }

  /** end the progress line */
  finish (): void {
    if (this.started && !this.tty && this.shown < 0 && this.bytesDone > 0) this.write(` ${formatBytes(this.bytesDone)}`)
    if (this.started) this.write('\n')
    this.started = false
  }
}

/** `source`, its bytes counted into `progress` as they pass. */
export async function * counted (source: AsyncIterable<Uint8Array>, progress: Progress): AsyncGenerator<Uint8Array> {
  let done = 0
  for await (const chunk of source) {
    done += chunk.byteLength
    progress.bytes(done)
    yield chunk
  }
}
