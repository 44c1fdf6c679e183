/**
 * The resources commands' arguments, declared in commander from the `resources.*` operations'
 * schemas (`resources/schemas.ts`): `allocate`, `release`, `renew`, `available`, `allocations`,
 * `task run`. Each builds its operation's input from the flags and checks it with the operation's
 * input schema before it contacts the node; `resources.ts` runs it.
 *
 * ```
 * flexnode allocate --type compute --cpu-cores 2 --duration 600 --explain
 * flexnode task run hello.wasm --input in.txt --cpu-ms 2000 > out.txt
 * ```
 */
import { resolve } from 'node:path'
import { Argument, type Command, Option } from 'commander'
import * as s from '../resources/schemas.ts'
import { LOCALITY_PREFERENCES } from '../../../scheduler/src/placement.ts'
import { LEASE_LIMITS, LEASE_RESOURCE_TYPES } from '../../../zomes-ts/resource_mesh/types.ts'
import {
  addNodeApiOptions, amountArg, checkedInput, describeField, given, integerArg, nameArg, nodeApiOptionsOf, nonEmptyArg, schemaOption, type CommandContext
} from './command-options.ts'

/** Largest number a limit flag takes here; the schema checks each limit's own maximum. */
const CLI_MAX_COUNT = 999_999_999
const durationArg = integerArg(LEASE_LIMITS.minLeaseSeconds, LEASE_LIMITS.maxLeaseSeconds)
const req = s.requirements.shape

interface RequirementValues { cpuCores?: number, memoryGb?: number, gpu?: boolean, storageGb?: number, model?: string }

/** The requirement flags of `allocate` and `available`. */
function addRequirementOptions (cmd: Command): Command {
  return cmd
    .addOption(schemaOption('--cpu-cores <n>', req.cpu_cores).argParser(amountArg))
    .addOption(schemaOption('--memory-gb <n>', req.memory_gb).argParser(amountArg))
    .addOption(schemaOption('--gpu', req.gpu))
    .addOption(schemaOption('--storage-gb <n>', req.storage_gb).argParser(amountArg))
    .addOption(schemaOption('--model <name>', req.model_name).argParser(nameArg))
}

const requirementsOf = (o: RequirementValues): Record<string, unknown> => ({
  ...given('cpu_cores', o.cpuCores), ...given('memory_gb', o.memoryGb), ...(o.gpu === true ? { gpu: true } : {}), ...given('storage_gb', o.storageGb), ...given('model_name', o.model)
})

const typeOption = (): Option => schemaOption('--type <type>', s.resourceType).choices(LEASE_RESOURCE_TYPES)
const explainOption = (more = ''): Option => schemaOption('--explain', s.allocateInput.shape.explain, more)

