#!/usr/bin/env node
// flexnode's command line: runs the TypeScript sources through tsx's loader.
import { register } from 'tsx/esm/api'

register()
await import('../agent/src/polyfill.ts')
await import('../agent/src/cli/index.ts')
