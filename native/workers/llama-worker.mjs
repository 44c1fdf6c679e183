// Worker-thread entry: register tsx's loader in this thread, then load the TypeScript worker.
import { register } from 'tsx/esm/api'

register()
const worker = await import('./llama-worker.ts')

export default worker.default