/** Declares the resources commands on `prog`. */
export function addResourceCommands (prog: Command, ctx: CommandContext): void {
  const run = async (load: () => Promise<number>): Promise<void> => { ctx.done(await load()) }
  const a = s.allocateInput.shape

  addNodeApiOptions(addRequirementOptions(prog.command('allocate')
    .description('lease resources of the mesh, placed by the scheduler (resources.allocate); prints the lease: allocation id, node, endpoint, expiry')
    .addOption(typeOption().makeOptionMandatory()))
    .addOption(schemaOption('--locality <preference>', a.locality_preference).choices(LOCALITY_PREFERENCES))
    .addOption(schemaOption('--duration <s>', a.duration_seconds).argParser(durationArg))
    .addOption(schemaOption('--workload-class <class>', a.workload_class).argParser(nameArg))
    .addOption(schemaOption('--node <id>', a.node_id).argParser(nameArg))
    .addOption(explainOption()), { nodeIsUrl: false })
    .action(async (o: RequirementValues & { type: string, locality?: string, duration?: number, workloadClass?: string, node?: string, explain?: boolean }, cmd: Command) => {
      const input = checkedInput(s.allocateInput, {
        resource_type: o.type,
        requirements: requirementsOf(o),
        explain: o.explain === true,
        ...given('locality_preference', o.locality),
        ...given('duration_seconds', o.duration),
        ...given('workload_class', o.workloadClass),
        ...given('node_id', o.node)
      })
      const opts = nodeApiOptionsOf(cmd, ctx.env(), { nodeIsUrl: false })
      await run(async () => await (await import('./resources.ts')).allocateCommand({ ...opts, input }))
    })

  const allocationId = (field: typeof s.releaseInput.shape.allocation_id): Argument =>
    new Argument('<allocation_id>', field.description).argParser(nonEmptyArg)

  addNodeApiOptions(prog.command('release')
    .description('end a lease this node holds (or granted) before its expiry (resources.release)')
    .addArgument(allocationId(s.releaseInput.shape.allocation_id)))
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const input = checkedInput(s.releaseInput, { allocation_id: id })
      const opts = nodeApiOptionsOf(cmd, ctx.env())
      await run(async () => await (await import('./resources.ts')).releaseCommand({ ...opts, input }))
    })

  addNodeApiOptions(prog.command('renew')
    .description('extend a lease this node holds; it continues under a new allocation id')
    .addArgument(allocationId(s.renewInput.shape.allocation_id))
    .addOption(schemaOption('--duration <s>', s.renewInput.shape.duration_seconds).argParser(durationArg).makeOptionMandatory()))
    .action(async (id: string, o: { duration: number }, cmd: Command) => {
      const input = checkedInput(s.renewInput, { allocation_id: id, duration_seconds: o.duration })
      const opts = nodeApiOptionsOf(cmd, ctx.env())
      await run(async () => await (await import('./resources.ts')).renewCommand({ ...opts, input }))
    })

  addNodeApiOptions(addRequirementOptions(prog.command('available')
    .description('what the mesh\'s nodes offer, have leased and have free, per node and in total (resources.query_available); with requirements, only the nodes that could hold them')
    .addOption(typeOption())))
    .action(async (o: RequirementValues & { type?: string }, cmd: Command) => {
      const input = checkedInput(s.queryAvailableInput, { requirements: requirementsOf(o), ...given('resource_type', o.type) })
      const opts = nodeApiOptionsOf(cmd, ctx.env())
      await run(async () => await (await import('./resources.ts')).availableCommand({ ...opts, input }))
    })

  addNodeApiOptions(prog.command('allocations')
    .description('this node\'s leases: those it holds (as requester) and those it granted (as provider)'))
    .action(async (_o: unknown, cmd: Command) => {
      const opts = nodeApiOptionsOf(cmd, ctx.env())
      await run(async () => await (await import('./resources.ts')).allocationsCommand(opts))
    })

  const limits = s.wasmLimits.shape
  const task = prog.command('task').description('run a WebAssembly task on the mesh; its output goes to stdout (task run <file.wasm>)')
  addNodeApiOptions(task.command('run')
    .description('run a WebAssembly module on the mesh (resources.schedule_task): a compute lease is placed, the module runs under it, the lease is released. ' +
      'The task\'s output goes to stdout as it is and the command exits with the task\'s exit code (255 for codes outside 0..255); a task that fails exits 1 naming its error')
    .addArgument(new Argument('<file.wasm>', 'the module\'s file').argParser(nonEmptyArg))
    .addOption(new Option('--input <file>', `the file ${describeInput()} (default: empty)`).argParser(nonEmptyArg))
    .addOption(schemaOption('--memory-mb <n>', limits.memory_mb).argParser(integerArg(1, CLI_MAX_COUNT)))
    .addOption(schemaOption('--cpu-ms <n>', limits.cpu_ms).argParser(integerArg(1, CLI_MAX_COUNT)))
    .addOption(schemaOption('--wall-ms <n>', limits.wall_ms).argParser(integerArg(1, CLI_MAX_COUNT)))
    .addOption(schemaOption('--node <id>', s.scheduleTaskInput.shape.node_id).argParser(nameArg))
    .addOption(explainOption(' (on stderr; in the JSON with --json)')), { nodeIsUrl: false })
    .action(async (file: string, o: { input?: string, memoryMb?: number, cpuMs?: number, wallMs?: number, node?: string, explain?: boolean }, cmd: Command) => {
      const opts = nodeApiOptionsOf(cmd, ctx.env(), { nodeIsUrl: false })
      const limits = { ...given('memory_mb', o.memoryMb), ...given('cpu_ms', o.cpuMs), ...given('wall_ms', o.wallMs) }
      await run(async () => await (await import('./resources.ts')).taskRunCommand({
        ...opts, file: resolve(file), ...given('input', o.input === undefined ? undefined : resolve(o.input)), limits, explain: o.explain === true, ...given('node', o.node)
      }))
    })
}

/** `--input`'s text: the schema's own words for the task's input (without its encoding, the CLI reads a file). */
function describeInput (): string {
  return `whose bytes are ${describeField(s.scheduleTaskInput.shape.input_base64).replace(/, standard base64.*$/, '')}`
}
