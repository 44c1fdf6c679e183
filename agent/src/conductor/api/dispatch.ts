/**
 * Conductor API dispatch: inner requests `{type, value}` to inner responses `{type, value}`,
 * with the tags of Holochain's `AdminRequest`/`AdminResponse` and `AppRequest`/`AppResponse`.
 */
import { ConductorApiError, deserializationError, internalError } from '../errors.ts'
import { isPlainObject } from '../codec.ts'
import type { AdminApi, AppApi } from './types.ts'

type Handler = (c: AdminApi, value: never) => unknown

const ADMIN: Record<string, [string, Handler]> = {
  generate_agent_pub_key: ['agent_pub_key_generated', async (c) => c.generateAgentPubKey()],
  install_app: ['app_installed', async (c, v) => c.installApp(v)],
  enable_app: ['app_enabled', async (c, v) => c.enableApp(v)],
  disable_app: ['app_disabled', async (c, v) => c.disableApp(v)],
  uninstall_app: ['app_uninstalled', async (c, v) => c.uninstallApp(v)],
  list_apps: ['apps_listed', (c, v) => c.listApps(v)],
  attach_app_interface: ['app_interface_attached', async (c, v) => c.attachAppInterface(v)],
  list_app_interfaces: ['app_interfaces_listed', (c) => c.listAppInterfaces()],
  issue_app_authentication_token: ['app_authentication_token_issued', (c, v) => c.issueAppAuthenticationToken(v)],
  grant_zome_call_capability: ['zome_call_capability_granted', async (c, v) => c.grantZomeCallCapability(v)],
  revoke_zome_call_capability: ['zome_call_capability_revoked', (c, v) => c.revokeZomeCallCapability(v)],
  list_capability_grants: ['capability_grants_info', (c, v) => c.listCapabilityGrants(v)],
  dump_full_state: ['full_state_dumped', (c, v) => c.dumpFullState(v)],
  dump_state: ['state_dumped', (c, v) => c.dumpState(v)],
  agent_info: ['agent_info', (c, v) => c.agentInfo(v)],
  dump_network_metrics: ['network_metrics_dumped', (c, v) => c.dumpNetworkMetrics(v)],
  list_dnas: ['dnas_listed', (c) => c.listDnas()],
  list_cell_ids: ['cell_ids_listed', (c) => c.listCellIds()],
  get_dna_definition: ['dna_definition_returned', (c, v) => c.getDnaDefinition(v)],
  // flexnode extensions (peer-admin-types.ts): the operator's view and gate of the mesh
  list_peers: ['peers_listed', (c) => c.listPeers()],
  block_peers: ['peers_blocked', (c, v) => c.blockPeers(v)],
  unblock_peers: ['peers_unblocked', (c, v) => c.unblockPeers(v)],
  connect_peer: ['peer_connected', async (c, v) => await c.connectPeer(v)]
}

function errorResponse (err: unknown): { type: 'error', value: { type: string, value: string } } {
  if (err instanceof ConductorApiError) return { type: 'error', value: { type: err.kind, value: err.message } }
  return { type: 'error', value: { type: 'internal_error', value: err instanceof Error ? `${err.name}: ${err.message}` : String(err) } }
}

function splitRequest (req: unknown): { type: string, value: unknown } {
  if (!isPlainObject(req) || typeof req.type !== 'string') throw deserializationError('a request must be a map {type, value}')
  return { type: req.type, value: req.value ?? null }
}

export async function handleAdminRequest (c: AdminApi, req: unknown): Promise<unknown> {
  try {
    const { type, value } = splitRequest(req)
    const h = Object.hasOwn(ADMIN, type) ? ADMIN[type] : undefined
    if (h === undefined) throw deserializationError(`unknown variant \`${type}\` of AdminRequest`)
    return { type: h[0], value: await h[1](c, value as never) }
  } catch (err) {
    return errorResponse(err)
  }
}

export async function handleAppRequest (c: AppApi, appId: string, req: unknown): Promise<unknown> {
  try {
    const { type, value } = splitRequest(req)
    switch (type) {
      case 'app_info':
        return { type: 'app_info', value: c.appInfo(appId) }
      case 'call_zome':
        return { type: 'zome_called', value: await c.callZomeSigned(appId, value) }
      case 'agent_info':
        return { type: 'agent_info', value: c.agentInfo(value as never) }
      case 'provide_memproofs':
      case 'enable_app':
      case 'create_clone_cell':
      case 'enable_clone_cell':
      case 'disable_clone_cell':
      case 'dump_network_stats':
      case 'dump_network_metrics':
      case 'peer_meta_info':
      case 'get_countersigning_session_state':
      case 'abandon_countersigning_session':
      case 'publish_countersigning_session':
        throw internalError(`${type} is not supported by the flexnode embedded conductor`)
      default:
        throw deserializationError(`unknown variant \`${type}\` of AppRequest`)
    }
  } catch (err) {
    return errorResponse(err)
  }
}
