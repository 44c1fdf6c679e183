/**
 * `flexnode memory create | insert | search | info | list | delete` as a user runs them, against
 * one real node started as a child process; plus the argument parsing, the points files, the
 * rendering and the usage errors.
 */
import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { REPO_ROOT, tempDir, TEST_NODE_FLAGS } from '../../../../fixtures/index.ts'
import { runFlexnode, spawnFlexnode, type CliResult } from '../../../../fixtures/spawn-node.ts'
import { runInProcess } from '../../../../fixtures/cli.ts'
import { parseStartArgs, UsageError } from '../../config.ts'
import { InvalidInputError } from '../../errors.ts'
import { InvalidVectorError, type CollectionInfo, type SearchResult } from '../../memory/types.ts'
import { MAX_BATCH } from '../../memory/validate.ts'
import { batchesOf, checkAgainstCollection, parsePoints, renderCollectionInfo, renderCollections, renderSearch } from '../memory.ts'

const flexnode = runFlexnode

/** `node bin/flexnode.js <args>` with `input` on its stdin. */
async function flexnodeWithStdin (args: string[], input: string): Promise<CliResult> {
  const env = { ...process.env }
  delete env.FLEXNODE_DATA_DIR
  const child = spawn(process.execPath, ['bin/flexnode.js', ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  child.stdin.end(input)
  const code = await new Promise<number>(resolve => child.on('close', (c) => { resolve(c ?? -1) }))
  return { code, stdout, stderr }
}

/** `flexnode memory <args>` for each of `cases`, in-process one after another (the program is the one `bin/flexnode.js` runs). */
async function runAll (cases: string[][], env: NodeJS.ProcessEnv): Promise<CliResult[]> {
  const out: CliResult[] = []
  for (const args of cases) out.push(await runInProcess(['memory', ...args], env))
  return out
}

describe('flexnode memory', () => {
  it('creates, inserts (a file and stdin, in batches), searches, describes, lists and deletes a collection', async () => {
    await using dir = await tempDir()
    const node = spawnFlexnode(['start', '--data-dir', join(dir.path, 'node'), ...TEST_NODE_FLAGS, '--no-demo-model', '--heartbeat-interval', '3600'])
    try {
      const ready = await node.ready
      const self = ready.agent_pub_key as string
      const d = ['--data-dir', join(dir.path, 'node')]
      await writeFile(join(dir.path, 'points.jsonl'), [
        { id: 'a', vector: [1, 0, 0], metadata: { lang: 'en', n: 1 } },
        { id: 'b', vector: [0.9, 0.1, 0], metadata: { lang: 'en', n: 2 } },
        { id: 'c', vector: [0, 1, 0], metadata: { lang: 'de', n: 3 } },
        { id: 'd', vector: [0, 0, 1] },
        { id: 'e', vector: [0.7, 0.7, 0], metadata: { lang: 'fr' } }
      ].map(p => JSON.stringify(p)).join('\n') + '\n')
      await writeFile(join(dir.path, 'bad.jsonl'), '{"id":"x","vector":[1,0,0]}\n{"id":"y","vector":[1,0]}\n')

      // a single node is a valid mesh: the collection works with the one replica it can place
      const created = await flexnode(['memory', 'create', 'docs', '--dimensions', '3', '--shards', '4', ...d])
      expect(created.code, created.stderr).toBe(0)
      expect(created.stdout).toMatch(/^created collection docs$/m)
      expect(created.stdout).toMatch(/^dimensions\s+3$/m)
      expect(created.stdout).toMatch(/^distance\s+cosine$/m)
      const again = await flexnode(['memory', 'create', 'docs', '--dimensions', '3', ...d])
      expect(again.code).toBe(1)
      expect(again.stderr).toMatch(/^flexnode: CollectionExistsError: .*\(HTTP 409/m)

      const listed = await flexnode(['memory', 'list', ...d])
      expect(listed.code, listed.stderr).toBe(0)
      expect(listed.stdout).toMatch(/^NAME\s+DIMENSIONS\s+DISTANCE\s+SHARDS\s+REPLICATION\s+EMBEDDING MODEL$/m)
      expect(listed.stdout).toMatch(/^docs\s+3\s+cosine\s+4\s+2\s+-$/m)

      const inserted = await flexnode(['memory', 'insert', 'docs', '--file', join(dir.path, 'points.jsonl'), ...d])
      expect(inserted.code, inserted.stderr).toBe(0)
      expect(inserted.stdout).toBe('wrote 5 points to docs\n')
      // more than one batch, from stdin as a JSON array, at write consistency one
      const many = Array.from({ length: MAX_BATCH + 500 }, (_, i) => ({ id: `r${i}`, vector: [Math.cos(i), Math.sin(i), (i % 7) / 7], metadata: { lang: 'xx' } }))
      const piped = await flexnodeWithStdin(['memory', 'insert', 'docs', '-', '--consistency', 'one', ...d, '--json'], JSON.stringify(many))
      expect(piped.code, piped.stderr).toBe(0)
      expect(JSON.parse(piped.stdout)).toMatchObject({ collection: 'docs', written: many.length, batches: 2 })
      // a point of the wrong dimensions: named by its line, nothing written
      const bad = await flexnode(['memory', 'insert', 'docs', '--file', join(dir.path, 'bad.jsonl'), ...d])
      expect(bad.code).toBe(1)
      expect(bad.stderr).toMatch(/^flexnode: InvalidVectorError: .*bad\.jsonl line 2: vector has 2 numbers; collection "docs" has 3 dimensions$/m)

      const found = await flexnode(['memory', 'search', 'docs', '--vector', '[1, 0, 0]', '-k', '2', '--filter', '{"lang":"en"}', ...d])
      expect(found.code, found.stderr).toBe(0)
      const rows = found.stdout.trim().split('\n')
      expect(rows[0]).toMatch(/^ID\s+SCORE\s+METADATA$/)
      expect(rows[1]).toMatch(/^a\s+1\.0000\s+\{"lang":"en","n":1\}$/)
      expect(rows[2]).toMatch(/^b\s+0\.99\d\d\s+\{"lang":"en","n":2\}$/)
      expect(rows).toHaveLength(3)
      const json = await flexnode(['memory', 'search', 'docs', '--vector', '[0, 1, 0]', '-k', '5', '--ef', '100', '--filter', '{"lang":{"in":["de","fr"]}}', ...d, '--json'])
      expect(json.code, json.stderr).toBe(0)
      const answer = JSON.parse(json.stdout) as SearchResult
      expect(answer).toMatchObject({ partial: false, shards_answered: 4, shards_total: 4 })
      expect(answer.results.map(h => h.id)).toEqual(['c', 'e'])
      const noModel = await flexnode(['memory', 'search', 'docs', '--text', 'hello', ...d])
      expect(noModel.code).toBe(1)
      expect(noModel.stderr).toMatch(/^flexnode: NoEmbeddingModelError: .*\(HTTP 400/m)

      const info = await flexnode(['memory', 'info', 'docs', ...d])
      expect(info.code, info.stderr).toBe(0)
      expect(info.stdout).toMatch(/^collection\s+docs$/m)
      expect(info.stdout).toMatch(/^epoch\s+\d+$/m)
      expect(info.stdout).toMatch(new RegExp(`^count\\s+${5 + many.length}$`, 'm'))
      // one node, replication factor 2: every shard is under-replicated, and says so
      expect(info.stdout).toMatch(/^under_replicated\s+yes: 4 of 4 shards have fewer than 2 replicas/m)
      expect(info.stdout).toMatch(/^SHARD\s+REPLICAS\s+NODE\s+STATE\s+LIVE\s+COUNT$/m)
      for (const shard of [0, 1, 2, 3]) expect(info.stdout).toMatch(new RegExp(`^${shard}\\s+1/2 under-replicated\\s+uhCAk\\S+ \\(self\\)\\s+serving\\s+yes\\s+\\d+$`, 'm'))
      const infoJson = await flexnode(['memory', 'info', 'docs', ...d, '--json'])
      const described = JSON.parse(infoJson.stdout) as CollectionInfo
      expect(described).toMatchObject({ name: 'docs', dimensions: 3, distance: 'cosine', shard_count: 4, replication_factor: 2, count: 5 + many.length, under_replicated: true })
      expect(described.shards.flatMap(s => s.replicas.map(r => r.node_id))).toEqual([self, self, self, self])

      const deleted = await flexnode(['memory', 'delete', 'docs', ...d])
      expect(deleted.code, deleted.stderr).toBe(0)
      expect(deleted.stdout).toBe('deleted collection docs\n')
      const gone = await flexnode(['memory', 'info', 'docs', ...d])
      expect(gone.code).toBe(1)
      expect(gone.stderr.trim().split('\n')).toHaveLength(1)
      expect(gone.stderr).toMatch(/^flexnode: UnknownCollectionError: .*\(HTTP 404/m)
      expect((await flexnode(['memory', 'list', ...d])).stdout).toBe('no collections\n')
    } finally {
      await node.stop()
    }
  }, 120_000)

  it('rejects bad command lines with a usage error (exit 2), and bad points files with exit 1 before asking any node', async () => {
    await using dir = await tempDir()
    await writeFile(join(dir.path, 'dup.jsonl'), '{"id":"a","vector":[1]}\n\n{"id":"a","vector":[2]}\n')
    const cases = [
      ['memory'], ['memory', 'frob'], ['memory', 'create', 'docs'], ['memory', 'create', 'docs', '--dimensions', 'x'],
      ['memory', 'search', 'docs'], ['memory', 'search', 'docs', '--vector', '[1,"a"]'], ['memory', 'info'],
      ['memory', 'insert', 'docs', '--file', '/no/such/points.jsonl'], ['memory', 'list', '--dimensions', '3']
    ]
    const results = await Promise.all(cases.map(async args => ({ args, r: await flexnode([...args, '--data-dir', join(dir.path, 'none')]) })))
    for (const { args, r } of results) {
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toContain('Usage: flexnode memory')
    }
    const dup = await flexnode(['memory', 'insert', 'docs', '--file', join(dir.path, 'dup.jsonl'), '--data-dir', join(dir.path, 'none')])
    expect(dup.code).toBe(1)
    expect(dup.stderr).toMatch(/^flexnode: InvalidVectorError: .*dup\.jsonl line 3: id: "a" is given twice \(first at .*dup\.jsonl line 1\)$/m)
    const usage = await flexnode(['help'])
    expect(usage.stdout).toMatch(/^ {2}memory\b/m)
    const help = await flexnode(['memory', 'search', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^Usage: flexnode memory search \[options\] <name>/)
  }, 60_000)

  it('flexnode start takes the vector memory\'s shard capacity and threads', async () => {
    expect(await parseStartArgs(['--memory-shards', '0', '--memory-threads', '2'], {})).toMatchObject({ memory: { shardCapacity: 0, threads: 2 } })
    expect(await parseStartArgs(['--memory-shards', '12'], {})).toMatchObject({ memory: { shardCapacity: 12 } })
    expect(await parseStartArgs([], {})).not.toHaveProperty('memory')
    for (const bad of [['--memory-shards', '-1'], ['--memory-shards', 'many'], ['--memory-shards', '70000'], ['--memory-threads', '0'], ['--memory-threads', '1.5']]) {
      await expect(parseStartArgs(bad, {})).rejects.toBeInstanceOf(UsageError)
    }
  })

  it('parses every action and flag in commander, and refuses bad ones with exit 2 and one reason line', async () => {
    await using dir = await tempDir()
    const points = join(dir.path, 'p.jsonl')
    await writeFile(points, '{"id":"a","vector":[1,2]}\n')
    // no node runs on the data dir: an accepted command line gets as far as looking for it (exit 1)
    const env = { FLEXNODE_DATA_DIR: join(dir.path, 'none') }
    const accepted = [
      ['create', 'docs', '--dimensions', '384'],
      ['create', 'docs', '--dimensions', '8', '--distance', 'l2', '--shards', '32', '--replication', '3', '--embedding-model', 'all-minilm', '--json'],
      ['create', '--distance', 'ip', 'My_docs-2', '--dimensions', '4096', '--shards', '256', '--replication', '5'],
      ['insert', 'docs', '--file', points, '--consistency', 'all'],
      ['search', 'docs', '--vector', '[0.1, -2, 3e-2]'],
      ['search', 'docs', '--text', 'how do leases end', '-k', '5', '--ef', '5', '--filter', '{"lang":"en","n":{"in":[1,2,null]}}'],
      ['search', 'docs', '-k1000', '--vector=[1]'],
      ['info', 'docs'], ['delete', 'docs', '--json'], ['list']
    ]
    for (const [i, r] of (await runAll(accepted, env)).entries()) {
      expect(r.code, `${accepted[i]!.join(' ')}: ${r.stderr}`).toBe(1)
      expect(r.stderr, accepted[i]!.join(' ')).toMatch(/^flexnode: NodeNotRunningError: no flexnode is running on .*none\n$/)
    }
    for (const args of [['--help'], ['search', '-h']]) {
      const help = await runInProcess(['memory', ...args])
      expect(help.code).toBe(0)
      expect(help.stdout).toMatch(/^Usage: flexnode memory /)
    }

    const refused: Array<[string[], RegExp]> = [
      [['drop', 'docs'], /unknown command 'drop'/],
      [['list', 'docs'], /too many arguments for 'list'/],
      [['info'], /missing required argument 'name'/],
      [['delete', 'a', 'b'], /too many arguments for 'delete'/],
      [['info', ' '], /invalid for argument 'name'\. a collection name is 1\.\.64 letters, digits, _ or -/],
      [['info', 'x'.repeat(65)], /a collection name is 1\.\.64/],
      [['info', 'my docs'], /a collection name is 1\.\.64/],
      [['info', 'a/b'], /a collection name is 1\.\.64/],
      [['info', 'docs', '--data-dir', ''], /--data-dir must not be empty/],
      [['info', 'docs', '--bogus'], /unknown option '--bogus'/],
      [['create', 'docs'], /required option '--dimensions <n>' not specified/],
      [['create', 'docs', '--dimensions', '0'], /'--dimensions <n>' argument '0' is invalid\. must be an integer from 1 to 4096/],
      [['create', 'docs', '--dimensions', '4097'], /'--dimensions <n>' argument '4097' is invalid\. must be an integer from 1 to 4096/],
      [['create', 'docs', '--dimensions', '1.5'], /--dimensions.* must be an integer/],
      [['create', 'docs', '--dimensions', 'ten'], /--dimensions.* must be an integer/],
      [['create', 'docs', '--dimensions', '3', '--distance', 'euclid'], /'--distance <d>' argument 'euclid' is invalid\. Allowed choices are cosine, l2, ip/],
      [['create', 'docs', '--dimensions', '3', '--shards', '0'], /--shards.* must be an integer from 1 to 256/],
      [['create', 'docs', '--dimensions', '3', '--shards', '257'], /--shards.* must be an integer from 1 to 256/],
      [['create', 'docs', '--dimensions', '3', '--replication', '-1'], /--replication/],
      [['create', 'docs', '--dimensions', '3', '--replication', '6'], /--replication.* must be an integer from 1 to 5/],
      [['create', 'docs', '--dimensions', '3', '--embedding-model', ''], /--embedding-model.* must be a non-empty name/],
      [['create', 'docs', '--dimensions', '3', '-k', '3'], /unknown option '-k'/],
      [['create', '--dimensions', '3'], /missing required argument 'name'/],
      [['insert', 'docs', '--file', ''], /--file must name a file/],
      [['insert', 'docs', '--file', 'p.jsonl', '-'], /not both/],
      [['insert', 'docs', 'p.jsonl'], /argument 'p\.jsonl' is invalid|value 'p\.jsonl' is invalid.* Allowed choices are -/],
      [['insert', 'docs', '--consistency', 'most'], /Allowed choices are one, quorum, all/],
      [['insert', 'docs', '--dimensions', '3'], /unknown option '--dimensions'/],
      [['search', 'docs'], /needs --vector <json> or --text <text>/],
      [['search', 'docs', '--vector', '[1]', '--text', 'x'], /--vector or --text, not both/],
      [['search', 'docs', '--vector', '1,2'], /--vector must be JSON|--vector must be a non-empty JSON array/],
      [['search', 'docs', '--vector', '[1,'], /--vector must be JSON/],
      [['search', 'docs', '--vector', '[]'], /non-empty JSON array/],
      [['search', 'docs', '--vector', '{"a":1}'], /non-empty JSON array/],
      [['search', 'docs', '--vector', '[1, "2"]'], /--vector\[1\]: must be a finite number/],
      [['search', 'docs', '--vector', '[1, 1e999]'], /--vector\[1\]: must be a finite number, not Infinity/],
      [['search', 'docs', '--vector', '[1, null]'], /--vector\[1\]: must be a finite number, not null/],
      [['search', 'docs', '--vector', '[1, 1e39]'], /--vector\[1\]: 1e\+39 is out of the range of a 32-bit float/],
      [['search', 'docs', '--vector', JSON.stringify(new Array(4097).fill(0))], /--vector has 4097 numbers; a collection has at most 4096/],
      [['search', 'docs', '--text', ' '], /--text must not be empty/],
      [['search', 'docs', '--vector', '[1]', '-k', '0'], /'-k <n>' argument '0' is invalid\. must be an integer from 1 to 1000/],
      [['search', 'docs', '--vector', '[1]', '-k', '1001'], /-k <n>.* must be an integer from 1 to 1000/],
      [['search', 'docs', '--vector', '[1]', '-k', '2.5'], /-k <n>.* must be an integer/],
      [['search', 'docs', '--vector', '[1]', '--ef', '10001'], /--ef <n>.* must be an integer from 1 to 10000/],
      [['search', 'docs', '--vector', '[1]', '-k', '20', '--ef', '10'], /--ef must be at least -k \(20\), got 10/],
      [['search', 'docs', '--vector', '[1]', '--filter', 'lang=en'], /--filter must be JSON/],
      [['search', 'docs', '--vector', '[1]', '--filter', '["en"]'], /--filter: must be an object of key: value or key: \{ in: \[values\] \}/],
      [['search', 'docs', '--vector', '[1]', '--filter', '{}'], /at least one metadata key/],
      [['search', 'docs', '--vector', '[1]', '--filter', '{"lang":["en"]}'], /--filter\.lang: must be a string, a finite number, a boolean, null or \{ in: \[values\] \}/],
      [['search', 'docs', '--vector', '[1]', '--filter', '{"lang":{"eq":"en"}}'], /--filter\.lang: must be/],
      [['search', 'docs', '--vector', '[1]', '--filter', '{"lang":{"in":"en"}}'], /--filter\.lang: must be/],
      [['search', 'docs', '--vector', '[1]', '--filter', '{"lang":{"in":[]}}'], /--filter\.lang\.in: must list 1\.\.1000 values/],
      [['search', 'docs', '--vector', '[1]', '--filter', '{"lang":{"in":[{"a":1}]}}'], /--filter\.lang\.in\[0\]: must be/],
      [['search', 'docs', '--vector', '[1]', '--consistency', 'one'], /unknown option '--consistency'/],
      [['info', 'docs', '--file', 'x'], /unknown option '--file'/],
      [['search', 'docs', '--vector'], /argument missing/]
    ]
    for (const [i, r] of (await runAll(refused.map(([args]) => args), env)).entries()) {
      const [args, reason] = refused[i]!
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect.soft(r.stderr.split('\n')[0], args.join(' ')).toMatch(reason)
      expect(r.stderr, args.join(' ')).toContain('Usage: flexnode memory')
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
  })

  it('reads points as JSON lines or a JSON array, checks every one, and splits them into batches', () => {
    const lines = '\uFEFF{"id":"a","vector":[1,2]}\r\n\n  {"id":"b","text":"hello","metadata":{"lang":"en","n":1,"ok":true,"x":null}}\n'
    expect(parsePoints(lines, 'p.jsonl')).toEqual({
      points: [{ id: 'a', vector: [1, 2] }, { id: 'b', text: 'hello', metadata: { lang: 'en', n: 1, ok: true, x: null } }],
      where: ['p.jsonl line 1', 'p.jsonl line 3']
    })
    expect(parsePoints(' [{"id":"a","vector":[1]}, {"id":"b","vector":[2]}]', 'stdin').where).toEqual(['stdin [0]', 'stdin [1]'])
    const refused: Array<[string, RegExp]> = [
      ['', /p holds no points/],
      ['\n\n', /p holds no points/],
      ['[]', /p holds no points/],
      ['{"id":"a","vector":[1]}\n{"id":"b"', /p line 2 is not JSON/],
      ['[{"id":"a","vector":[1]}', /p is not a JSON array of points/],
    ]
    // a bad point is the node's own error for it, InvalidVectorError, naming where it is
    const badPoints: Array<[string, RegExp]> = [
      ['[1]', /^p \[0\]: a point must be a JSON object/],
      ['"a"', /^p line 1: a point must be a JSON object/],
      ['{"id":1,"vector":[1]}', /^p line 1: id: must be a string of 1\.\.256 characters$/],
      ['{"id":"","vector":[1]}', /^p line 1: id: must be a string of 1\.\.256/],
      [JSON.stringify({ id: 'x'.repeat(257), vector: [1] }), /^p line 1: id: must be a string of 1\.\.256/],
      ['{"vector":[1]}', /^p line 1: id: must be a string/],
      ['{"id":"a"}', /^p line 1: a point needs a vector or a text$/],
      ['{"id":"a","vector":[1],"text":"t"}', /^p line 1: give a vector or a text, not both$/],
      ['{"id":"a","vector":[]}', /^p line 1: vector: must be a non-empty array of numbers$/],
      ['{"id":"a","vector":"1,2"}', /^p line 1: vector: must be a non-empty array/],
      ['{"id":"a","vector":[1,"2"]}', /^p line 1: vector\[1\]: must be a finite number/],
      ['{"id":"a","vector":[1,1e999]}', /^p line 1: vector\[1\]: must be a finite number, not Infinity$/],
      ['{"id":"a","vector":[1,1e39]}', /^p line 1: vector\[1\]: 1e\+39 is out of the range of a 32-bit float$/],
      ['{"id":"a","text":" "}', /^p line 1: text: must be a non-empty string$/],
      ['{"id":"a","vector":[1],"metadata":[1]}', /^p line 1: metadata: must be an object of flat values$/],
      ['{"id":"a","vector":[1],"metadata":{"tags":["x"]}}', /^p line 1: metadata\.tags: must be a string, a finite number, a boolean or null$/],
      [JSON.stringify({ id: 'a', vector: [1], metadata: { s: 'x'.repeat(9000) } }), /^p line 1: metadata: is \d+ bytes as JSON; at most 8192$/],
      ['{"id":"a","vector":[1],"payload":{}}', /^p line 1: "payload" is not a field of a point \(known: id, vector, text, metadata\)$/],
      ['{"id":"a","vector":[1]}\n{"id":"a","vector":[2]}', /^p line 2: id: "a" is given twice \(first at p line 1\)$/]
    ]
    for (const [text, message] of refused) expect(() => parsePoints(text, 'p'), text).toThrow(message)
    for (const [text] of refused) expect(() => parsePoints(text, 'p'), text).toThrow(InvalidInputError)
    for (const [text, message] of badPoints) expect(() => parsePoints(text, 'p'), text).toThrow(message)
    for (const [text] of badPoints) expect(() => parsePoints(text, 'p'), text).toThrow(InvalidVectorError)

    const collection = { name: 'docs', dimensions: 2, distance: 'cosine' as const, shard_count: 4, replication_factor: 2, created_epoch: 1, created_at: 0 }
    expect(() => { checkAgainstCollection(parsePoints(lines, 'p.jsonl'), { ...collection, embedding_model: 'm' }) }).not.toThrow()
    expect(() => { checkAgainstCollection(parsePoints(lines, 'p.jsonl'), collection) }).toThrow('p.jsonl line 3: collection "docs" has no embedding model: give vectors, not text')
    expect(() => { checkAgainstCollection(parsePoints('{"id":"a","vector":[1,2,3]}', 'p'), collection) }).toThrow('p line 1: vector has 3 numbers; collection "docs" has 2 dimensions')

    expect(batchesOf([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]])
    expect(batchesOf(Array.from({ length: 2500 }, (_, i) => i), MAX_BATCH).map(b => b.length)).toEqual([1000, 1000, 500])
    expect(batchesOf([], 2)).toEqual([])
  })

  it('renders search results, partial answers, collections and shard tables', () => {
    expect(renderSearch({ results: [{ id: 'a', score: 1, metadata: { lang: 'en' } }, { id: 'b', score: 0.123456, metadata: {} }], partial: false, shards_answered: 4, shards_total: 4 }))
      .toBe('ID  SCORE   METADATA\na   1.0000  {"lang":"en"}\nb   0.1235\n')
    expect(renderSearch({ results: [], partial: true, shards_answered: 3, shards_total: 4 })).toBe('no points found\npartial: 3 of 4 shards answered\n')
    expect(renderSearch({ results: [{ id: 'a', score: 2, metadata: {} }], partial: true, shards_answered: 15, shards_total: 16 })).toMatch(/^a\s+2\.0000\npartial: 15 of 16 shards answered\n$/m)
    expect(renderCollections([])).toBe('no collections\n')

    const node = (c: string): string => `uhCAk${c.repeat(48)}`
    const info: CollectionInfo = {
      name: 'docs', dimensions: 3, distance: 'l2', shard_count: 3, replication_factor: 2, created_epoch: 1, created_at: Date.UTC(2025, 0, 2),
      epoch: 7, count: 12, under_replicated: true,
      shards: [
        { shard: 0, replicas: [{ node_id: node('A'), state: 'serving', live: true, count: 5 }, { node_id: node('B'), state: 'copying', live: false }], under_replicated: false },
        { shard: 1, replicas: [{ node_id: node('A'), state: 'serving', live: true, count: 7 }], under_replicated: true },
        { shard: 2, replicas: [], under_replicated: true }
      ]
    }
    const text = renderCollectionInfo(info, node('A'))
    expect(text).toMatch(/^collection\s+docs$/m)
    expect(text).toMatch(/^embedding_model\s+- \(vectors only\)$/m)
    expect(text).toMatch(/^created_at\s+2025-01-02T00:00:00\.000Z$/m)
    expect(text).toMatch(/^epoch\s+7$/m)
    expect(text).toMatch(/^count\s+12$/m)
    expect(text).toMatch(/^under_replicated\s+yes: 2 of 3 shards have fewer than 2 replicas/m)
    const table = text.slice(text.indexOf('SHARD')).trimEnd().split('\n')
    expect(table).toHaveLength(5)
    expect(table[1]).toMatch(/^0\s+2\/2\s+uhCAkAAAAAAA…AAAAAA \(self\)\s+serving\s+yes\s+5$/)
    expect(table[2]).toMatch(/^\s+uhCAkBBBBBBB…BBBBBB\s+copying\s+no\s+\?$/)
    expect(table[3]).toMatch(/^1\s+1\/2 under-replicated\s+uhCAkAAAAAAA…AAAAAA \(self\)\s+serving\s+yes\s+7$/)
    expect(table[4]).toMatch(/^2\s+0\/2 under-replicated\s+-\s+-\s+-\s+-$/)
    expect(renderCollectionInfo({ ...info, under_replicated: false, shards: [info.shards[0]!] })).toMatch(/^under_replicated\s+no$/m)
  })
})
