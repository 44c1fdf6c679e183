/**
 * The HTTP meaning of every typed error is decided at the boundary, by name: the same status for
 * the error thrown here and for the one a provider threw across the mesh (a RemoteError keeps the
 * provider's name).
 */
import { describe, expect, it } from 'vitest'
import { toOpenAIError } from '../openai.ts'
import {
  BusyError, DeadlineExceededError, InferenceError, InsufficientMemoryError, InvalidRequestError, ModelCrashedError, ModelLoadError,
  ModelNotFoundError, ModelNotLoadedError, MoeNoAnswersError, PolicyDeniedError, PromptTooLongError, ProviderFailedError, RequestAbortedError
} from '../../inference/types.ts'
import { InvalidInputError } from '../../errors.ts'
import { RemoteError } from '../../mesh/types.ts'
import { LeaseNotLiveError, LeaseRefusedError, NoCapacityError, NotTheHolderError } from '../../resources/types.ts'
import {
  InvalidWasmModuleError, WasmCpuLimitError, WasmImportError, WasmMemoryLimitError, WasmModuleNotFoundError, WasmOutputLimitError, WasmTrapError, WasmWallTimeoutError
} from '../../resources/wasm.ts'
import { InvalidSchedulerInputError } from '../../../../scheduler/index.ts'

describe('toOpenAIError', () => {
  it.each([
    [new ModelNotFoundError('m', { model: 'm' }), 404, 'invalid_request_error', 'model_not_found', 'model'],
    [new ModelNotLoadedError('m'), 409, 'invalid_request_error', 'model_not_loaded', 'model'],
    [new ModelLoadError('m'), 422, 'invalid_request_error', 'model_load_failed', 'model'],
    [new ModelCrashedError('m'), 500, 'server_error', 'model_crashed', null],
    [new InsufficientMemoryError('m'), 507, 'server_error', 'insufficient_memory', null],
    [new BusyError('m'), 503, 'server_error', 'queue_full', null],
    [new PromptTooLongError('m'), 400, 'invalid_request_error', 'context_length_exceeded', null],
    [new InvalidRequestError('m', { param: 'messages' }), 400, 'invalid_request_error', 'invalid_value', 'messages'],
    [new InvalidInputError('m', { field: 'max_tokens' }), 400, 'invalid_request_error', 'invalid_value', 'max_tokens'],
    [new DeadlineExceededError('m'), 504, 'server_error', 'timeout', null],
    [new RequestAbortedError('m'), 499, 'server_error', 'request_aborted', null],
    [new PolicyDeniedError('m'), 403, 'permission_error', 'policy_denied', null],
    [new ProviderFailedError('m'), 502, 'server_error', 'provider_failed', null],
    [new InferenceError('m'), 500, 'server_error', 'inference_failed', null],
    [new InvalidSchedulerInputError('m', { field: 'requirements.cpu_cores' }), 400, 'invalid_request_error', 'invalid_value', 'requirements.cpu_cores'],
    [new NotTheHolderError('uhCkk'), 403, 'permission_error', 'not_the_holder', 'allocation_id'],
    [new LeaseRefusedError('m', 'over_capacity'), 409, 'invalid_request_error', 'lease_refused', null],
    [new LeaseNotLiveError('uhCkk', 'unknown'), 410, 'invalid_request_error', 'lease_not_live', 'allocation_id'],
    [new NoCapacityError('m', 0), 503, 'server_error', 'no_capacity', null],
    [new WasmModuleNotFoundError('bafk'), 404, 'invalid_request_error', 'wasm_module_not_found', 'wasm_cid'],
    [new InvalidWasmModuleError('m'), 422, 'invalid_request_error', 'invalid_wasm_module', 'wasm'],
    [new WasmImportError('env.fetch', 'm'), 422, 'invalid_request_error', 'wasm_import_refused', 'wasm'],
    [new WasmTrapError('m'), 422, 'invalid_request_error', 'wasm_trap', null],
    [new WasmMemoryLimitError(1, 'm'), 422, 'invalid_request_error', 'wasm_memory_limit', 'limits.memory_mb'],
    [new WasmCpuLimitError(1), 422, 'invalid_request_error', 'wasm_cpu_limit', 'limits.cpu_ms'],
    [new WasmWallTimeoutError(1), 422, 'invalid_request_error', 'wasm_wall_timeout', 'limits.wall_ms'],
    [new WasmOutputLimitError(1), 422, 'invalid_request_error', 'wasm_output_limit', null]
  ])('%s', (err, status, type, code, param) => {
    expect(toOpenAIError(err)).toEqual({ status, known: true, body: { error: { message: err.message, type, code, param, name: err.name } } })
  })

  it('keeps an MOE failure\'s votes in the body', () => {
    const votes = [{ model: 'a', node: 'n', error: 'down', error_name: 'BusyError', latency_ms: 3 }]
    const { status, body } = toOpenAIError(new MoeNoAnswersError('none', { model_votes: votes }))
    expect(status).toBe(502)
    expect(body.error).toMatchObject({ code: 'moe_no_answers', model_votes: votes })
  })

  it('maps a provider\'s error that crossed the mesh by its name, and keeps the name', () => {
    expect(toOpenAIError(new RemoteError('busy', { remoteName: 'BusyError' })).status).toBe(503)
    const cpu = toOpenAIError(new RemoteError('over budget', { remoteName: 'WasmCpuLimitError' }))
    expect(cpu).toMatchObject({ status: 422, body: { error: { name: 'WasmCpuLimitError', code: 'wasm_cpu_limit' } } })
  })

  it('hides an unknown error behind a bare 500', () => {
    expect(toOpenAIError(new TypeError('secret detail'))).toEqual({ status: 500, known: false, body: { error: { message: 'internal server error', type: 'server_error', param: null, code: null } } })
  })
})
