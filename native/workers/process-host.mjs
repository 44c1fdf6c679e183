// Child-process entry of every ProcessPool: register tsx's loader, then run the TypeScript host
// (it loads the worker module named on the command line and serves it over IPC).
import { register } from 'tsx/esm/api'

register()
await import('./process-host.ts')
