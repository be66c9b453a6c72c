// A konnector's own calls against the broker, verbatim from real konnectors, with the
// cozy-konnector-libs 5.13.0 that scripts/test.sh installs (NODE_PATH points at it):
//
// - `client-js`: Google's and orangeapi's refresh, cozy-client-js (exported by
//   cozy-konnector-libs as `cozyClient`) `fetchJSON('POST', '/accounts/<type>/<id>/refresh')`,
//   then `body.attributes.oauth.access_token`;
// - `cozy-client`: toutatice's (`src/CozyUtils.js`), `new CozyClient({ uri, token })
//   .fetch('POST', ..., null, { throwFetchErrors: true })`, then
//   `data.attributes.oauth.access_token`, and on failure `reason.errors[0].code`, with a
//   current cozy-client (60.21.2, npm alias `cozy-client-current`);
// - `konnector`: a whole `BaseKonnector` run, which reads the account through cozy-stack's
//   `/data` (the stand-in of tests/harvest/stand-in-stack.mjs, over plain HTTP) and hands
//   the konnector `fields.access_token`.
//
//   node tests/konnector/run.js <mode> <config.json>
//
// Prints one JSON line: what the konnector saw. COZY_URL names the instance host with the
// stand-in's port; every host resolves to loopback (dns.lookup below), `Host` unchanged.

const dns = require('dns')
const lookup = dns.lookup
dns.lookup = (host, options, callback) => lookup('127.0.0.1', options, callback)

const path = require('path')
const fs = require('fs')

async function main () {
  const [mode, configFile] = process.argv.slice(2)
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'))
  const { startStack } = await import(path.join(__dirname, '..', 'harvest', 'stand-in-stack.mjs'))
  const stack = await startStack({ ...config, port: 0, harvest: 'none' }, null, {}, null)
  const inst = config.instances[0]
  process.env.COZY_URL = `http://${inst.host}:${stack.port}/`
  process.env.COZY_CREDENTIALS = config.token
  process.env.COZY_FIELDS = JSON.stringify({ account: config.account })
  process.env.NODE_ENV = 'production'
  const route = `/accounts/${config.accountType}/${config.account}/refresh`
  const out = { mode }
  try {
    if (mode === 'client-js') {
      const { cozyClient } = require('cozy-konnector-libs')
      const body = await cozyClient.fetchJSON('POST', route)
      out.access_token = body.attributes.oauth.access_token
    } else if (mode === 'cozy-client') {
      const CozyClient = require('cozy-client-current').default
      const client = new CozyClient({ uri: process.env.COZY_URL, token: config.token })
      try {
        const response = await client.fetch('POST', route, null, { throwFetchErrors: true })
        const body = await response.json()
        out.access_token = body && body.data && body.data.attributes.oauth.access_token
      } catch (err) {
        out.status = err.status
        out.code = err.reason && err.reason.errors && err.reason.errors[0] && err.reason.errors[0].code
      }
    } else if (mode === 'konnector') {
      const { BaseKonnector } = require('cozy-konnector-libs')
      // Its `fail` ends the process (a konnector's job result): report instead.
      class Konnector extends BaseKonnector {
        fail (err) { out.error = String(err.message || err) }
      }
      await new Konnector(async fields => {
        out.access_token = fields.access_token
        out.refresh_token_present = Boolean(fields.refresh_token)
      })
    }
  } catch (err) {
    out.error = String(err && err.message ? err.message : err)
    out.status = err && err.status
  }
  out.log = stack.log
  await stack.close()
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch(e => { console.error(e); process.exit(1) })
