/**
 * QuickJS's binary object reader and writer (`JS_ReadObject` / `JS_WriteObject`) as results.
 * quickjs-emscripten 0.32's `decodeBinaryJSON` / `encodeBinaryJSON` return QuickJS's exception
 * marker on failure and leave the exception pending in the context; these read it the way the
 * library's own `callFunction` does (`QTS_ResolveException`), through the context's FFI, so a
 * failure is an error handle and never a marker handed on as a value.
 */
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core'
import { FlexnodeError } from '../../errors.ts'

type Ptr = number

interface ContextInternals {
  ffi: {
    QTS_bjson_encode: (ctx: Ptr, value: Ptr) => Ptr
    QTS_bjson_decode: (ctx: Ptr, data: Ptr) => Ptr
    QTS_ResolveException: (ctx: Ptr, maybeException: Ptr) => Ptr
    QTS_FreeValuePointer: (ctx: Ptr, value: Ptr) => void
  }
  ctx: { value: Ptr }
  memory: { heapValueHandle: (ptr: Ptr) => QuickJSHandle }
}

export type BinaryResult = { value: QuickJSHandle, error?: undefined } | { error: QuickJSHandle, value?: undefined }

function internals (vm: QuickJSContext): ContextInternals {
  return vm as unknown as ContextInternals
}

/** Throws at start-up if the installed quickjs-emscripten does not offer what these rely on. */
export function checkBinarySupport (vm: QuickJSContext): void {
  const i = internals(vm) as Partial<ContextInternals>
  const ok = typeof i.ffi?.QTS_bjson_encode === 'function' && typeof i.ffi.QTS_bjson_decode === 'function' &&
    typeof i.ffi.QTS_ResolveException === 'function' && typeof i.ffi.QTS_FreeValuePointer === 'function' &&
    typeof i.ctx?.value === 'number' && typeof i.memory?.heapValueHandle === 'function'
  if (!ok) throw new FlexnodeError('zome sandbox: this quickjs-emscripten build does not offer QuickJS\'s binary object reader and writer (needs 0.32)')
}

function result (vm: QuickJSContext, ptr: Ptr): BinaryResult {
  const { ffi, ctx, memory } = internals(vm)
  const err = ffi.QTS_ResolveException(ctx.value, ptr)
  if (err !== 0) {
    ffi.QTS_FreeValuePointer(ctx.value, ptr)
    return { error: memory.heapValueHandle(err) }
  }
  return { value: memory.heapValueHandle(ptr) }
}

/** A guest value → an ArrayBuffer handle holding its binary form. */
export function encodeBinary (vm: QuickJSContext, value: QuickJSHandle): BinaryResult {
  const { ffi, ctx } = internals(vm)
  return result(vm, ffi.QTS_bjson_encode(ctx.value, value.value))
}

/** An ArrayBuffer handle holding a binary form → the guest value it describes. */
export function decodeBinary (vm: QuickJSContext, data: QuickJSHandle): BinaryResult {
  const { ffi, ctx } = internals(vm)
  return result(vm, ffi.QTS_bjson_decode(ctx.value, data.value))
}
