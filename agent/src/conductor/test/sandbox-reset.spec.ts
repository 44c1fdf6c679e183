/**
 * A zome runtime that hits a limit is rebuilt, and the old one is freed completely: every QuickJS
 * value the host held for it (contexts, helper functions, module exports, host promises) is
 * released first, or QuickJS's `JS_FreeRuntime` fails its `list_empty(&rt->gc_obj_list)` assertion,
 * which aborts the WebAssembly module every DNA's runtime shares. A failed free is logged as a
 * warning, so these tests read the sandbox's own log.
 */
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../logger.ts'
import { ZomeSandbox, type DnaStatic, type ZomeSandboxInit } from '../sandbox/host.ts'

const FREE_FAILED = 'freeing a QuickJS runtime failed'

const info = (name: string): DnaStatic => ({ hash: new Uint8Array(39), name, modifiers: { network_seed: '', properties: {} }, zome_names: ['z'] })
const module = (code: string): Uint8Array => new TextEncoder().encode(code)

const HOSTILE = `
export async function ok (api, p) { return p }
export async function take (api) { try { await api.wait(); return 'took' } catch (e) { return e.name } }
export async function loop () { for (;;) {} }
export async function loop_after_await (api) { await api.wait(); for (;;) {} }
export async function memory_bomb () { const a = []; for (;;) a.push('x'.repeat(1024) + a.length) }
export async function stack_bomb () { const down = (n) => down(n + 1) + 1; return down(0) }
export async function deep_json () { let o = []; for (let i = 0; i < 100000; i++) o = [o]; return JSON.stringify(o).length }
export async function deep_result () { let o = []; for (let i = 0; i < 100000; i++) o = [o]; return o }
export function validate (op) { if (op.type === 'Loop') for (;;) {} return { type: 'Valid' } }
`

/** A sandbox whose warnings are kept, and a way to let a deferred free run. */
async function sandbox (init: ZomeSandboxInit = {}): Promise<{ sb: ZomeSandbox, freeFailures: () => string[], warnings: () => string[], settle: () => Promise<void> }> {
  const lines: Array<{ msg?: string, err?: string }> = []
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => { lines.push(JSON.parse(line) as { msg?: string }) } } })
  const sb = await ZomeSandbox.create({ startTimeMs: 1000, cpuTimeMs: 300, memoryLimitBytes: 8 * 1024 * 1024, ...init }, { logger })
  return {
    sb,
    freeFailures: () => lines.filter(l => l.msg === FREE_FAILED).map(l => String(l.err)),
    warnings: () => lines.map(l => String(l.msg)),
    // a runtime reset while zome code is on the stack is freed on the next turn (setImmediate)
    settle: async () => { await new Promise<void>(resolve => { setImmediate(resolve) }) }
  }
}

describe('zome sandbox: a runtime reset frees everything', () => {
  it('after a module that loops forever at the top level', async () => {
    const { sb, freeFailures, settle } = await sandbox()
    await expect(sb.loadDna('spin', 'spin', info('spin'), [{ name: 'z', code: module('for (;;) {}\nexport async function f () { return 1 }') }]))
      .rejects.toMatchObject({ name: 'ZomeSandboxError', reason: 'cpu_time' })
    await settle()
    expect(freeFailures()).toEqual([])
    // the shared module still works: another DNA loads, runs and is freed cleanly
    await sb.loadDna('ok', 'ok', info('ok'), [{ name: 'z', code: module(HOSTILE) }])
    expect(await sb.call('ok', 'z', 'ok', {}, 7)).toBe(7)
    sb.dispose()
    expect(freeFailures()).toEqual([])
  })

  it.each(['loop', 'loop_after_await', 'memory_bomb'])('after a call that hits a limit (%s)', async (fn) => {
    const { sb, freeFailures, settle } = await sandbox()
    await sb.loadDna('h', 'h', info('h'), [{ name: 'z', code: module(HOSTILE) }])
    await expect(sb.call('h', 'z', fn, { wait: async () => null }, null)).rejects.toMatchObject({ name: 'ZomeSandboxError' })
    await settle()
    expect(freeFailures()).toEqual([])
    expect(await sb.call('h', 'z', 'ok', {}, 'again')).toBe('again')
    sb.dispose()
    expect(freeFailures()).toEqual([])
  })

  // Deep recursion inside QuickJS's C built-ins (JSON over deeply nested arrays) runs out of the
  // thread's native stack before QuickJS's own stack check sees it, and plain JavaScript recursion
  // does too when the interpreter's stack limit is above what the native stack holds.
  it.each([
    ['stack_bomb', {}],
    ['deep_json', {}],
    ['deep_result', {}],
    ['stack_bomb', { maxStackBytes: 4 * 1024 * 1024 }]
  ] as const)('after a call that overflows a stack (%s, %j)', async (fn, init) => {
    const { sb, freeFailures, settle } = await sandbox({ memoryLimitBytes: 64 * 1024 * 1024, cpuTimeMs: 5000, ...init })
    await sb.loadDna('h', 'h', info('h'), [{ name: 'z', code: module(HOSTILE) }])
    await expect(sb.call('h', 'z', fn, {}, null)).rejects.toMatchObject({ name: 'ZomeSandboxError', reason: 'stack' })
    await settle()
    expect(freeFailures()).toEqual([])
    expect(await sb.call('h', 'z', 'ok', {}, 'again')).toBe('again')
    sb.dispose()
    expect(freeFailures()).toEqual([])
  })

  it('a value nested too deeply for QuickJS\'s parser is refused before it enters, with no reset', async () => {
    const { sb, freeFailures, warnings } = await sandbox({ memoryLimitBytes: 64 * 1024 * 1024 })
    await sb.loadDna('h', 'h', info('h'), [{ name: 'z', code: module(HOSTILE) }])
    let deep: unknown = []
    for (let i = 0; i < 1500; i++) deep = [deep]
    await expect(sb.call('h', 'z', 'ok', {}, deep)).rejects.toMatchObject({ name: 'ZomeSandboxError', reason: 'marshal' })
    // a host function's result too: the zome sees a RangeError it can catch
    expect(await sb.call('h', 'z', 'take', { wait: async () => deep }, null)).toBe('RangeError')
    sb.dispose()
    expect(freeFailures()).toEqual([])
    expect(warnings()).toEqual([])
  })

  it('after a validation that hits its CPU time', async () => {
    const { sb, freeFailures, settle } = await sandbox()
    await sb.loadDna('h', 'h', info('h'), [{ name: 'z', code: module(HOSTILE) }])
    expect(() => sb.validate('h', 'z', {}, ['Fine', 'Loop'], {})).toThrow(expect.objectContaining({ name: 'ZomeSandboxError', reason: 'cpu_time' }))
    await settle()
    expect(freeFailures()).toEqual([])
    expect(sb.validate('h', 'z', {}, ['Fine'], {})).toEqual({ type: 'Valid' })
    sb.dispose()
    expect(freeFailures()).toEqual([])
  })
})
