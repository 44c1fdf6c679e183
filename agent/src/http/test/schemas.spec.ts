/**
 * The OpenAI request bodies (`http/schemas.ts`): every refusal is an `InvalidRequestError` whose
 * `param` is the bad field and whose message starts with it; what OpenAI's own clients send
 * (unknown fields, `null` for unset ones, `encoding_format: "base64"`) is accepted, with the
 * defaults a request without those fields gets.
 */
import { describe, expect, it } from 'vitest'
import { parseChatCompletionRequest, parseCompletionRequest, parseEmbeddingRequest } from '../schemas.ts'

type Json = Record<string, unknown>

const model = 'org/model'
const USER = [{ role: 'user', content: 'hello' }]
const options = { maxTokensLimit: (m: string) => m === model ? 2048 : 1_048_576 }
const LEASE = `uhCkk${'A'.repeat(48)}`

function refusal (parse: () => unknown): { name: string, param: string, message: string } {
  try {
    parse()
  } catch (err: unknown) {
    const e = err as { name: string, param: string, message: string }
    return { name: e.name, param: e.param, message: e.message }
  }
  throw new Error('the body was accepted')
}

describe('chat and text completion bodies', () => {
  const chat = (extra: Json): Json => ({ model, messages: USER, max_tokens: 4, ...extra })

  it.each<[string, Json, string, string]>([
    ['missing model', { messages: USER }, 'model', 'model: is required'],
    ['null model', { model: null, messages: USER }, 'model', 'model: is required'],
    ['model of the wrong type', { model: 42, messages: USER }, 'model', 'model: must be a string'],
    ['empty model', { model: '', messages: USER }, 'model', 'model: must be a non-empty string'],
    ['missing messages', { model }, 'messages', 'messages: is required'],
    ['empty messages', { model, messages: [] }, 'messages', 'messages: must be a non-empty array'],
    ['messages not an array', { model, messages: 'hi' }, 'messages', 'messages: must be a non-empty array'],
    ['a message not an object', { model, messages: [...USER, 'hi'] }, 'messages[1]', 'messages[1]: must be an object {role, content}'],
    ['an unknown role', { model, messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role', 'messages[0].role: must be one of system, user, assistant'],
    ['content of the wrong type', { model, messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }] }, 'messages[0].content', 'messages[0].content: must be a string'],
    ['max_tokens 0', chat({ max_tokens: 0 }), 'max_tokens', 'max_tokens: must be an integer of at least 1'],
    ['max_tokens past the model', chat({ max_tokens: 2049 }), 'max_tokens', 'max_tokens: must be an integer between 1 and 2048'],
    ['max_tokens a string', chat({ max_tokens: '4' }), 'max_tokens', 'max_tokens: must be an integer of at least 1'],
    ['max_completion_tokens past the model', chat({ max_tokens: undefined, max_completion_tokens: 5000 }), 'max_completion_tokens', 'max_completion_tokens: must be an integer between 1 and 2048'],
    ['temperature out of range', chat({ temperature: 2.5 }), 'temperature', 'temperature: must be a number between 0 and 2'],
    ['seed not an integer', chat({ seed: 1.5 }), 'seed', 'seed: must be a non-negative integer'],
    ['seed negative', chat({ seed: -1 }), 'seed', 'seed: must be a non-negative integer'],
    ['n other than 1', chat({ n: 2 }), 'n', 'n: must be 1 (one choice per request)'],
    ['stream not a boolean', chat({ stream: 'yes' }), 'stream', 'stream: must be a boolean'],
    ['stream_options not an object', chat({ stream_options: true }), 'stream_options', 'stream_options: must be an object'],
    ['stream_options.include_usage not a boolean', chat({ stream_options: { include_usage: 'yes' } }), 'stream_options.include_usage', 'stream_options.include_usage: must be a boolean'],
    ['an unknown cache mode', chat({ cache: 'fuzzy' }), 'cache', 'cache: must be one of "exact", "semantic", "off"'],
    ['cache_threshold without the semantic cache', chat({ cache_threshold: 0.9 }), 'cache_threshold', 'cache_threshold: applies only with cache: "semantic"'],
    ['cache_threshold out of range', chat({ cache: 'semantic', cache_threshold: 1.5 }), 'cache_threshold', 'cache_threshold: must be a number from 0 to 1 (a cosine similarity)'],
    ['an allocation id that is not one', chat({ allocation_id: 'nope' }), 'allocation_id', 'allocation_id: must be an allocation id (uhCkk…)']
  ])('%s', (_what, body, param, message) => {
    expect(refusal(() => parseChatCompletionRequest(body, options))).toEqual({ name: 'InvalidRequestError', param, message })
  })

  it('refuses a bad stop list as a whole, naming stop', () => {
    for (const stop of [7, '', [''], [1], ['a', 'b', 'c', 'd', 'e'], ['x'.repeat(257)], { a: 1 }]) {
      expect(refusal(() => parseChatCompletionRequest(chat({ stop }), options)), JSON.stringify(stop))
        .toEqual({ name: 'InvalidRequestError', param: 'stop', message: 'stop: must be a string or an array of at most 4 strings of 1 to 256 characters' })
    }
  })

  it('refuses a body that is not an object, naming body', () => {
    for (const body of [[], null, 'hi', 3]) {
      expect(refusal(() => parseChatCompletionRequest(body, options))).toEqual({ name: 'InvalidRequestError', param: 'body', message: 'body: must be a JSON object' })
    }
  })

  it('reports the first bad field in the order of the body\'s fields', () => {
    expect(refusal(() => parseChatCompletionRequest({ messages: [], temperature: 9 }, options)).param).toBe('model')
    expect(refusal(() => parseChatCompletionRequest({ model, messages: [], temperature: 9 }, options)).param).toBe('messages')
    expect(refusal(() => parseChatCompletionRequest(chat({ temperature: 9, stop: 7 }), options)).param).toBe('temperature')
  })

  it('now also checks max_completion_tokens when max_tokens is given (it was ignored unchecked)', () => {
    expect(refusal(() => parseChatCompletionRequest(chat({ max_completion_tokens: 'x' }), options)))
      .toEqual({ name: 'InvalidRequestError', param: 'max_completion_tokens', message: 'max_completion_tokens: must be an integer of at least 1' })
    // max_tokens wins; the other is only checked for its type, not against the model
    expect(parseChatCompletionRequest(chat({ max_tokens: 8, max_completion_tokens: 5000 }), options).max_tokens).toBe(8)
  })

  it('accepts what OpenAI\'s clients send: unknown fields ignored, null as unset', () => {
    const request = parseChatCompletionRequest({
      model,
      messages: [{ role: 'system', content: 'be brief', name: 'rules' }, { role: 'user', content: 'hi' }],
      user: 'u-1', logit_bias: { 50256: -100 }, top_p: 1, frequency_penalty: 0, presence_penalty: 0, logprobs: false, response_format: { type: 'text' },
      max_tokens: null, temperature: null, seed: null, n: null, stream: null, stream_options: null, stop: null, cache: null, cache_threshold: null, allocation_id: null
    }, options)
    expect(request).toEqual({
      model,
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }],
      max_tokens: 256,
      stream: false,
      include_usage: false,
      cache: 'exact'
    })
  })

  it('normalises what it accepts', () => {
    expect(parseChatCompletionRequest(chat({
      max_tokens: undefined, max_completion_tokens: 12, temperature: 0, seed: 7, n: 1, stop: 'END', stream: true,
      stream_options: { include_usage: true }, cache: 'semantic', cache_threshold: 0.9, allocation_id: LEASE
    }), options)).toEqual({
      model, messages: USER, max_tokens: 12, temperature: 0, seed: 7, stop: ['END'], stream: true, include_usage: true, cache: 'semantic', cache_threshold: 0.9, allocation_id: LEASE
    })
    expect(parseChatCompletionRequest(chat({ stop: [] }), options)).not.toHaveProperty('stop')
    // the default is capped by a model's small context; a model held elsewhere gets the remote bound
    expect(parseChatCompletionRequest({ model, messages: USER }, { maxTokensLimit: () => 100 }).max_tokens).toBe(100)
    expect(parseChatCompletionRequest({ model: 'elsewhere', messages: USER, max_tokens: 100_000 }, options).max_tokens).toBe(100_000)
  })

  it('takes one non-empty prompt for a text completion', () => {
    expect(parseCompletionRequest({ model, prompt: 'Once', max_tokens: 3, echo: false, best_of: 1 }, options))
      .toEqual({ model, prompt: 'Once', max_tokens: 3, stream: false, include_usage: false, cache: 'exact' })
    for (const [body, param, message] of [
      [{ model }, 'prompt', 'prompt: is required'],
      [{ model, prompt: ['a', 'b'] }, 'prompt', 'prompt: must be a string'],
      [{ model, prompt: '' }, 'prompt', 'prompt: must be a non-empty string'],
      [{ model, prompt: 'x', temperature: -1 }, 'temperature', 'temperature: must be a number between 0 and 2']
    ] as Array<[Json, string, string]>) {
      expect(refusal(() => parseCompletionRequest(body, options))).toEqual({ name: 'InvalidRequestError', param, message })
    }
  })
})

