/**
 * The memory commands' arguments, declared in commander from the `memory.*` operations' schemas
 * (`memory/schemas.ts`): `memory create | insert | search | info | list | delete`. Each builds its
 * operation's input from the flags and checks it with the operation's input schema before it
 * contacts the node; `memory.ts` runs it.
 *
 * ```
 * flexnode memory create docs --dimensions 384 --embedding-model all-minilm
 * flexnode memory search docs --vector '[0.1, 0.2, 0.3]' -k 5 --filter '{"lang":"en"}'
 * ```
 */
import { resolve } from 'node:path'
import { Argument, type Command, InvalidArgumentError, Option } from 'commander'
import { UsageError } from '../config.ts'
import * as s from '../memory/schemas.ts'
import { DISTANCES, InvalidVectorError, type Filter, type WriteConsistency } from '../memory/types.ts'
import { COLLECTION_NAME, MAX_DIMENSIONS, MAX_EF, MAX_K, MAX_REPLICATION_FACTOR, MAX_SHARD_COUNT, validateFilter, validateVector } from '../memory/validate.ts'
import { addNodeApiOptions, checkedInput, describeField, given, integerArg, nameArg, nodeApiOptionsOf, schemaOption, type CommandContext } from './command-options.ts'
import type { MemoryOptions } from './memory.ts'

/** `-k` of `memory search` when not given. */
export const MEMORY_DEFAULT_K = 10

/** A collection name the node takes (`COLLECTION_NAME`). */
const collectionArg = (value: string): string => {
  if (!COLLECTION_NAME.test(value)) throw new InvalidArgumentError('a collection name is 1..64 letters, digits, _ or -')
  return value
}

/** The memory capability's own check of a flag's value (its field named as the flag), its error a usage error. */
function memoryCheck<T> (flag: string, check: () => T): T {
  try {
    return check()
  } catch (err) {
    if (err instanceof InvalidVectorError) throw new UsageError(err.message, flag)
    throw err
  }
}

/** A JSON flag's value, parsed; malformed JSON is a usage error naming the flag. */
function jsonFlag (value: string, flag: string, example: string): unknown {
  try {
    return JSON.parse(value)
  } catch (err) {
    throw new UsageError(`${flag} must be JSON such as ${example}: ${err instanceof Error ? err.message : String(err)}`, flag)
  }
}

/** `--vector '[0.1, 0.2]'`: a non-empty JSON array of finite numbers (as 32-bit floats too). */
export function parseVectorFlag (value: string): number[] {
  const v = jsonFlag(value, '--vector', "'[0.1, 0.2, 0.3]'")
  if (!Array.isArray(v) || v.length === 0) throw new UsageError(`--vector must be a non-empty JSON array of numbers such as '[0.1, 0.2, 0.3]', got ${JSON.stringify(value.slice(0, 80))}`, '--vector')
  if (v.length > MAX_DIMENSIONS) throw new UsageError(`--vector has ${v.length} numbers; a collection has at most ${MAX_DIMENSIONS} dimensions`, '--vector')
  memoryCheck('--vector', () => validateVector(v, v.length, '--vector'))
  return v as number[]
}

/** `--filter '{"lang":"en","topic":{"in":["a","b"]}}'`: per key, a value or `{"in": [values]}`. */
export function parseFilterFlag (value: string): Filter {
  const f = jsonFlag(value, '--filter', `'{"lang": "en"}'`)
  const filter = memoryCheck('--filter', () => validateFilter(f, '--filter'))
  if (Object.keys(filter).length === 0) throw new UsageError('--filter must name at least one metadata key', '--filter')
  return filter
}

