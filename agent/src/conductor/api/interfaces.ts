/**
 * The conductor's interfaces: the admin listener, the app listeners (remembered in the store and
 * re-attached on the same ports after a restart) and the app authentication tokens they accept.
 *
 * ```ts
 * const interfaces = new ConductorInterfaces({ host: '127.0.0.1' }, { api: conductor, store, apps, logger })
 * const { port } = await interfaces.attachAppInterface({ allowed_origins: '*', installed_app_id: 'flexstack' })
 * ```
 */
import { randomBytes } from 'node:crypto'
import { InvalidInputError } from '../../errors.ts'
import type { ComponentLogger } from '../../logger.ts'
import { isPlainObject } from '../codec.ts'
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TOKEN_EXPIRY_SECONDS } from '../constants.ts'
import { deserializationError, unauthorized } from '../errors.ts'
import { parseAllowedOrigins } from '../origins.ts'
import type { ConductorStore } from '../store.ts'
import type { AppInterfaceInfo, AttachAppInterfaceRequest, ConductorApi, IssuedToken, IssueTokenRequest } from './types.ts'
import { ConductorWsServer } from './ws-server.ts'

export interface ConductorInterfacesInit {
  /** Interface to bind WebSocket listeners to. @default '127.0.0.1' */
  host?: string
  /** Largest WebSocket message accepted. @default 16 MiB */
  maxMessageBytes?: number
}

export interface ConductorInterfacesComponents {
  /** what the listeners serve */
  api: ConductorApi
  store: Pick<ConductorStore, 'putAppInterface' | 'listAppInterfaces' | 'deleteAppInterface'>
  /** the installed apps: `require` throws the API's error for an unknown id */
  apps: { require: (id: unknown) => unknown, has: (id: string) => boolean }
  logger: ComponentLogger
}

interface TokenInfo { appId: string, expiresAt: number | null, singleUse: boolean }

export class ConductorInterfaces {
  private readonly init: ConductorInterfacesInit
  private readonly c: ConductorInterfacesComponents
  private readonly servers: ConductorWsServer[] = []
  private readonly appInterfaces = new Map<number, ConductorWsServer>()
  private readonly tokens = new Map<string, TokenInfo>()

  constructor (init: ConductorInterfacesInit, components: ConductorInterfacesComponents) {
    this.init = init
    this.c = components
  }

  private async listen (kind: 'admin' | 'app', port: number, allowedOrigins: string, installedAppId: string | null): Promise<ConductorWsServer> {
    const server = await ConductorWsServer.listen({
      kind,
      port,
      host: this.init.host ?? '127.0.0.1',
      allowedOrigins,
      installedAppId,
      maxMessageBytes: this.init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      conductor: this.c.api,
      logger: this.c.logger
    })
    this.servers.push(server)
    return server
  }

  /**
   * Listen for App API clients of one app (or any). `allowed_origins` as for the admin
   * interface: `*` admits every non-browser client and no browser; browser origins must be listed.
   * A port in use is a `ListenError`.
   */
  async attachAppInterface (req: AttachAppInterfaceRequest): Promise<{ port: number }> {
    if (!isPlainObject(req)) throw deserializationError('attach_app_interface takes a map')
    const port = req.port ?? 0
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw deserializationError('port must be an integer 0..65535')
    if (typeof req.allowed_origins !== 'string') throw deserializationError('allowed_origins must be "*" or a comma-separated list of origins')
    try {
      parseAllowedOrigins(req.allowed_origins)
    } catch (err) {
      throw deserializationError(err instanceof Error ? err.message : String(err))
    }
    const appId = req.installed_app_id ?? null
    if (appId !== null) this.c.apps.require(appId)
    const server = await this.listen('app', port, req.allowed_origins, appId)
    this.appInterfaces.set(server.port, server)
    this.c.store.putAppInterface(server.port, req.allowed_origins, appId)
    return { port: server.port }
  }

  listAppInterfaces (): AppInterfaceInfo[] {
    return [...this.appInterfaces.values()].map(s => ({ port: s.port, allowed_origins: s.allowedOrigins, ...(s.installedAppId !== null ? { installed_app_id: s.installedAppId } : {}) }))
  }

