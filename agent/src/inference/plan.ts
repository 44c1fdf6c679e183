/**
 * What a load of a model would use, before it is loaded: the GPU layers it offloads (resolved
 * here once; the load is given exactly this number, so the estimate and the load never
 * disagree) and the RAM and VRAM the model and its context need.
 */
import { GgufInsights, readGgufFileInfo, type Llama } from 'node-llama-cpp'
import { errorMessage } from '../errors.ts'
import type { CatalogEntry } from './catalog.ts'
import { InsufficientMemoryError } from './types.ts'

/** What a load would use: the GPU layers it offloads (the load uses exactly this) and the memory it needs. */
export interface LoadPlan {
  contextSize: number
  gpuLayers: number
  /** bytes of RAM the model and its context need */
  ram: number
  /** bytes of VRAM the model and its context need */
  vram: number
}

export async function planLoad (llama: Llama, e: CatalogEntry, o: { contextSize: number, sequences: number, redact: (message: string) => string }): Promise<LoadPlan> {
  // safe: the file passed the structural check (bounded counts, tensors inside the file)
  const insights = await GgufInsights.from(await readGgufFileInfo(e.path), llama)
  let gpuLayers = 0
  if (llama.gpu !== false) {
    try {
      gpuLayers = (await insights.configurationResolver.resolveModelGpuLayersV2('auto')).gpuLayers
    } catch (err: unknown) {
      throw new InsufficientMemoryError(`${e.info.id} does not fit: ${o.redact(errorMessage(err))}`, { model: e.info.id })
    }
  }
  const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers })
  const ctx = await insights.estimateContextResourceRequirementsV2({ contextSize: o.contextSize, modelGpuLayers: gpuLayers, sequences: o.sequences })
  return { contextSize: o.contextSize, gpuLayers, ram: model.cpuRam + ctx.cpuRam, vram: model.gpuVram + ctx.gpuVram }
}
