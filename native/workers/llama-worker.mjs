// Model process entry (forked by agent/src/inference/llama-pool.ts): register tsx's loader, then
// run the TypeScript program that serves the model over IPC.
import { register } from 'tsx/esm/api'

register()
await import('./llama-worker.ts')