  /** Re-attach the app interfaces of an earlier run on the same ports, as the real conductor does. */
  async restoreAppInterfaces (): Promise<Array<{ port: number }>> {
    const out: Array<{ port: number }> = []
    for (const row of this.c.store.listAppInterfaces()) {
      if (this.appInterfaces.has(row.port)) continue
      try {
        out.push(await this.attachAppInterface({ port: row.port, allowed_origins: row.allowed_origins, installed_app_id: row.installed_app_id }))
      } catch (err) {
        this.c.logger.warn({ port: row.port, err: err instanceof Error ? err.message : String(err) }, 'could not re-attach app interface; dropping it')
        this.c.store.deleteAppInterface(row.port)
      }
    }
    return out
  }

  /**
   * Listen for Admin API clients. `allowedOrigins` is `*` (every non-browser client) or a
   * comma-separated list of origins (see `origins.ts`); a browser origin must be listed.
   * @default allowedOrigins '*'
   */
  async startAdminInterface (opts: { port?: number, allowedOrigins?: string } = {}): Promise<{ port: number }> {
    try {
      parseAllowedOrigins(opts.allowedOrigins ?? '*')
    } catch (err) {
      throw new InvalidInputError(err instanceof Error ? err.message : String(err), { field: 'allowedOrigins' })
    }
    const server = await this.listen('admin', opts.port ?? 0, opts.allowedOrigins ?? '*', null)
    return { port: server.port }
  }

  issueAppAuthenticationToken (req: IssueTokenRequest): IssuedToken {
    if (!isPlainObject(req)) throw deserializationError('issue_app_authentication_token takes a map')
    this.c.apps.require(req.installed_app_id)
    const expiry = req.expiry_seconds ?? DEFAULT_TOKEN_EXPIRY_SECONDS
    if (typeof expiry !== 'number' || !Number.isInteger(expiry) || expiry < 0) throw deserializationError('expiry_seconds must be a non-negative integer (0 = never)')
    if (req.single_use != null && typeof req.single_use !== 'boolean') throw deserializationError('single_use must be a boolean')
    const token = randomBytes(64)
    const expiresAt = expiry === 0 ? null : Date.now() + expiry * 1000
    this.tokens.set(token.toString('hex'), { appId: req.installed_app_id, expiresAt, singleUse: req.single_use ?? true })
    return { token: [...token], expires_at: expiresAt === null ? null : expiresAt * 1000 }
  }

  /** Check an app authentication token; returns the app it is for or throws. */
  authenticateToken (token: unknown, interfaceAppId: string | null): string {
    const bytes = Array.isArray(token) && token.length === 64 && token.every(b => Number.isInteger(b) && b >= 0 && b < 256)
      ? Buffer.from(token as number[])
      : token instanceof Uint8Array && token.length === 64 ? Buffer.from(token) : undefined
    if (bytes === undefined) throw unauthorized('malformed app authentication token')
    const key = bytes.toString('hex')
    const info = this.tokens.get(key)
    if (info === undefined) throw unauthorized('unknown or already used app authentication token')
    if (info.expiresAt !== null && Date.now() > info.expiresAt) {
      this.tokens.delete(key)
      throw unauthorized('app authentication token expired')
    }
    if (interfaceAppId !== null && info.appId !== interfaceAppId) throw unauthorized('token is for another app than this interface is bound to')
    if (info.singleUse) this.tokens.delete(key)
    if (!this.c.apps.has(info.appId)) throw unauthorized('the app of this token is no longer installed')
    return info.appId
  }

  /** An app was uninstalled: its tokens die with it. */
  forgetApp (appId: string): void {
    for (const [k, t] of this.tokens) if (t.appId === appId) this.tokens.delete(k)
  }

  /** Close every listener (and its sockets). */
  async close (): Promise<void> {
    await Promise.allSettled(this.servers.map(async s => { await s.close() }))
    this.servers.length = 0
    this.appInterfaces.clear()
  }
}
