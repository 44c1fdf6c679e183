/**
 * `flexnode start`'s configuration: one schema, three sources (YAML file < FLEXNODE_* < flags),
 * each value's source, and the file's mistakes named by key and line.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, tempDir } from '../../../../fixtures/index.ts'
import { allocateInput, wasmLimits } from '../../resources/schemas.ts'
import { commandReference, COMMANDS_BEGIN, renderReadme, startOptionTable } from '../docs.ts'
import { parseStartArgs } from '../start-command.ts'
import { loadStartConfig, START_CONFIG_SCHEMA, START_FIELDS } from '../start.ts'

describe('the start config', () => {
  it('layers default < file < env < flag, and says where each value came from', async () => {
    await using dir = await tempDir()
    await writeFile(join(dir.path, 'flexnode.yaml'), [
      'network: testnet',
      'http-port: 8001',
      'admin-port: 8101',
      'app-port: 8201',
      'bootstrap:',
      '  - /ip4/10.0.0.1/tcp/4001',
      'mdns: false',
      ''
    ].join('\n'))
    const env = { FLEXNODE_DATA_DIR: dir.path, FLEXNODE_HTTP_PORT: '8002', FLEXNODE_ADMIN_PORT: '8102' }
    const { options, sources, file } = await loadStartConfig({ env, flags: { httpPort: '8003' } })
    expect(file).toBe(join(dir.path, 'flexnode.yaml'))
    expect(options).toMatchObject({ dataDir: dir.path, network: 'testnet', httpPort: 8003, adminPort: 8102, appPort: 8201, bootstrap: ['/ip4/10.0.0.1/tcp/4001'], mdns: false, region: 'local' })
    expect(sources['http-port']).toEqual({ value: 8003, source: 'flag' })
    expect(sources['admin-port']).toEqual({ value: 8102, source: 'env' })
    expect(sources['app-port']).toEqual({ value: 8201, source: 'file' })
    expect(sources.network).toEqual({ value: 'testnet', source: 'file' })
    expect(sources['data-dir']).toEqual({ value: dir.path, source: 'env' })
    expect(sources.region).toMatchObject({ source: 'default' })
    expect(Object.keys(sources)).toEqual(START_FIELDS.map(f => f.name))
  })

  it('takes --config (or FLEXNODE_CONFIG) instead of the data dir\'s file; a missing explicit file is an error, a missing default one is not', async () => {
    await using dir = await tempDir()
    const file = join(dir.path, 'other.yaml')
    await writeFile(file, 'region: eu-west\nlisten: /ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/1\n')
    expect((await loadStartConfig({ env: { FLEXNODE_DATA_DIR: dir.path }, configFile: file })).options).toMatchObject({ region: 'eu-west', listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/1'] })
    expect((await loadStartConfig({ env: { FLEXNODE_DATA_DIR: dir.path, FLEXNODE_CONFIG: file } })).options.region).toBe('eu-west')
    expect((await loadStartConfig({ env: { FLEXNODE_DATA_DIR: dir.path } })).file).toBeUndefined()
    await expect(loadStartConfig({ env: { FLEXNODE_DATA_DIR: dir.path }, configFile: join(dir.path, 'missing.yaml') })).rejects.toMatchObject({ name: 'UsageError', flag: '--config' })
  })

  it('refuses an unknown key, a malformed file and a bad value, naming the key and its line', async () => {
    await using dir = await tempDir()
    const file = join(dir.path, 'flexnode.yaml')
    const env = { FLEXNODE_DATA_DIR: dir.path }
    await writeFile(file, 'network: local\n\nhttp_port: 8080\n')
    const unknown = await loadStartConfig({ env }).catch((e: unknown) => e) as Error & { flag?: string }
    expect(unknown).toMatchObject({ name: 'UsageError', flag: 'http_port' })
    expect(unknown.message).toContain(`${file}:3`)
    expect(unknown.message).toContain('did you mean http-port')
    await writeFile(file, 'network: local\nbootstrap: [/ip4/1.2.3.4/tcp/1\nregion: x\n')
    const malformed = await loadStartConfig({ env }).catch((e: unknown) => e) as Error
    expect(malformed).toMatchObject({ name: 'UsageError', flag: '--config' })
    expect(malformed.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: malformed YAML`))
    await writeFile(file, 'network: local\nhttp-port: 99999\n')
    const bad = await loadStartConfig({ env }).catch((e: unknown) => e) as Error
    expect(bad).toMatchObject({ name: 'UsageError', flag: 'http-port' })
    expect(bad.message).toContain(`${file}:2: http-port: must be a port number`)
    await writeFile(file, '- a list\n')
    await expect(loadStartConfig({ env })).rejects.toMatchObject({ name: 'UsageError' })
    // a bad variable is named too
    await writeFile(file, '')
    await expect(loadStartConfig({ env: { ...env, FLEXNODE_NETWORK: 'moon' } })).rejects.toMatchObject({ name: 'UsageError', flag: 'FLEXNODE_NETWORK' })
  })

  it('the file schema is one zod object of every field, strict', () => {
    expect(Object.keys(START_CONFIG_SCHEMA.shape)).toEqual(START_FIELDS.map(f => f.name))
    expect(START_CONFIG_SCHEMA.safeParse({ network: 'testnet', 'http-port': 80 }).success).toBe(true)
    expect(START_CONFIG_SCHEMA.safeParse({ nope: 1 }).success).toBe(false)
  })

  it('parses flags through commander as before', async () => {
    expect(await parseStartArgs(['--help'], {})).toBe('help')
    expect(await parseStartArgs(['--no-mdns', '--no-demo-model', '--listen', '/ip4/127.0.0.1/tcp/0', '--listen', '/ip4/127.0.0.1/tcp/1', '--json'], {}))
      .toMatchObject({ mdns: false, generateDefaultModel: false, listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/1'], json: true })
    await expect(parseStartArgs(['--bogus'], {})).rejects.toMatchObject({ name: 'UsageError' })
    await expect(parseStartArgs(['--http-port', 'x'], {})).rejects.toMatchObject({ name: 'UsageError', flag: '--http-port' })
    await expect(parseStartArgs(['extra'], {})).rejects.toMatchObject({ name: 'UsageError' })
  })

  it('the README\'s option table is generated from the schema and up to date (npm run docs)', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
    expect(renderReadme(readme), 'README.md is stale: run npm run docs').toBe(readme)
    for (const f of START_FIELDS) expect(startOptionTable()).toContain(`\`${f.name}\``)
  })

  it('the README\'s command reference is generated from the CLI program, its texts from the operations\' schemas, and up to date', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
    const reference = commandReference()
    // renderReadme rewrites this section too: the staleness check above covers it
    expect(readme).toContain(`${COMMANDS_BEGIN}\n${reference}\n`)
    for (const usage of ['flexnode allocate [options]', 'flexnode release [options] <allocation_id>', 'flexnode task run [options] <file.wasm>', 'flexnode keys token [options]', 'flexnode mcp [options]']) {
      expect(reference).toContain(`### \`${usage}\``)
    }
    expect(reference).toContain(`| \`--duration <s>\` | ${allocateInput.shape.duration_seconds.unwrap().description} |`)
    expect(reference).toContain(`| \`--cpu-ms <n>\` | ${wasmLimits.shape.cpu_ms.unwrap().description} |`)
    // no shell fences: readme.spec.ts runs every sh block
    expect(reference).not.toContain('```')
  })
})
