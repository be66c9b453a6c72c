// Grant with express, for the same local provider as the broker: the full
// authorization-code flow, ending by storing the tokens (appended and fsynced, as the
// broker's embedded store does). PORT, PROVIDER and STORE come from the environment.
const express = require('express')
const session = require('express-session')
const grant = require('grant').express()
const fs = require('fs')

const port = Number(process.env.PORT)
const provider = process.env.PROVIDER
const fd = fs.openSync(process.env.STORE, 'a')

const app = express()
app.use(session({ secret: 'bench', saveUninitialized: true, resave: false }))
app.use(grant({
  defaults: { origin: `http://127.0.0.1:${port}`, transport: 'session', state: true },
  local: {
    authorize_url: `${provider}/authorize`,
    access_url: `${provider}/token`,
    oauth: 2,
    key: 'the-client-id',
    secret: 'the-client-secret',
    scope: ['read'],
    callback: '/done',
  },
}))
app.get('/done', (req, res) => {
  const r = req.session.grant && req.session.grant.response
  if (!r || !r.access_token) return res.status(500).send('no token')
  fs.appendFileSync(fd, JSON.stringify({ access_token: r.access_token, refresh_token: r.refresh_token }) + '\n')
  fs.fsyncSync(fd)
  res.status(200).send('ok')
})
app.listen(port, '127.0.0.1', () => console.log('ready'))
