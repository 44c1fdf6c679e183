/**
 * The README's shell commands, run: every ```sh block in README order, every command in it, as a
 * reader runs them in a fresh home directory with `flexnode` on PATH (`fixtures/readme.ts` says
 * what differs from a reader's shell: node starts go to the background, `npm ci`/`npm test`/`npm
 * run bench` are left to CI and the bench test). The whole run is in a network namespace of its
 * own (`unshare --net`, only `lo` up), so the README's fixed ports (`--listen …/tcp/4001`,
 * `--admin-port 8888`) and its `0.0.0.0` listeners cannot collide with anything or reach
 * anything, and mDNS on `local` finds no one.
 *
 * What a reader brings is prepared beforehand: a GGUF file in `~/Downloads` (a generated tiny
 * model under the README's name), the files the commands name (`hello.wasm`, `in.txt`,
 * `points.jsonl`, `build.tar`) in the working directory, `$PG`, a Postgres URL (a real
 * Postgres in the same namespace), and `FLEXNODE_PASSPHRASE` in the environment. `FLEXNODE_MDNS`
 * is `false` there: tests connect nodes explicitly, never by mDNS.
 */
import { spawn } from 'node:child_process'
import { chmod, copyFile, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ensureModel } from '../../../../fixtures/gguf/index.ts'
import { REPO_ROOT, tempDir } from '../../../../fixtures/index.ts'
import { readmeScript, shellBlocks } from '../../../../fixtures/readme.ts'
import { buildWasmFixtures } from '../../../../fixtures/wasm.ts'

const RUN_ELSEWHERE = ['npm ci', 'npm test', 'npm run bench']
const PG_PORT = 5432

/** The pids of the processes in the network namespace `ns` (`net:[…]`). */
async function processesIn (ns: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    if (await readlink(`/proc/${entry}/ns/net`).catch(() => '') === ns) pids.push(Number(entry))
  }
  return pids
}

/**
 * Stop everything the README started: every process left in its network namespace (the nodes,
 * their model processes, Postgres, `npm`'s children), SIGTERM first so nodes stop cleanly, SIGKILL
 * what is left after 15 s.
 */
async function stopNamespace (ns: string): Promise<void> {
  const signal = (pids: number[], sig: NodeJS.Signals): void => {
    for (const pid of pids) {
      try { process.kill(pid, sig) } catch { /* gone */ }
    }
  }
  signal(await processesIn(ns), 'SIGTERM')
  for (let i = 0; i < 150 && (await processesIn(ns)).length > 0; i++) await new Promise(resolve => setTimeout(resolve, 100))
  signal(await processesIn(ns), 'SIGKILL')
}