describe('embedding bodies', () => {
  it('accepts a string or a list, in float or base64 (the openai client asks for base64)', () => {
    expect(parseEmbeddingRequest({ model, input: 'hello' })).toEqual({ model, input: ['hello'], encoding_format: 'float' })
    expect(parseEmbeddingRequest({ model, input: ['a', 'b'], encoding_format: 'base64', dimensions: 3, user: 'u' }))
      .toEqual({ model, input: ['a', 'b'], encoding_format: 'base64' })
    expect(parseEmbeddingRequest({ model, input: 'x', encoding_format: null }).encoding_format).toBe('float')
  })

  it('refuses a bad input as a whole, naming input, and an unknown encoding', () => {
    const INPUT = 'input: must be a non-empty string or an array of 1 to 256 non-empty strings'
    for (const [body, param, message] of [
      [{ model }, 'input', 'input: is required'],
      [{ model, input: null }, 'input', 'input: is required'],
      [{ model, input: '' }, 'input', INPUT],
      [{ model, input: [] }, 'input', INPUT],
      [{ model, input: [1, 2] }, 'input', INPUT],
      [{ model, input: ['a', ''] }, 'input', INPUT],
      [{ model, input: Array.from({ length: 257 }, () => 'x') }, 'input', INPUT],
      [{ model, input: 'x', encoding_format: 'int8' }, 'encoding_format', 'encoding_format: must be "float" or "base64"'],
      [{ input: 'x' }, 'model', 'model: is required']
    ] as Array<[Json, string, string]>) {
      expect(refusal(() => parseEmbeddingRequest(body)), JSON.stringify(body)).toEqual({ name: 'InvalidRequestError', param, message })
    }
  })
})
