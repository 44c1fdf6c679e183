/**
 * The WASM task runner on a real `wasm` pool of two worker threads, with modules built from WAT
 * (`fixtures/wasm.ts`): each bad module ends in its typed error while a well-behaved task started
 * beside it on the same pool succeeds, the pool serves afterwards, the ABI's edge cases, limits
 * and the CID path. Budgets are a few hundred ms, so a stopped task costs little.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildWasmFixtures, heavyExpected, heavyInput, type WasmFixtures } from '../../../../fixtures/wasm.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'
import { createLogger } from '../../logger.ts'
import { WASM_LOG_MAX_LINE_BYTES, WASM_LOG_MAX_LINES, wasmCid, wasmRunner, type WasmRunner, type WasmTask } from '../wasm.ts'

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const decode = (b: Uint8Array): string => new TextDecoder().decode(b)
const OUTPUT_MAX = 1 << 20

describe('WasmRunner', () => {
  let wasm: WasmFixtures
  let runner: WasmRunner
  const records: Array<Record<string, unknown>> = []
  const resolved: string[] = []

  beforeAll(async () => {
    wasm = await buildWasmFixtures()
    const logger = createLogger({ level: 'info', json: true, destination: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } } })
    runner = wasmRunner({
      maxThreads: 2,
      maxOutputBytes: OUTPUT_MAX,
      resolve: async (cid) => {
        resolved.push(cid)
        if (cid === wasmCid(wasm.echo)) return wasm.echo
        // a store that answers with the wrong bytes
        if (cid === wasmCid(wasm.heavy)) return wasm.trap
        return undefined
      }
    })({ logger })
    // start both threads, so the first cases do not pay for it inside their budgets
    await Promise.all([1, 2].map(async () => await runner.run({ wasm: wasm.echo })))
  })
  afterAll(async () => { await runner.dispose() })

  /** A well-behaved task: upper-cases its input. */
  const echo = async (s: string): Promise<void> => {
    const r = await runner.run({ wasm: wasm.echo, input: text(s), limits: { cpu_ms: 5_000 } })
    expect(decode(r.output)).toBe(s.toUpperCase())
    expect(r.exit_code).toBe(0)
  }

  it('runs a pure module: output, exit code and usage', async () => {
    const r = await runner.run({ wasm: wasm.echo, input: text('hello, wasm') })
    expect(decode(r.output)).toBe('HELLO, WASM')
    expect(r.exit_code).toBe(0)
    expect(r.usage.peak_memory_mb).toBe(1 / 16)
    expect(r.usage.wall_ms).toBeGreaterThan(0)
    // the thread's CPU clock (Node ≥ 23.9) may tick coarser than such a short run
    expect(r.usage.cpu_ms).toBeGreaterThanOrEqual(0)
    // a non-zero exit code is a result, not an error
    const bye = await runner.run({ wasm: wasm.abi, input: text('e') })
    expect(bye.exit_code).toBe(7)
    expect(decode(bye.output)).toBe('bye')
    expect((await runner.run({ wasm: wasm.heavy, input: heavyInput(8) })).output).toEqual(heavyExpected(8))
    // a busy run (~50 ms) used CPU, and one thread's CPU time is never more than its wall time
    // (no ratio is asserted: on a loaded machine the thread waits for a core)
    const heavy = await runner.run({ wasm: wasm.heavy, input: heavyInput(250) })
    expect(heavy.usage.cpu_ms).toBeGreaterThan(0)
    expect(heavy.usage.cpu_ms).toBeLessThanOrEqual(heavy.usage.wall_ms + 10)
  })

  const bad: Array<{ case: string, task: () => WasmTask, name: string, fields?: Record<string, unknown>, reason: RegExp }> = [
    { case: 'bytes that are not WebAssembly', task: () => ({ wasm: wasm.notWasm }), name: 'InvalidWasmModuleError', reason: /not WebAssembly/ },
    { case: 'no run export', task: () => ({ wasm: wasm.noRun }), name: 'InvalidWasmModuleError', reason: /exports no function run/ },
    { case: 'run of the wrong signature', task: () => ({ wasm: wasm.badRun }), name: 'InvalidWasmModuleError', reason: /run is \(i32\) -> \(i32\)/ },
    { case: 'a shared memory', task: () => ({ wasm: wasm.sharedMemory }), name: 'InvalidWasmModuleError', reason: /shared/ },
    { case: 'an unknown import', task: () => ({ wasm: wasm.unknownImport }), name: 'WasmImportError', fields: { import: 'env.fetch' }, reason: /env\.fetch/ },
    { case: 'the clock without allow_clock', task: () => ({ wasm: wasm.clock }), name: 'WasmImportError', fields: { import: 'flexnode.clock_ms' }, reason: /allow_clock/ },
    { case: 'a trap', task: () => ({ wasm: wasm.trap }), name: 'WasmTrapError', fields: { trap: 'unreachable' }, reason: /unreachable/ },
    { case: 'an infinite loop (CPU budget)', task: () => ({ wasm: wasm.loop, limits: { cpu_ms: 300 } }), name: 'WasmCpuLimitError', fields: { limit_ms: 300 }, reason: /CPU budget of 300 ms/ },
    { case: 'an infinite loop (wall clock)', task: () => ({ wasm: wasm.loop, limits: { wall_ms: 300 } }), name: 'WasmWallTimeoutError', fields: { limit_ms: 300 }, reason: /wall-clock budget of 300 ms/ },
    { case: 'a memory bomb', task: () => ({ wasm: wasm.memoryBomb, limits: { memory_mb: 8 } }), name: 'WasmMemoryLimitError', fields: { limit_mb: 8 }, reason: /trapped \(unreachable\)/ },
    { case: 'an initial memory over the limit', task: () => ({ wasm: wasm.bigMemory, limits: { memory_mb: 1 } }), name: 'WasmMemoryLimitError', fields: { limit_mb: 1 }, reason: /initial memory is 2 MiB/ },
    { case: 'endless output', task: () => ({ wasm: wasm.abi, input: text('o') }), name: 'WasmOutputLimitError', fields: { limit_bytes: OUTPUT_MAX }, reason: /maximum output/ }
  ]

  it.each(bad)('ends $case in $name while a good task beside it succeeds', async (c) => {
    const [failed] = await Promise.all([
      runner.run(c.task()).then(() => { throw new Error('the bad task succeeded') }, (err: unknown) => err),
      echo(`beside ${c.case}`)
    ])
    expect(failed).toMatchObject({ name: c.name, ...c.fields })
    expect((failed as Error).message).toMatch(c.reason)
    if (c.name !== 'InvalidWasmModuleError') expect((failed as { cid?: string }).cid).toBe(wasmCid(c.task().wasm!))
  })

  it('keeps serving after every bad task at once', async () => {
    const outcomes = await Promise.allSettled(bad.map(async (c) => await runner.run(c.task())))
    expect(outcomes.map(o => o.status === 'rejected' ? (o.reason as Error).name : 'fulfilled')).toEqual(bad.map(c => c.name))
    await Promise.all(['one', 'two', 'three'].map(echo))
  })

  it('refuses an import pointer outside the memory as a trap, never a host crash', async () => {
    await expect(runner.run({ wasm: wasm.abi, input: text('bxyz') })).rejects.toMatchObject({ name: 'WasmTrapError', trap: 'input_read: bytes [65535, 65537) are outside the module\'s memory of 65536 bytes' })
    // a negative i32 is an address near 4 GiB
    await expect(runner.run({ wasm: wasm.abi, input: text('w') })).rejects.toMatchObject({ name: 'WasmTrapError', trap: expect.stringMatching(/^output_write: bytes \[4294967280, 4294967312\)/) as unknown })
    await echo('still here')
  })

  it('input_read copies at most len bytes, and an empty input reads as nothing', async () => {
    expect(decode((await runner.run({ wasm: wasm.abi, input: text('rxyz') })).output)).toBe('rx')
    expect((await runner.run({ wasm: wasm.echo })).output.byteLength).toBe(0)
  })

  it('reports a failed grow at the memory limit, then a non-zero exit, as WasmMemoryLimitError', async () => {
    await expect(runner.run({ wasm: wasm.abi, input: text('g'), limits: { memory_mb: 2 } })).rejects.toMatchObject({ name: 'WasmMemoryLimitError', limit_mb: 2 })
    // a trap far below a small limit stays a trap
    await expect(runner.run({ wasm: wasm.trap, limits: { memory_mb: 1 } })).rejects.toMatchObject({ name: 'WasmTrapError' })
  })

  it('logs the module\'s lines under the pool, each cut to its maximum, and no more of them than allowed', async () => {
    await runner.run({ wasm: wasm.echo, input: text('log me') })
    const cid = wasmCid(wasm.echo)
    expect(await waitUntil(() => records.find(r => r.msg === 'echo' && r.cid === cid))).toMatchObject({ level: 30, source: 'wasm', component: 'flexnode:pool:wasm' })
    const flood = wasmCid(wasm.abi)
    await runner.run({ wasm: wasm.abi, input: text('l') })
    const dropped = await waitUntil(() => records.find(r => r.cid === flood && /further log lines/.test(String(r.msg))))
    expect(dropped.msg).toBe(`${1000 - WASM_LOG_MAX_LINES} further log lines of the module were dropped`)
    const lines = records.filter(r => r.cid === flood && r.msg !== dropped.msg)
    expect(lines).toHaveLength(WASM_LOG_MAX_LINES)
    expect(String(lines[0]!.msg)).toHaveLength(WASM_LOG_MAX_LINE_BYTES + 1)
  })

  it('offers a monotonic clock when the task allows it', async () => {
    const r = await runner.run({ wasm: wasm.clock, allow_clock: true })
    const view = new DataView(r.output.buffer, r.output.byteOffset, r.output.byteLength)
    const [a, b] = [view.getFloat64(0, true), view.getFloat64(8, true)]
    expect(a).toBeGreaterThanOrEqual(0)
    expect(b).toBeGreaterThanOrEqual(a)
  })

  it('runs a module by its CID, resolving its bytes once; an unknown or mismatched CID is a typed error', async () => {
    const cid = wasmCid(wasm.echo)
    expect(cid).toMatch(/^bafkrei[a-z2-7]{52}$/)
    const before = resolved.length
    // the echo module is compiled already (by bytes): by CID it needs no lookup
    expect(decode((await runner.run({ wasm_cid: cid, input: text('by cid') })).output)).toBe('BY CID')
    expect(resolved.length).toBe(before)
    // at another memory limit it is compiled again, from the bytes resolve gives, then cached
    for (let i = 0; i < 2; i++) expect(decode((await runner.run({ wasm_cid: cid, input: text('x'), limits: { memory_mb: 3 } })).output)).toBe('X')
    expect(resolved.slice(before)).toEqual([cid])

    const unknown = wasmCid(text('nobody has this'))
    await expect(runner.run({ wasm_cid: unknown })).rejects.toMatchObject({ name: 'WasmModuleNotFoundError', cid: unknown })
    await expect(runner.run({ wasm_cid: wasmCid(wasm.heavy), limits: { memory_mb: 5 } })).rejects.toMatchObject({ name: 'InvalidWasmModuleError', message: expect.stringMatching(/hash to/) as unknown })
    await expect(runner.run({ wasm: wasm.echo, wasm_cid: unknown })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'wasm_cid' })
    await expect(runner.run({ wasm_cid: 'QmNotAV1' })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'wasm_cid' })
  })

  it('validates the task at the boundary', async () => {
    const refused = async (task: unknown, field: string): Promise<void> => {
      await expect(runner.run(task as WasmTask)).rejects.toMatchObject({ name: 'InvalidInputError', field })
    }
    await refused({}, 'wasm')
    await refused({ wasm: 'AGFzbQ==' }, 'wasm')
    await refused({ wasm: wasm.echo, input: 'text' }, 'input')
    await refused({ wasm: wasm.echo, limits: { memory_mb: 0 } }, 'limits.memory_mb')
    await refused({ wasm: wasm.echo, limits: { memory_mb: 4096 } }, 'limits.memory_mb')
    await refused({ wasm: wasm.echo, limits: { cpu_ms: 1.5 } }, 'limits.cpu_ms')
    await refused({ wasm: wasm.echo, limits: { wall_ms: Number.POSITIVE_INFINITY } }, 'limits.wall_ms')
    await refused({ wasm: wasm.echo, allow_clock: 'yes' }, 'allow_clock')
  })

  it('aborts through the caller\'s signal with AbortError, and keeps serving', async () => {
    const ac = new AbortController()
    const run = runner.run({ wasm: wasm.loop }, { signal: ac.signal })
    setTimeout(() => { ac.abort() }, 100)
    await expect(run).rejects.toMatchObject({ name: 'AbortError' })
    await echo('after an abort')
  })

  it('is disposed idempotently, and refuses work afterwards with DisposedError', async () => {
    const own = wasmRunner({ maxThreads: 1 })({ logger: createLogger({ level: 'silent' }) })
    await Promise.all([own.dispose(), own.dispose()])
    expect(own.disposed).toBe(true)
    await expect(own.run({ wasm: wasm.echo })).rejects.toMatchObject({ name: 'DisposedError' })
  })
})
