/**
 * The MCP server's defaults.
 */
import { FLEXNODE_VERSION } from '../version.ts'

/** the server name MCP clients see in `initialize` */
export const MCP_SERVER_NAME = 'flexnode'
/** the server version MCP clients see in `initialize`: the package's */
export const MCP_SERVER_VERSION: string = FLEXNODE_VERSION
/** the node's MCP endpoint (streamable HTTP) */
export const MCP_PATH = '/mcp'
/** the JSON Schema dialect of the tools' `inputSchema`/`outputSchema` (the one MCP clients validate with) */
export const MCP_JSON_SCHEMA_TARGET = 'draft-7'
/** the `_meta` key of a tool error's structured reason (`{name, type, code, param}`) */
export const MCP_ERROR_META_KEY = 'flexnode/error'
/** the name a tool error gives a failure the node does not describe (its detail goes to the log only) */
export const MCP_INTERNAL_ERROR_NAME = 'InternalServerError'
