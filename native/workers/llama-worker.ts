/**
 * The worker module that serves one GGUF model, run by a `ProcessPool` (`native/pool.ts`) in a
 * child process of the node (`agent/src/inference/llama-pool.ts`): task `load` loads the model and
 * one context with N sequences, then `chat`, `complete`, `embed` and `tokenize` tasks run on them.
 * llama.cpp runs only here, so a native abort (a GGML_ASSERT, an exception escaping a native
 * callback) ends this process, never the node, which sees the exit and unloads the model.
 *
 * Progress comes back as events: `{ type: 'flexnode:model:load', progress }` while loading and
 * `{ type: 'flexnode:model:text', text }` for each generated piece of text; llama.cpp's log lines
 * go to the pool's logger. A task's abort is its own signal. The pool's owner keeps at most N
 * generations in flight, so a free sequence always exists here.
 */
import '../../agent/src/polyfill.ts'
import {
  getLlama, LlamaChatSession, LlamaCompletion, LlamaLogLevel, resolveChatWrapper,
  type ChatHistoryItem, type ChatWrapper, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaEmbeddingContext, type LlamaModel, type Token
} from 'node-llama-cpp'
import type { TaskContext, TaskHandler } from './task.ts'
import { FlexnodeError } from '../../lib/errors.ts'

/** A task came to this model process in a state it cannot serve (no model loaded, no free sequence). */
export class ModelProcessStateError extends FlexnodeError {
  static override readonly name = 'ModelProcessStateError'
}

export interface LoadTask {
  op: 'load'
  modelPath: string
  contextSize: number
  threads: number
  sequences: number
  gpu: boolean
  /** layers offloaded to the GPU: the number the parent's memory estimate used */
  gpuLayers: number
  /** llama.cpp's log lines at this level and above go to the pool's logger. @default 'warn' */
  logLevel?: 'error' | 'warn' | 'info' | 'debug'
}
export interface GenerateTask {
  op: 'chat' | 'complete'
  history?: ChatHistoryItem[]
  prompt: string
  maxTokens: number
  temperature: number
  seed?: number
  stop?: string[]
  /** continue a model response that already begins with this text (another node's partial answer); only the new text is streamed and returned */
  continueFrom?: string
}
export interface EmbedTask { op: 'embed', input: string[] }
export interface TokenizeTask { op: 'tokenize', texts: string[] }
export type LlamaTask = LoadTask | GenerateTask | EmbedTask | TokenizeTask

export type LlamaEvent =
  | { type: 'flexnode:model:load', progress: number }
  | { type: 'flexnode:model:text', text: string }

export interface LoadOutcome { contextSize: number, gpuLayers: number }
export interface GenerateOutcome { text: string, stop: string, tokens: number, firstTokenAt: number | null }

let llama: Llama | undefined
let model: LlamaModel | undefined
let context: LlamaContext | undefined
let embedding: Promise<LlamaEmbeddingContext> | undefined
/** the model's chat template, resolved once at load (resolving it per session costs 0.5-2 s) */
let chatWrapper: ChatWrapper | undefined
const free: LlamaContextSequence[] = []
let contextSize = 0
let threads = 1

type Context = TaskContext<LlamaEvent>

async function load (t: LoadTask, ctx: Context): Promise<LoadOutcome> {
  llama ??= await getLlama({
    gpu: t.gpu ? 'auto' : false,
    build: 'never',
    logLevel: LlamaLogLevel[t.logLevel ?? 'warn'],
    logger: (level, message) => {
      const text = message.trim()
      if (text.length === 0) return
      const log = level === LlamaLogLevel.error || level === LlamaLogLevel.fatal ? 'error' : level === LlamaLogLevel.warn ? 'warn' : 'debug'
      ctx.log(log, text, { source: 'llama.cpp' })
    }
  })
  model = await llama.loadModel({
    modelPath: t.modelPath,
    gpuLayers: llama.gpu === false ? 0 : t.gpuLayers,
    loadSignal: ctx.signal,
    onLoadProgress: (progress) => { ctx.progress({ type: 'flexnode:model:load', progress }) }
  })
  context = await model.createContext({ contextSize: t.contextSize, sequences: t.sequences, threads: t.threads })
  for (let i = 0; i < t.sequences; i++) free.push(context.getSequence())
  contextSize = context.contextSize
  threads = t.threads
  chatWrapper = resolveChatWrapper(model)
  return { contextSize, gpuLayers: model.gpuLayers }
}