/** Declares `memory` and its actions on `prog`. */
export function addMemoryCommands (prog: Command, ctx: CommandContext): void {
  const run = async (opts: MemoryOptions): Promise<void> => { ctx.done(await (await import('./memory.ts')).memoryCommand(opts)) }
  const memory = prog.command('memory')
    .description('the mesh\'s vector memory: collections of vectors sharded over the nodes, two copies of each shard (memory create|insert|search|info|list|delete)')
  const nameArgument = (): Argument => new Argument('<name>', describeField(s.collectionName)).argParser(collectionArg)
  const c = s.createCollectionInput.shape

  addNodeApiOptions(memory.command('create')
    .description('make a collection (memory.create_collection)')
    .addArgument(nameArgument())
    .addOption(schemaOption('--dimensions <n>', c.dimensions).argParser(integerArg(1, MAX_DIMENSIONS)).makeOptionMandatory())
    .addOption(schemaOption('--distance <d>', c.distance).choices(DISTANCES).default('cosine'))
    .addOption(schemaOption('--shards <n>', c.shard_count).argParser(integerArg(1, MAX_SHARD_COUNT)))
    .addOption(schemaOption('--replication <n>', c.replication_factor).argParser(integerArg(1, MAX_REPLICATION_FACTOR)))
    .addOption(schemaOption('--embedding-model <id>', c.embedding_model).argParser(nameArg)))
    .action(async (name: string, o: { dimensions: number, distance: string, shards?: number, replication?: number, embeddingModel?: string }, cmd: Command) => {
      const config = checkedInput(s.createCollectionInput, {
        name, dimensions: o.dimensions, distance: o.distance, ...given('shard_count', o.shards), ...given('replication_factor', o.replication), ...given('embedding_model', o.embeddingModel)
      })
      await run({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'create', config })
    })

  addNodeApiOptions(memory.command('insert')
    .description(`write points, inserted or replaced by id (memory.insert), read as JSON lines {"id", "vector" | "text", "metadata"?} or one JSON array, from a file or stdin, sent in batches; prints the count written`)
    .addArgument(nameArgument())
    .addArgument(new Argument('[-]', 'read the points from stdin, as --file - does').choices(['-']))
    .addOption(new Option('--file <file>', 'the points, JSON lines or a JSON array; - or no --file: stdin'))
    .addOption(schemaOption('--consistency <c>', s.writeConsistency).choices(s.writeConsistency.options)))
    .action(async (collection: string, stdin: string | undefined, o: { file?: string, consistency?: string }, cmd: Command) => {
      if (stdin !== undefined && o.file !== undefined) throw new UsageError('give the points as --file <file> or as -, not both', '--file')
      if (o.file !== undefined && o.file.trim() === '') throw new UsageError('--file must name a file (or - for stdin)', '--file')
      await run({
        ...nodeApiOptionsOf(cmd, ctx.env()), action: 'insert', collection, ...given('file', o.file === undefined || o.file === '-' ? undefined : resolve(o.file)), ...given('writeConsistency', o.consistency as WriteConsistency | undefined)
      })
    })

  const q = s.searchBody.shape
  addNodeApiOptions(memory.command('search')
    .description('the nearest points (id, score, metadata) (memory.search); says when some shards did not answer')
    .addArgument(nameArgument())
    .addOption(schemaOption('--vector <json>', q.vector, ', a JSON array: \'[0.1, 0.2, 0.3]\'').argParser(parseVectorFlag))
    .addOption(schemaOption('--text <text>', q.text))
    .addOption(schemaOption('-k <n>', q.k).argParser(integerArg(1, MAX_K)).default(MEMORY_DEFAULT_K))
    .addOption(schemaOption('--ef <n>', q.ef).argParser(integerArg(1, MAX_EF)))
    .addOption(schemaOption('--filter <json>', q.filter, ': \'{"lang": "en"}\'').argParser(parseFilterFlag)))
    .action(async (collection: string, o: { vector?: number[], text?: string, k: number, ef?: number, filter?: Filter }, cmd: Command) => {
      if ((o.vector === undefined) === (o.text === undefined)) throw new UsageError(o.vector === undefined ? 'search needs --vector <json> or --text <text>' : 'give --vector or --text, not both', o.vector === undefined ? '--vector' : '--text')
      if (o.text !== undefined && o.text.trim() === '') throw new UsageError('--text must not be empty', '--text')
      if (o.ef !== undefined && o.ef < o.k) throw new UsageError(`--ef must be at least -k (${o.k}), got ${o.ef}`, '--ef')
      const { collection: _, ...query } = checkedInput(s.searchInput, {
        collection, k: o.k, ...given('vector', o.vector), ...given('text', o.text), ...given('ef', o.ef), ...given('filter', o.filter)
      })
      await run({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'search', collection, query: query as Extract<MemoryOptions, { action: 'search' }>['query'] })
    })

  for (const [action, description] of [
    ['info', 'the collection, its ring epoch, count and every shard\'s replicas: node, state, live, count (memory.info)'],
    ['delete', 'delete a collection and its points']
  ] as const) {
    addNodeApiOptions(memory.command(action).description(description).addArgument(nameArgument()))
      .action(async (name: string, _o: unknown, cmd: Command) => {
        const { name: collection } = checkedInput(s.collectionInput, { name })
        await run({ ...nodeApiOptionsOf(cmd, ctx.env()), action, collection })
      })
  }

  addNodeApiOptions(memory.command('list').description('the collections (memory.list_collections)'))
    .action(async (_o: unknown, cmd: Command) => { await run({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'list' }) })
}
