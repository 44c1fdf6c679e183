/**
 * The artifact commands' arguments, declared in commander from the `artifacts.*` operations'
 * schemas (`artifacts/schemas.ts`): `pin <file>`, `get <cid>`, `artifacts [list] | providers |
 * pin | unpin`. Each checks its input with the schema the node checks it with (the upload's query
 * for `pin`, the operation's input otherwise) before it contacts the node; `artifacts.ts` runs it.
 *
 * ```
 * flexnode pin build.tar --cid-version 1
 * flexnode get bafy… -o build.tar
 * ```
 */
import { resolve } from 'node:path'
import { Argument, type Command, InvalidArgumentError, Option } from 'commander'
import * as s from '../artifacts/schemas.ts'
import type { ArtifactsOptions, GetOptions, PinOptions } from '../config.ts'
import { addNodeApiOptions, checkedInput, describeField, given, integerArg, nodeApiOptionsOf, nonEmptyArg, schemaOption, type CommandContext } from './command-options.ts'

const chunkerArg = (value: string): string => {
  if (!/^size-\d{1,9}$/.test(value)) throw new InvalidArgumentError('must be size-<bytes>, e.g. size-262144')
  return value
}

const cidArgument = (): Argument => new Argument('<cid>', describeField(s.cid)).argParser(nonEmptyArg)

/** Declares `pin`, `get` and `artifacts` on `prog`. */
export function addArtifactCommands (prog: Command, ctx: CommandContext): void {
  const add = s.addInput.shape
  addNodeApiOptions(prog.command('pin')
    .description('add a file to the mesh\'s artifact store (IPFS), pinned on this node, and record it (artifacts.add); prints its CID. The upload streams (progress on stderr); CIDs match Kubo\'s `ipfs add` for the same options')
    .addArgument(new Argument('<file>', 'the file to add').argParser(nonEmptyArg))
    .addOption(schemaOption('--name <name>', add.name, ' (default: the file\'s base name)').argParser(nonEmptyArg))
    .addOption(schemaOption('--media-type <type/subtype>', add.media_type).argParser(nonEmptyArg))
    .addOption(schemaOption('--cid-version <0|1>', add.cid_version).choices(['0', '1']))
    .addOption(schemaOption('--raw-leaves', add.raw_leaves))
    .addOption(schemaOption('--chunker <size-N>', add.chunker).argParser(chunkerArg))
    .addOption(schemaOption('--min <n>', add.min).argParser(integerArg(1, 64)))
    .addOption(schemaOption('--max <n>', add.max).argParser(integerArg(1, 64))))
    .action(async (file: string, o: { name?: string, mediaType?: string, cidVersion?: '0' | '1', rawLeaves?: boolean, chunker?: string, min?: number, max?: number }, cmd: Command) => {
      const path = resolve(file)
      // the upload's query, as POST /v1/artifacts checks it
      checkedInput(s.uploadQuery, {
        name: o.name ?? path, ...given('media_type', o.mediaType), ...given('cid_version', o.cidVersion), ...(o.rawLeaves === true ? { raw_leaves: 'true' } : {}),
        ...given('chunker', o.chunker), ...given('min', o.min === undefined ? undefined : String(o.min)), ...given('max', o.max === undefined ? undefined : String(o.max))
      })
      const opts: PinOptions = {
        ...nodeApiOptionsOf(cmd, ctx.env()),
        file: path,
        ...given('name', o.name),
        ...given('mediaType', o.mediaType),
        ...given('cidVersion', o.cidVersion === undefined ? undefined : Number(o.cidVersion) as 0 | 1),
        ...(o.rawLeaves === true ? { rawLeaves: true } : {}),
        ...given('chunker', o.chunker),
        ...given('min', o.min),
        ...given('max', o.max)
      }
      ctx.done(await (await import('./artifacts.ts')).pinCommand(opts))
    })

  addNodeApiOptions(prog.command('get')
    .description('fetch an artifact by its CID (from this node, else from the mesh), verified block by block, to stdout or to a file (progress on stderr) (artifacts.get)')
    .addArgument(cidArgument())
    .addOption(new Option('-o, --output <file>', 'write to this file instead of stdout').argParser(nonEmptyArg)))
    .action(async (cid: string, o: { output?: string }, cmd: Command) => {
      checkedInput(s.cidInput, { cid })
      const opts: GetOptions = { ...nodeApiOptionsOf(cmd, ctx.env()), cid, ...given('output', o.output === undefined ? undefined : resolve(o.output)) }
      ctx.done(await (await import('./artifacts.ts')).getCommand(opts))
    })

  const artifacts = prog.command('artifacts')
    .description('the mesh\'s artifact records (CID, name, size, producer), who provides one, pin or unpin one here (artifacts list|providers|pin|unpin)')
  const run = async (opts: ArtifactsOptions): Promise<void> => { ctx.done(await (await import('./artifacts.ts')).artifactsCommand(opts)) }
  addNodeApiOptions(artifacts.command('list', { isDefault: true })
    .description('the mesh\'s artifact records (artifacts.list; the default)')
    .addOption(schemaOption('--limit <n>', s.listInput.shape.limit).argParser(integerArg(1, 10_000))))
    .action(async (o: { limit?: number }, cmd: Command) => {
      const { limit } = checkedInput(s.listInput, { ...given('limit', o.limit) })
      await run({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'list', limit })
    })
  for (const [action, description] of [
    ['providers', 'the nodes that provide an artifact, and whether they are live (artifacts.providers)'],
    ['pin', 'pin an artifact on this node (artifacts.pin)'],
    ['unpin', 'unpin an artifact on this node (artifacts.unpin)']
  ] as const) {
    addNodeApiOptions(artifacts.command(action).description(description).addArgument(cidArgument()))
      .action(async (cid: string, _o: unknown, cmd: Command) => {
        checkedInput(s.cidInput, { cid })
        await run({ ...nodeApiOptionsOf(cmd, ctx.env()), action, cid })
      })
  }
}
