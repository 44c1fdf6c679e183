/**
 * The part of the JavaScript WebAssembly API flexnode uses (the WASM task runner, its worker and
 * its bench). TypeScript declares `WebAssembly` only in `lib.dom.d.ts`, which this package leaves
 * out, and `@types/node` 20 does not declare it; these declarations merge with the empty
 * `WebAssembly.Module` interface esbuild's types add.
 */
declare namespace WebAssembly {
  type ImportValue = ((...args: never[]) => unknown) | Memory | number | bigint
  type Imports = Record<string, Record<string, ImportValue>>
  type Exports = Record<string, unknown>

  interface ModuleImportDescriptor { module: string, name: string, kind: 'function' | 'table' | 'memory' | 'global' | 'tag' }
  interface ModuleExportDescriptor { name: string, kind: 'function' | 'table' | 'memory' | 'global' | 'tag' }

  class Module {
    constructor (bytes: BufferSource)
    static imports (module: Module): ModuleImportDescriptor[]
    static exports (module: Module): ModuleExportDescriptor[]
  }

  class Instance {
    constructor (module: Module, imports?: Imports)
    readonly exports: Exports
  }

  class Memory {
    constructor (descriptor: { initial: number, maximum?: number })
    readonly buffer: ArrayBuffer
    grow (delta: number): number
  }

  class CompileError extends Error {}
  class LinkError extends Error {}
  class RuntimeError extends Error {}

  type BufferSource = ArrayBuffer | ArrayBufferView

  function validate (bytes: BufferSource): boolean
  function compile (bytes: BufferSource): Promise<Module>
  function instantiate (bytes: BufferSource, imports?: Imports): Promise<{ module: Module, instance: Instance }>
  function instantiate (module: Module, imports?: Imports): Promise<Instance>
}
