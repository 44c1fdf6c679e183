/**
 * The mesh inference operations' schemas (CONTRACTS §11.5), described once: the MCP tools
 * `inference.*` (`agent/src/api/operations.ts`) and the HTTP routes `POST /v1/moe/query`,
 * `POST /v1/inference/single`, `POST /v1/models/{id}/load|unload` parse with them. A refused
 * request is an `InvalidRequestError` naming its `param`. (The OpenAI bodies are
 * `agent/src/http/schemas.ts`'s.)
 *
 * ```ts
 * const request = moeQueryRequest(parseInput(moeQueryInput, await ctx.readJson()))
 * ```
 */
import { z } from 'zod'
import { MOE_DEFAULT_MAX_TOKENS, MOE_DEFAULT_REQUIRE_CONSENSUS, REMOTE_MAX_TOKENS_LIMIT } from '../http/constants.ts'
import { MOE_TASK_TYPES } from './constants.ts'
import type { MoeQueryRequest, SingleQueryRequest } from './types.ts'

const prompt = z.string().min(1).describe('the prompt')
const taskType = z.enum(MOE_TASK_TYPES).describe('code_generation, reasoning, general or review')
/** an upper bound per answer, each model answering within its own context; beyond any context is the caller's mistake */
const maxTokens = z.int().min(1).max(REMOTE_MAX_TOKENS_LIMIT)

// `null` is taken for an absent optional field, as OpenAI's clients send it
export const moeQueryInput = z.object({
  prompt,
  task_type: taskType,
  policy_override: z.string().min(1).describe('a named policy (inference_policy.yaml). Default ripple-moe').nullish(),
  require_consensus: z.boolean().describe(`answer only when the models agree. Default ${String(MOE_DEFAULT_REQUIRE_CONSENSUS)}`).nullish(),
  max_tokens: maxTokens.describe(`tokens per answer at most. Default ${MOE_DEFAULT_MAX_TOKENS}`).nullish()
})

/** The router's request: defaults applied. */
export function moeQueryRequest (input: z.output<typeof moeQueryInput>): MoeQueryRequest {
  const out: MoeQueryRequest = {
    prompt: input.prompt,
    task_type: input.task_type,
    require_consensus: input.require_consensus ?? MOE_DEFAULT_REQUIRE_CONSENSUS,
    max_tokens: input.max_tokens ?? MOE_DEFAULT_MAX_TOKENS
  }
  if (input.policy_override !== undefined && input.policy_override !== null) out.policy_override = input.policy_override
  return out
}

export const moeQueryOutput = z.object({
  response: z.string(),
  consensus: z.boolean().describe('the models agreed (by the policy\'s threshold)').optional(),
  consensus_score: z.number(),
  model_votes: z.array(z.object({ model: z.string(), node: z.string().optional(), response_hash: z.string(), weight: z.number(), latency_ms: z.number() })),
  trace_id: z.string()
})

export const singleQueryInput = z.object({
  prompt,
  model: z.string().min(1).describe('the model. Default the mesh\'s pick').nullish(),
  task_type: taskType.nullish(),
  max_tokens: maxTokens.describe('tokens at most').nullish()
})

export function singleQueryRequest (input: z.output<typeof singleQueryInput>): SingleQueryRequest {
  const out: SingleQueryRequest = { prompt: input.prompt }
  if (input.model !== undefined && input.model !== null) out.model = input.model
  if (input.task_type !== undefined && input.task_type !== null) out.task_type = input.task_type
  if (input.max_tokens !== undefined && input.max_tokens !== null) out.max_tokens = input.max_tokens
  return out
}

export const singleQueryOutput = z.object({
  response: z.string(),
  model: z.string(),
  node: z.string().describe('the node that answered (uhCAk…)'),
  latency_ms: z.number(),
  usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number(), total_tokens: z.number() }),
  trace_id: z.string()
})

export const modelId = z.string().min(1).describe('the model id (the GGUF file name without .gguf)')

/** `POST /v1/models/{id}/load`'s optional body */
export const modelLoadBody = z.object({ stream: z.boolean().describe('SSE progress events. Default true').nullish() })
export const loadModelInput = z.strictObject({ id: modelId })
export const unloadModelInput = z.strictObject({ id: modelId })

export const modelInfoOutput = z.object({
  id: z.string(),
  file: z.string(),
  size_bytes: z.number(),
  architecture: z.string(),
  context_length: z.number(),
  embedding_length: z.number(),
  loaded: z.boolean(),
  tokens_per_second: z.number().nullable(),
  queue_depth: z.number(),
  in_flight: z.number(),
  demo: z.boolean()
})

export const unloadModelOutput = z.object({ id: z.string(), loaded: z.boolean() })
