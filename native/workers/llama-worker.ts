/**
 * A piscina worker that serves one GGUF model: it loads the model and one context with N
 * sequences (task `load`), then runs `chat`, `complete`, `embed` and `tokenize` tasks on them.
 * Generated text streams back over the task's MessagePort as `{t}` messages; an `{abort: true}`
 * message on that port stops the generation. The pool facade (`agent/src/inference/llama-pool.ts`)
 * keeps at most N generations in flight, so a free sequence always exists here.
 */
import '../../agent/src/polyfill.ts'
import type { MessagePort } from 'node:worker_threads'
import {
  getLlama, LlamaChatSession, LlamaCompletion, LlamaLogLevel, resolveChatWrapper,
  type ChatHistoryItem, type ChatWrapper, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaEmbeddingContext, type LlamaModel, type Token
} from 'node-llama-cpp'

export interface LoadTask { op: 'load', modelPath: string, contextSize: number, threads: number, sequences: number, gpu: boolean, port: MessagePort }
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
  port: MessagePort
}
export interface EmbedTask { op: 'embed', input: string[] }
export interface TokenizeTask { op: 'tokenize', texts: string[] }
export interface DisposeTask { op: 'dispose' }
export type LlamaTask = LoadTask | GenerateTask | EmbedTask | TokenizeTask | DisposeTask

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

async function load (t: LoadTask): Promise<{ contextSize: number }> {
  llama ??= await getLlama({ gpu: t.gpu ? 'auto' : false, build: 'never', logLevel: LlamaLogLevel.error })
  model = await llama.loadModel({ modelPath: t.modelPath, gpuLayers: llama.gpu === false ? 0 : 'auto', onLoadProgress: (p) => { t.port.postMessage({ progress: p }) } })
  context = await model.createContext({ contextSize: t.contextSize, sequences: t.sequences, threads: t.threads })
  for (let i = 0; i < t.sequences; i++) free.push(context.getSequence())
  contextSize = context.contextSize
  threads = t.threads
  chatWrapper = resolveChatWrapper(model)
  t.port.close()
  return { contextSize }
}

async function generate (t: GenerateTask): Promise<GenerateOutcome> {
  if (model === undefined || context === undefined) throw new Error('the model is not loaded in this worker')
  const seq = free.pop()
  if (seq === undefined) throw new Error('no free sequence (the pool admitted too many requests)')
  const ac = new AbortController()
  t.port.on('message', (m: { abort?: boolean }) => { if (m.abort === true) ac.abort() })
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
    signal: ac.signal,
    customStopTriggers: t.stop,
    onTextChunk: (text: string) => {
      if (echo) { echo = false; return }
      if (firstTokenAt === null && prefixContext !== undefined && firstTokens !== undefined && !/^\s/.test(text)) {
        lead = /^\s+/.exec(model!.detokenize(firstTokens, false, prefixContext))?.[0] ?? ''
        text = lead + text
      }
      firstTokenAt ??= Date.now()
      t.port.postMessage({ t: text })
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
    // the end marker follows every chunk on the same (FIFO) port, so the pool knows it has them all
    t.port.postMessage({ end: true })
    t.port.close()
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
  if (model === undefined) throw new Error('the model is not loaded in this worker')
  embedding ??= model.createEmbeddingContext({ contextSize, threads })
  const ctx = await embedding
  const out: number[][] = []
  for (const s of t.input) out.push([...(await ctx.getEmbeddingFor(s)).vector])
  return out
}

export default async function task (t: LlamaTask): Promise<unknown> {
  switch (t.op) {
    case 'load': return await load(t)
    case 'chat':
    case 'complete': return await generate(t)
    case 'embed': return await embed(t)
    case 'tokenize': {
      if (model === undefined) throw new Error('the model is not loaded in this worker')
      return t.texts.map(s => model!.tokenize(s).length)
    }
    case 'dispose': {
      await (await embedding?.catch(() => undefined))?.dispose()
      await context?.dispose()
      await model?.dispose()
      model = undefined
      context = undefined
      return null
    }
  }
}
