/**
 * A `ConductorAppClient` (the part of `@holochain/client`'s `AppClient` the embedded conductor
 * serves: `callZome`, `appInfo`, signals, identity) without a socket: the fast path for the
 * agent's own calls. Calls are signed with the agent's key from the node keystore and go through
 * the same authorization as calls over the app WebSocket. Network stats and clone cells are not
 * offered (the conductor's app interface refuses them too); `test/app-client.compliance.ts` holds
 * this client and `AppWebsocket` to the same behaviour.
 *
 * ```ts
 * const client = await InProcessAppClient.connect(conductor, 'flexstack')
 * await client.callZome({ role_name: 'agent_registry', zome_name: 'capabilities', fn_name: 'advertise', payload })
 * ```
 */
import { createHash, randomBytes } from 'node:crypto'
import type { AppClient, AppInfo, CallZomeRequest, RoleNameCallZomeRequest, Signal, SignalCb } from '@holochain/client'
import { FlexnodeError } from '../errors.ts'
import type { CellId } from './cell.ts'
import { decode, encode } from './codec.ts'
import type { EmbeddedConductor } from './conductor.ts'
import { ConductorApiError } from './errors.ts'

/** Zome-call lifetime used when signing, as `@holochain/client` does. */
const EXPIRY_MS = 5 * 60 * 1000

/**
 * What a client of the embedded conductor offers: the part of `AppClient` the conductor serves
 * (its app interface refuses network stats and clone cells, so neither client claims them).
 */
export type ConductorAppClient = Pick<AppClient, 'callZome' | 'on' | 'appInfo' | 'myPubKey' | 'installedAppId'>

/** The `HolochainError` shape `@holochain/client` throws, so callers handle both clients alike. */
export class InProcessHolochainError extends FlexnodeError {
  constructor (kind: string, message: string) {
    super(message)
    this.name = kind
  }
}

/** The slice of the conductor the in-process client uses. */
export type InProcessConductor = Pick<EmbeddedConductor, 'appInfo' | 'callZomeSigned' | 'onAppSignal' | 'keystore'>

export class InProcessAppClient implements ConductorAppClient {
  readonly myPubKey: Uint8Array
  readonly installedAppId: string
  private readonly conductor: InProcessConductor
  private cached: AppInfo

  private constructor (conductor: InProcessConductor, info: AppInfo) {
    this.conductor = conductor
    this.cached = info
    this.myPubKey = info.agent_pub_key
    this.installedAppId = info.installed_app_id
  }

  static async connect (conductor: InProcessConductor, installedAppId: string): Promise<InProcessAppClient> {
    const info = conductor.appInfo(installedAppId) as AppInfo | null
    if (info === null) throw new InProcessHolochainError('AppNotFound', `app ${installedAppId} is not installed`)
    return new InProcessAppClient(conductor, info)
  }

  async appInfo (): Promise<AppInfo> {
    const info = this.conductor.appInfo(this.installedAppId) as AppInfo | null
    if (info === null) throw new InProcessHolochainError('AppNotFound', `app ${this.installedAppId} is not installed`)
    this.cached = info
    return info
  }

  cellId (roleName: string): CellId {
    const cells = this.cached.cell_info[roleName]
    const cell = cells?.find(c => c.type === 'provisioned')
    if (cell === undefined || cell.type !== 'provisioned') throw new InProcessHolochainError('NoCellForRoleName', `no cell found with role_name ${roleName}`)
    return cell.value.cell_id as CellId
  }

  async callZome (args: CallZomeRequest | RoleNameCallZomeRequest): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const cellId = 'role_name' in args && typeof args.role_name === 'string' ? this.cellId(args.role_name) : (args as CallZomeRequest).cell_id as CellId
    const provenance = args.provenance ?? this.myPubKey
    const bytes = encode({
      cap_secret: args.cap_secret ?? null,
      cell_id: cellId,
      zome_name: args.zome_name,
      fn_name: args.fn_name,
      provenance,
      payload: encode(args.payload),
      nonce: randomBytes(32),
      expires_at: (Date.now() + EXPIRY_MS) * 1000
    })
    const signature = this.conductor.keystore.sign(provenance, createHash('sha512').update(bytes).digest())
    try {
      return decode(await this.conductor.callZomeSigned(this.installedAppId, { bytes, signature }))
    } catch (err) {
      if (err instanceof ConductorApiError) throw new InProcessHolochainError(err.kind, err.message)
      throw err
    }
  }

  on (_eventName: 'signal' | readonly 'signal'[], listener: SignalCb): () => void {
    return this.conductor.onAppSignal(this.installedAppId, (s) => {
      listener({ type: 'app', value: { cell_id: s.cell_id, zome_name: s.zome_name, payload: s.payload } } as Signal)
    })
  }
}
