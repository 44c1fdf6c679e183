import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {
  createLoadSampler,
  detectGpu,
  normalizeArch,
  parseNvidiaSmi,
  probeMachine,
  type GpuInfo
} from '../probe.ts'
import { GPU_COMMAND_KILL_GRACE_MS, GPU_COMMAND_TIMEOUT_MS } from '../constants.ts'
import { waitUntil } from '../../../../fixtures/wait.ts'

const NORMALIZED_ARCHES = ['x86_64', 'aarch64', 'arm', 'riscv64', 'ppc64', 's390x']

const TWO_GPU_SAMPLE = [
  'NVIDIA GeForce RTX 4090, 24564, 37',
  'NVIDIA A100-SXM4-80GB, 81920, [N/A]',
  ''
].join('\n')

function expectValidGpu (gpu: GpuInfo | null): void {
  if (gpu === null) return
  expect(typeof gpu.vendor).toBe('string')
  expect(gpu.vendor.length).toBeGreaterThan(0)
  expect(gpu.model.length).toBeGreaterThan(0)
  expect(gpu.vram_gb).toBeGreaterThan(0)
}

function busyLoop (ms: number): void {
  const end = Date.now() + ms
  let x = 0
  while (Date.now() < end) x = (x + Math.sqrt(x + 1)) % 1e6
  expect(Number.isFinite(x)).toBe(true)
}

function expectPercent (value: number): void {
  expect(Number.isNaN(value)).toBe(false)
  expect(value).toBeGreaterThanOrEqual(0)
  expect(value).toBeLessThanOrEqual(100)
  expect(Math.round(value * 10) / 10).toBe(value)
}