async function generate (t: GenerateTask, ctx: Context): Promise<GenerateOutcome> {
  if (model === undefined || context === undefined) throw new ModelProcessStateError('the model is not loaded in this process')
  const seq = free.pop()
  if (seq === undefined) throw new ModelProcessStateError('no free sequence (the pool admitted too many requests)')
  let tokens = 0
  let firstTokenAt: number | null = null
  // chat continuation: node-llama-cpp echoes the response prefix once (text and tokens) before generating
  let echo = t.op === 'chat' && t.continueFrom !== undefined && t.continueFrom !== ''
  let echoTokens = echo
  // a continuation's first token is detokenized without its leading space (as at the start of an
  // answer); detokenizing it after the prefix's last tokens gives the text it has mid-answer
  const prefixContext = t.continueFrom !== undefined && t.continueFrom !== '' ? model.tokenize(t.continueFrom).slice(-16) : undefined
  let firstTokens: Token[] | undefined
  let lead = ''
  const common = {
    maxTokens: t.maxTokens,
    temperature: t.temperature,
    seed: t.seed,
    signal: ctx.signal,
    customStopTriggers: t.stop,
    onTextChunk: (text: string) => {
      if (echo) { echo = false; return }
      if (firstTokenAt === null && prefixContext !== undefined && firstTokens !== undefined && !/^\s/.test(text)) {
        lead = /^\s+/.exec(model!.detokenize(firstTokens, false, prefixContext))?.[0] ?? ''
        text = lead + text
      }
      firstTokenAt ??= Date.now()
      ctx.progress({ type: 'flexnode:model:text', text })
    },
    onToken: (tk: readonly Token[]) => {
      if (echoTokens) { echoTokens = false; return }
      firstTokens ??= [...tk]
      tokens += tk.length
    }
  }
  try {
    if (t.op === 'chat') {
      const session = new LlamaChatSession({ contextSequence: seq, autoDisposeSequence: false, chatWrapper })
      try {
        if (t.history !== undefined && t.history.length > 0) session.setChatHistory([...t.history])
        const prefix = t.continueFrom ?? ''
        const r = await session.promptWithMeta(t.prompt, prefix === '' ? common : { ...common, responsePrefix: prefix })
        const text = prefix !== '' && r.responseText.startsWith(prefix) ? r.responseText.slice(prefix.length) : r.responseText
        return { text: lead + text.slice(text.startsWith(lead) ? lead.length : 0), stop: r.stopReason, tokens, firstTokenAt }
      } finally {
        session.dispose({ disposeSequence: false })
      }
    }
    const completion = new LlamaCompletion({ contextSequence: seq })
    try {
      const r = await completion.generateCompletionWithMeta(t.prompt + (t.continueFrom ?? ''), common)
      return { text: lead + r.response.slice(r.response.startsWith(lead) ? lead.length : 0), stop: r.metadata.stopReason, tokens, firstTokenAt }
    } finally {
      completion.dispose({ disposeSequence: false })
    }
  } finally {
    let next = seq
    try {
      await seq.clearHistory()
    } catch {
      seq.dispose()
      next = context.getSequence()
    }
    free.push(next)
  }
}

async function embed (t: EmbedTask): Promise<number[][]> {
  if (model === undefined) throw new ModelProcessStateError('the model is not loaded in this process')
  embedding ??= model.createEmbeddingContext({ contextSize, threads })
  const ctx = await embedding
  const out: number[][] = []
  for (const s of t.input) out.push([...(await ctx.getEmbeddingFor(s)).vector])
  return out
}

/** Free the model (the pool runs this before it lets the process go). */
export async function dispose (): Promise<void> {
  await (await embedding?.catch(() => undefined))?.dispose()
  await context?.dispose()
  await model?.dispose()
  model = undefined
  context = undefined
}

export const handler: TaskHandler<LlamaTask, unknown, LlamaEvent> = async (t, ctx) => {
  switch (t.op) {
    case 'load': return await load(t, ctx)
    case 'chat':
    case 'complete': return await generate(t, ctx)
    case 'embed': return await embed(t)
    case 'tokenize': {
      if (model === undefined) throw new ModelProcessStateError('the model is not loaded in this process')
      return t.texts.map(s => model!.tokenize(s).length)
    }
  }
}