describe('the README', () => {
  it('lists its commands, and leaves to CI only what CI runs', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
    const blocks = shellBlocks(readme)
    expect(blocks.length).toBeGreaterThan(10)
    const ci = await readFile(join(REPO_ROOT, '.ci', 'run'), 'utf8')
    expect(ci).toMatch(/^npm ci$/m)
    expect(ci).toMatch(/^npm test$/m)
    const bench = await readFile(join(REPO_ROOT, 'bench', 'test', 'bench.spec.ts'), 'utf8')
    expect(bench).toContain("spawn('npm', ['run', 'bench']")
  })

  it('every shell command it shows runs', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
    const blocks = shellBlocks(readme)
    const commands = blocks.flatMap(b => b.commands)
    await using dir = await tempDir('flexnode-readme-')
    const home = join(dir.path, 'home')
    const work = join(dir.path, 'work')
    const bin = join(dir.path, 'bin')
    const scratch = join(dir.path, 'scratch')
    for (const d of [home, work, bin, scratch, join(home, 'Downloads')]) await mkdir(d, { recursive: true })

    // `flexnode` as an installed package puts it on PATH
    await writeFile(join(bin, 'flexnode'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, 'bin', 'flexnode.js')}" "$@"\n`)
    await chmod(join(bin, 'flexnode'), 0o755)
    // what a reader has at hand
    await copyFile(await ensureModel(join(dir.path, 'models'), 'tiny', 3), join(home, 'Downloads', 'Qwen3-4B-Q4_K_M.gguf'))
    const wasm = await buildWasmFixtures()
    await writeFile(join(work, 'hello.wasm'), wasm.echo)
    await writeFile(join(work, 'in.txt'), 'hello from the readme\n')
    await writeFile(join(work, 'points.jsonl'), ['a', 'b', 'c'].map((id, i) => JSON.stringify({ id, vector: [i, 1, 0.5, 0.25], metadata: { lang: 'en' } })).join('\n') + '\n')
    await writeFile(join(work, 'build.tar'), Buffer.alloc(300_000, 7))

    const script = [
      // the namespace, so that everything started in it can be stopped at the end
      'echo "::netns $(readlink /proc/self/ns/net)"',
      // a Postgres of the reader's, in this namespace, as $PG
      `(cd "$READMETEST_REPO" && exec "${process.execPath}" --import tsx fixtures/postgres-serve.ts ${PG_PORT} > "$READMETEST_DIR/pg.out" 2> "$READMETEST_DIR/pg.err") &`,
      'pg_pid=$!',
      'for _ in $(seq 1 600); do grep -q "^POSTGRES_READY " "$READMETEST_DIR/pg.out" && break; kill -0 "$pg_pid" 2> /dev/null || break; sleep 0.1; done',
      'PG=$(sed -n "s/^POSTGRES_READY //p" "$READMETEST_DIR/pg.out"); [ -n "$PG" ] || { cat "$READMETEST_DIR/pg.err"; exit 1; }',
      readmeScript(blocks, { runElsewhere: RUN_ELSEWHERE })
    ].join('\n')
    await writeFile(join(scratch, 'readme.sh'), script)

    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLEXNODE_') && !k.startsWith('VITEST') && k !== 'NODE_OPTIONS') env[k] = v
    Object.assign(env, {
      HOME: home,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      // the reader's keystore passphrase (a backup refuses a keystore without one)
      FLEXNODE_PASSPHRASE: 'a reader passphrase',
      // the README's `local` nodes would find each other by mDNS; tests connect nodes explicitly
      FLEXNODE_MDNS: 'false',
      READMETEST_DIR: scratch,
      READMETEST_REPO: REPO_ROOT
    })
    const proc = spawn('unshare', ['--net', '--', 'bash', '-c', 'ip link set lo up && exec bash "$0"', join(scratch, 'readme.sh')], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    proc.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
    proc.stderr.setEncoding('utf8').on('data', (c: string) => { err += c })
    const code = await new Promise<number | string>(resolve => { proc.on('exit', (c, s) => { resolve(c ?? s ?? -1) }) })
    const ns = /^::netns (net:\[\d+\])$/m.exec(out)?.[1]
    if (ns !== undefined) await stopNamespace(ns)
    // the whole transcript, for a look when a command failed (`::ok <line> <seconds>` marks progress)
    await writeFile(join(tmpdir(), 'flexnode-readme-last.log'), `${out}\n--- stderr ---\n${err}`)

    const failed = /^::fail (\d+) (\d+)$/m.exec(out)
    const tails = `--- stderr (tail) ---\n${err.slice(-4000)}\n--- stdout (tail) ---\n${out.slice(-2000)}`
    const report = failed !== null
      ? `README line ${failed[1]} exited ${failed[2]}:\n${readme.split('\n')[Number(failed[1]) - 1] ?? ''}\n${tails}`
      : code !== 0 ? `the script exited ${code}\n${tails}` : ''
    expect(report).toBe('')
    expect(out).toMatch(/^::done$/m)
    // every command ran here or is one CI runs
    const done = new Set([...out.matchAll(/^::(?:ok|elsewhere) (\d+)/gm)].map(m => Number(m[1])))
    expect(commands.filter(c => !done.has(c.line)).map(c => c.text)).toEqual([])
  }, 900_000)
})
