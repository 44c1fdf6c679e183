/**
 * The AppClient compliance suite (`app-client.compliance.ts`) against both clients of the
 * embedded conductor: the in-process client and `AppWebsocket` of the unmodified
 * `@holochain/client` over the conductor's app interface.
 */
import { AdminWebsocket, AppWebsocket, type CellId } from '@holochain/client'
import { createTestConductor, NOTES_HAPP, TEST_ORIGIN, type TestConductor } from '../../../../fixtures/index.ts'
import { InProcessAppClient } from '../in-process-client.ts'
import { appClientCompliance } from './app-client.compliance.ts'

const APP_ID = 'notes'

async function notesConductor (): Promise<TestConductor> {
  const t = await createTestConductor()
  await t.conductor.installApp({ source: { type: 'path', value: NOTES_HAPP }, agent_key: t.agent, installed_app_id: APP_ID })
  await t.conductor.enableApp({ installed_app_id: APP_ID })
  return t
}

{
  let t: TestConductor | undefined
  appClientCompliance('InProcessAppClient', {
    setup: async () => {
      t = await notesConductor()
      return { client: await InProcessAppClient.connect(t.conductor, APP_ID), conductor: t.conductor, agent: t.agent, appId: APP_ID }
    },
    teardown: async () => { await t?.[Symbol.asyncDispose]() }
  })
}

{
  let t: TestConductor | undefined
  let admin: AdminWebsocket | undefined
  let app: AppWebsocket | undefined
  appClientCompliance('AppWebsocket (@holochain/client)', {
    setup: async () => {
      t = await notesConductor()
      const wsClientOptions = { origin: TEST_ORIGIN }
      const { port: adminPort } = await t.conductor.startAdminInterface({ port: 0, allowedOrigins: TEST_ORIGIN })
      admin = await AdminWebsocket.connect({ url: new URL(`ws://127.0.0.1:${adminPort}`), wsClientOptions })
      const { port } = await admin.attachAppInterface({ allowed_origins: TEST_ORIGIN, installed_app_id: APP_ID })
      const { token } = await admin.issueAppAuthenticationToken({ installed_app_id: APP_ID })
      app = await AppWebsocket.connect({ url: new URL(`ws://127.0.0.1:${port}`), token, wsClientOptions })
      const cell = (await app.appInfo())?.cell_info.notes?.[0]
      if (cell?.type !== 'provisioned') throw new Error('the notes app has no provisioned cell')
      const cellId: CellId = cell.value.cell_id
      await admin.authorizeSigningCredentials(cellId)
      return { client: app, conductor: t.conductor, agent: t.agent, appId: APP_ID }
    },
    teardown: async () => {
      await app?.client.close()
      await admin?.client.close()
      await t?.[Symbol.asyncDispose]()
    }
  })
}
