// The Home app's side of a connection, as Home runs it: a CozyClient with the realtime
// plugin, and cozy-harvest-lib's own `openOAuthWindow` (the version is chosen at bundle
// time, see run.mjs). The scenario is set on `window.scenario` by the driver; the button is
// clicked by it (a real user gesture, so the popup is not blocked).
import CozyClient from 'cozy-client'
import { RealtimePlugin } from 'cozy-realtime'
import { openOAuthWindow } from 'harvest/dist/components/OAuthService'
import { fetchAccount, updateAccount } from 'harvest/dist/connections/accounts'

const data = JSON.parse(document.querySelector('[role=application]').dataset.cozy)
const client = new CozyClient({
  uri: `${window.location.protocol}//${data.domain}`,
  token: data.token,
  appMetadata: { slug: 'home' }
})
client.registerPlugin(RealtimePlugin)
window.client = client
window.harvest = { fetchAccount, updateAccount }

document.getElementById('connect').addEventListener('click', async () => {
  const s = window.scenario
  const options = { client, konnector: s.konnector }
  if (s.intents) {
    // The flagship app's or an embedding app's in-app browser, played by the driver
    // (see run.mjs): Harvest appends the code under `tokenParamName` itself.
    options.intentsApi = {
      fetchSessionCode: async () => s.intents.code,
      showInAppBrowser: url => window.showInAppBrowser(url),
      closeInAppBrowser: () => window.closeInAppBrowser(),
      tokenParamName: s.intents.tokenParamName
    }
  }
  try {
    window.result = await openOAuthWindow(options)
  } catch (e) {
    window.result = { result: 'THROWN', error: String(e) }
  }
  window.stateKeysLeft = Object.keys(window.localStorage)
})
