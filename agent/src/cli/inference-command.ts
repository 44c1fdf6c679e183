/**
 * The inference commands' arguments, declared in commander from the `inference.*` operations'
 * schemas (`inference/schemas.ts`): `models [list] | load | unload | publish | pull`, `infer`,
 * `moe`. Each builds its operation's input from the flags and checks it with the operation's
 * input schema before it contacts the node; `inference.ts` (and `artifacts.ts` for publish and
 * pull) runs it.
 *
 * ```
 * flexnode infer "Hello" --model tiny-llama --stream
 * flexnode moe "Why is the sky blue?" --task-type reasoning --json
 * ```
 */
import { Argument, type Command, InvalidArgumentError, Option } from 'commander'
import { UsageError, type InferOptions, type ModelsOptions, type MoeOptions } from '../config.ts'
import { MAX_TEMPERATURE, MOE_TASK_TYPES } from '../http/constants.ts'
import * as s from '../inference/schemas.ts'
import { addNodeApiOptions, checkedInput, describeField, given, integerArg, nameArg, nodeApiOptionsOf, nonEmptyArg, schemaOption, type CommandContext } from './command-options.ts'

/** Largest number --max-tokens spells here; its range is the schema's check (and the model's limit the node's). */
const CLI_MAX_TOKENS = 999_999_999

const temperatureArg = (value: string): number => {
  if (!/^\d{1,3}(\.\d{1,6})?$/.test(value) || Number(value) > MAX_TEMPERATURE) throw new InvalidArgumentError(`must be a number from 0 to ${MAX_TEMPERATURE}`)
  return Number(value)
}

const seedArg = (value: string): number => {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer')
  return Number(value)
}

const promptArgument = (): Argument => new Argument('<prompt>', `${describeField(s.singleQueryInput.shape.prompt)} (one argument: quote it)`).argParser(nonEmptyArg)

/** Declares `models`, `infer` and `moe` on `prog`. */
export function addInferenceCommands (prog: Command, ctx: CommandContext): void {
  const models = prog.command('models')
    .description('the running node\'s models: list them, load, unload, publish or pull one (models list|load|unload|publish|pull)')
  const runModels = async (opts: ModelsOptions): Promise<void> => {
    ctx.done(opts.action === 'pull' || opts.action === 'publish'
      ? await (await import('./artifacts.ts')).modelArtifactCommand(opts)
      : await (await import('./inference.ts')).modelsCommand(opts))
  }
  addNodeApiOptions(models.command('list', { isDefault: true }).description('id, loaded, size, context, tokens/s of each model (the default)'))
    .action(async (_o: unknown, cmd: Command) => { await runModels({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'list' }) })
  const idArgument = (): Argument => new Argument('<id>', describeField(s.modelId)).argParser(nonEmptyArg)
  for (const [action, description] of [
    ['load', 'load a model (inference.load_model); its progress on stderr, then "loaded <id>"'],
    ['unload', 'unload a model (inference.unload_model)']
  ] as const) {
    addNodeApiOptions(models.command(action).description(description).addArgument(idArgument()))
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const input = checkedInput(action === 'load' ? s.loadModelInput : s.unloadModelInput, { id })
        await runModels({ ...nodeApiOptionsOf(cmd, ctx.env()), action, id: input.id })
      })
  }
  addNodeApiOptions(models.command('publish')
    .description('add a model\'s file to the mesh\'s artifact store and record it; prints its CID')
    .addArgument(idArgument()))
    .action(async (id: string, _o: unknown, cmd: Command) => { await runModels({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'publish', id }) })
  addNodeApiOptions(models.command('pull')
    .description('fetch a published model from the mesh by its CID (progress on stderr), check it against its record, place it in the models dir')
    .addArgument(new Argument('<cid>', 'the model\'s CID, as publish printed it').argParser(nonEmptyArg))
    .option('--load', 'load the model once it is in place'))
    .action(async (cid: string, o: { load?: boolean }, cmd: Command) => {
      await runModels({ ...nodeApiOptionsOf(cmd, ctx.env()), action: 'pull', cid, load: o.load === true })
    })

  const single = s.singleQueryInput.shape
  addNodeApiOptions(prog.command('infer')
    .description('ask the running node one prompt: with --model that model answers (chat completions), without it the mesh picks the model and the node (inference.single_query)')
    .addArgument(promptArgument())
    .addOption(schemaOption('--model <id>', single.model).argParser(nameArg))
    .addOption(schemaOption('--max-tokens <n>', single.max_tokens).argParser(integerArg(1, CLI_MAX_TOKENS)))
    .addOption(new Option('--temperature <t>', `sampling temperature 0..${MAX_TEMPERATURE}, 0 = greedy (needs --model)`).argParser(temperatureArg))
    .addOption(new Option('--seed <n>', 'sampling seed (needs --model)').argParser(seedArg))
    .option('--stream', 'print the answer as it is generated (needs --model; with --json, one JSON chunk per line)'))
    .action(async (prompt: string, o: { model?: string, maxTokens?: number, temperature?: number, seed?: number, stream?: boolean }, cmd: Command) => {
      if (o.model === undefined) {
        // inference.single_query takes a prompt and max_tokens only
        for (const [flag, isGiven] of [['--stream', o.stream === true], ['--temperature', o.temperature !== undefined], ['--seed', o.seed !== undefined]] as const) {
          if (isGiven) throw new UsageError(`${flag} needs --model (without it the mesh picks the model)`, flag)
        }
      }
      checkedInput(s.singleQueryInput, { prompt, ...given('model', o.model), ...given('max_tokens', o.maxTokens) })
      const opts: InferOptions = {
        ...nodeApiOptionsOf(cmd, ctx.env()), prompt, stream: o.stream === true, ...given('model', o.model), ...given('maxTokens', o.maxTokens), ...given('temperature', o.temperature), ...given('seed', o.seed)
      }
      ctx.done(await (await import('./inference.ts')).inferCommand(opts))
    })

  const moe = s.moeQueryInput.shape
  addNodeApiOptions(prog.command('moe')
    .description('ask several (model, node) pairs of the mesh at once and reduce their answers by weighted consensus (inference.moe_query); prints the answer, the consensus and every model\'s vote')
    .addArgument(promptArgument())
    .addOption(schemaOption('--task-type <type>', moe.task_type).choices(MOE_TASK_TYPES).makeOptionMandatory())
    .addOption(schemaOption('--max-tokens <n>', moe.max_tokens).argParser(integerArg(1, CLI_MAX_TOKENS)))
    .addOption(schemaOption('--policy <name>', moe.policy_override).argParser(nameArg))
    .addOption(schemaOption('--no-consensus', moe.require_consensus, '; this flag turns it off')))
    .action(async (prompt: string, o: { taskType: MoeOptions['taskType'], maxTokens?: number, policy?: string, consensus: boolean }, cmd: Command) => {
      checkedInput(s.moeQueryInput, { prompt, task_type: o.taskType, require_consensus: o.consensus, ...given('max_tokens', o.maxTokens), ...given('policy_override', o.policy) })
      const opts: MoeOptions = { ...nodeApiOptionsOf(cmd, ctx.env()), prompt, taskType: o.taskType, requireConsensus: o.consensus, ...given('maxTokens', o.maxTokens), ...given('policy', o.policy) }
      ctx.done(await (await import('./inference.ts')).moeCommand(opts))
    })
}
