// Worker-thread entry of every PiscinaPool: register tsx's loader in this thread, then serve the
// TypeScript host (it loads the pool's worker module).
import { register } from 'tsx/esm/api'

register()
const host = await import('./piscina-host.ts')
export default host.default
