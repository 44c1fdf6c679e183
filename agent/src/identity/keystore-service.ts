/**
 * The keystore as a node service: opened (or created) in the data dir on start, its keys wiped
 * from memory on stop. The agent key it holds is the node's Holochain AgentPubKey and, through
 * `peer-id`, its libp2p PeerId.
 *
 * ```ts
 * const keys = keystoreService({ passphrase })({ dataDir })
 * await keys.start()
 * keys.keystore.primary.agentPubKey
 * await keys.stop()
 * ```
 */
import { NotStartedError, service, type Service } from '../service.ts'
import { Keystore, type KeystoreInit } from './keystore.ts'

export type KeystoreServiceInit = Omit<KeystoreInit, 'dataDir'>

export interface KeystoreServiceComponents {
  dataDir: { readonly path: string }
}

export interface KeystoreService extends Service {
  /** the open keystore (after start) */
  readonly keystore: Keystore
}

export function keystoreService (init: KeystoreServiceInit = {}) {
  return (components: KeystoreServiceComponents): KeystoreService => {
    let keystore: Keystore | undefined
    const svc = service({
      start: async () => { keystore = await Keystore.open({ ...init, dataDir: components.dataDir.path }) },
      stop: () => { keystore?.dispose() }
    })
    return {
      ...svc,
      get keystore (): Keystore {
        if (keystore === undefined) throw new NotStartedError('the keystore service')
        return keystore
      }
    }
  }
}
