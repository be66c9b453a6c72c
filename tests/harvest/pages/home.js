// The Home app's entry, as cozy-home's renderApp.tsx starts: Harvest's
// `handleOAuthResponse()` runs first, with no arguments, and reads the `data-cozy` that
// cozy-stack (here the stand-in) put in the page.
import { handleOAuthResponse } from 'harvest/dist/helpers/oauth'

window.handled = handleOAuthResponse()
document.getElementById('status').textContent = window.handled ? 'oauth-response-sent' : 'home'
