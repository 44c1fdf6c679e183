/** flexnode's version: the root package.json's (the CLI's --version, the MCP server's initialize). */
import pkg from '../../package.json' with { type: 'json' }

export const FLEXNODE_VERSION: string = pkg.version
