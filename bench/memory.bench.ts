/**
 * Peak resident memory of one idle node, started the way a user starts it (`flexnode start`),
 * with the generated demo model loaded and with none (`--no-demo-model`). The node serves each
 * model from a child process, so the figure is the node's own peak (VmHWM) and the peak of its
 * whole process tree. The baseline is a bare `node` process measured in the same run.
 */
import { readdir, readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnFlexnode, spawnNode } from '../fixtures/spawn-node.ts'
import { tempDir, TEST_NODE_FLAGS } from '../fixtures/index.ts'
import { BENCH_SCALE, type Report } from './util.ts'

/** how long the node idles after READY before its memory is read */
const IDLE_MS = Math.max(500, 3000 * BENCH_SCALE)

async function statusKb (pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
  return m === null ? 0 : Number(m[1])
}

/** pid and every descendant (Linux /proc) */
async function tree (root: number): Promise<number[]> {
  const parents = new Map<number, number[]>()
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    // the command name may hold spaces and parentheses: the ppid follows the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (Number.isInteger(ppid)) parents.set(ppid, [...parents.get(ppid) ?? [], Number(name)])
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) out.push(...parents.get(out[i]!) ?? [])
  return out
}

interface Peak { ownMb: number, treeMb: number, processes: number }

async function peakOf (pid: number): Promise<Peak> {
  const pids = await tree(pid)
  const peaks = await Promise.all(pids.map(async p => await statusKb(p, 'VmHWM').catch(() => 0)))
  return { ownMb: peaks[0]! / 1024, treeMb: peaks.reduce((a, b) => a + b, 0) / 1024, processes: pids.length }
}

async function idleNode (extra: string[]): Promise<Peak> {
  await using dir = await tempDir('flexnode-bench-mem-')
  const node = spawnFlexnode(['start', '--data-dir', dir.path, '--network', 'local', '--http-port', '0', '--threads', '1', ...TEST_NODE_FLAGS, ...extra])
  try {
    await node.ready
    await sleep(IDLE_MS)
    return await peakOf(node.proc.pid!)
  } finally {
    await node.stop()
  }
}

export async function run (report: Report): Promise<void> {
  if (process.platform !== 'linux') {
    report.note('memory: peak RSS is read from /proc; skipped on this platform')
    return
  }
  const bare = spawnNode(process.execPath, ['-e', 'console.log("FLEXNODE_READY {}"); setInterval(() => {}, 1000)'])
  let baseline: Peak
  try {
    await bare.ready
    await sleep(IDLE_MS)
    baseline = await peakOf(bare.proc.pid!)
  } finally {
    await bare.stop()
  }
  const none = await idleNode(['--no-demo-model'])
  const demo = await idleNode([])
  const fmt = (p: Peak): string => `${p.ownMb.toFixed(0)} MiB (node process), ${p.treeMb.toFixed(0)} MiB with its ${p.processes - 1} child process(es)`
  report.note(`memory: peak RSS of one idle node without a model (--no-demo-model): ${fmt(none)}; ${(none.treeMb / baseline.treeMb).toFixed(2)}x a bare node process (${baseline.treeMb.toFixed(0)} MiB)`)
  report.note(`memory: peak RSS of one idle node with the demo model loaded: ${fmt(demo)}; ${(demo.treeMb / none.treeMb).toFixed(2)}x the node without a model`)
}