describe('probe', () => {
  let tmp: string

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'flexnode-probe-'))
  })

  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true })
  })

  describe('probeMachine', () => {
    it('returns figures consistent with node:os', async () => {
      const profile = await probeMachine({ dataDir: tmp })
      expect(profile.cpu_cores).toBe(os.availableParallelism())
      expect(Math.abs(profile.ram_gb - os.totalmem() / 2 ** 30)).toBeLessThanOrEqual(0.1)
      expect(profile.local_ssd_gb).toBeGreaterThan(0)
      expect(profile.cpu_arch).toBe(normalizeArch(os.arch()))
      if (['x64', 'arm64', 'arm', 'riscv64', 'ppc64', 's390x'].includes(os.arch())) {
        expect(NORMALIZED_ARCHES).toContain(profile.cpu_arch)
      }
      expect(profile.hostname).toBe(os.hostname())
      expect(profile.platform).toBe(process.platform)
      expectValidGpu(profile.gpu)
    })

    it('measures the nearest existing ancestor of a data dir that does not exist yet', async () => {
      const profile = await probeMachine({ dataDir: path.join(tmp, 'not', 'yet', 'created'), detectGpu: false })
      expect(profile.local_ssd_gb).toBeGreaterThan(0)
      expect(profile.gpu).toBeNull()
    })

    it('rejects an empty data dir and an aborted signal', async () => {
      await expect(probeMachine({ dataDir: '' })).rejects.toMatchObject({ name: 'InvalidInputError', field: 'dataDir' })
      await expect(probeMachine({ dataDir: tmp, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' })
    })
  })

  describe('parseNvidiaSmi', () => {
    it('parses a two-GPU listing', () => {
      expect(parseNvidiaSmi(TWO_GPU_SAMPLE)).toEqual([
        { model: 'NVIDIA GeForce RTX 4090', vram_gb: 24, utilization_percent: 37 },
        { model: 'NVIDIA A100-SXM4-80GB', vram_gb: 80, utilization_percent: 0 }
      ])
    })

    it('accepts CRLF line endings and rounds memory to 0.1 GiB', () => {
      expect(parseNvidiaSmi('Tesla T4, 15360, 100\r\n')).toEqual([
        { model: 'Tesla T4', vram_gb: 15, utilization_percent: 100 }
      ])
      expect(parseNvidiaSmi('Quadro P1000, 4040, 5')?.[0]?.vram_gb).toBe(3.9)
    })

    it('returns null for garbage and error output', () => {
      expect(parseNvidiaSmi('')).toBeNull()
      expect(parseNvidiaSmi('garbage\n\u0000\u0001 ,, ,')).toBeNull()
      expect(parseNvidiaSmi('No devices were found')).toBeNull()
      expect(parseNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")).toBeNull()
      expect(parseNvidiaSmi('GPU, abc, 12')).toBeNull()
    })
  })

  describe('normalizeArch', () => {
    it('maps Node architecture names', () => {
      expect(normalizeArch('x64')).toBe('x86_64')
      expect(normalizeArch('arm64')).toBe('aarch64')
      expect(normalizeArch('arm')).toBe('arm')
      expect(normalizeArch('riscv64')).toBe('riscv64')
      expect(normalizeArch('ppc64')).toBe('ppc64')
      expect(normalizeArch('s390x')).toBe('s390x')
      expect(normalizeArch('amd64')).toBe('x86_64')
      expect(normalizeArch('mips')).toBe('mips')
    })
  })

  describe('createLoadSampler', () => {
    it('reports CPU, GPU and memory load within 0..100', async () => {
      const sampler = createLoadSampler({ detectGpu: false })
      busyLoop(300)
      const load = await sampler.sample()
      expectPercent(load.cpu_percent)
      expectPercent(load.gpu_percent)
      expectPercent(load.memory_percent)
      expect(load.cpu_percent).toBeGreaterThan(0)
      expect(load.gpu_percent).toBe(0)
      const expectedMemory = 100 * (1 - os.freemem() / os.totalmem())
      expect(Math.abs(load.memory_percent - expectedMemory)).toBeLessThanOrEqual(3)
    })

    it('never reports NaN, even for back-to-back samples', async () => {
      const sampler = createLoadSampler()
      for (let i = 0; i < 3; i++) {
        const load = await sampler.sample()
        expectPercent(load.cpu_percent)
        expectPercent(load.gpu_percent)
        expectPercent(load.memory_percent)
      }
    })
  })

  describe('detectGpu', () => {
    it('returns null or a valid GpuInfo without throwing', async () => {
      expectValidGpu(await detectGpu())
    })
  })

  // A fake nvidia-smi on PATH exercises the command path end to end.
  describe.skipIf(process.platform === 'win32')('detectGpu with a fake nvidia-smi', () => {
    let savedPath: string | undefined
    let binDir: string

    async function installFake (script: string): Promise<void> {
      const file = path.join(binDir, 'nvidia-smi')
      await writeFile(file, `#!/bin/sh\n${script}\n`)
      await chmod(file, 0o755)
    }

    beforeAll(async () => {
      binDir = await mkdtemp(path.join(os.tmpdir(), 'flexnode-fake-smi-'))
      savedPath = process.env.PATH
      process.env.PATH = `${binDir}${path.delimiter}${savedPath ?? ''}`
    })

    afterAll(async () => {
      process.env.PATH = savedPath
      await rm(binDir, { recursive: true, force: true })
    })

    it('advertises the GPU with the most memory and reports its load', async () => {
      await installFake(`printf '%s\\n' '${TWO_GPU_SAMPLE.split('\n').filter(Boolean).join("' '")}'`)
      expect(await detectGpu()).toEqual({ vendor: 'nvidia', model: 'NVIDIA A100-SXM4-80GB', vram_gb: 80 })
      await installFake("printf 'Tesla T4, 15360, 42\\n'")
      const load = await createLoadSampler().sample()
      expect(load.gpu_percent).toBe(42)
    })

    it('does not run the command for an already-aborted signal', async () => {
      const marker = path.join(binDir, 'ran')
      await installFake(`touch '${marker}'; printf 'Tesla T4, 15360, 42\\n'`)
      expect(await detectGpu({ signal: AbortSignal.abort() })).toBeNull()
      await expect(stat(marker)).rejects.toMatchObject({ code: 'ENOENT' })
    })

    it('gives up on a hung command at the timeout', async () => {
      // the command would answer a GPU, but only long after the timeout: giving up is seen in
      // the result. The trailing command stops the shell from exec'ing sleep: the orphaned
      // sleep keeps the pipes open after the shell is killed, so only the hard deadline ends it.
      await installFake(`sleep ${(GPU_COMMAND_TIMEOUT_MS + GPU_COMMAND_KILL_GRACE_MS) * 4 / 1000}; printf 'Tesla T4, 15360, 42\\n'`)
      const started = Date.now()
      const gpu = await detectGpu()
      expect(gpu?.vendor).not.toBe('nvidia')
      // it waited for the command as long as the timeout allows (a lower bound cannot flake)
      expect(Date.now() - started).toBeGreaterThanOrEqual(GPU_COMMAND_TIMEOUT_MS - 100)
    })

    it('stops a running command when the signal aborts', async () => {
      // the command answers a GPU as soon as it is let go: an abort that did not stop it would
      // see that answer, since the test lets it go right after aborting
      const pidFile = path.join(binDir, 'pid')
      const go = path.join(binDir, 'go')
      await installFake(`echo $$ > '${pidFile}'; while [ ! -f '${go}' ]; do sleep 0.05; done; printf 'Tesla T4, 15360, 42\\n'`)
      const controller = new AbortController()
      const pending = detectGpu({ signal: controller.signal })
      await waitUntil(async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim(), { what: 'the fake nvidia-smi to start' })
      controller.abort()
      await writeFile(go, '')
      expect(await pending).toBeNull()
    })
  })
})
