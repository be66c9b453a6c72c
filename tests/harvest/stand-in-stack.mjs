// The smallest stand-in for cozy-stack that cozy-harvest-lib needs, and nothing of the
// broker: cozy-stack cannot be built here (its Go modules are out of reach), so what the
// clients ask of it is played, each piece as cozy-stack does it:
//
// - on an instance host: the `/realtime/` websocket (subprotocol `io.cozy.websocket`,
//   AUTH / SUBSCRIBE, `NOTIFIED` frames) and its `POST /realtime/:doctype/:id` relay
//   (web/realtime/realtime.go), with CORS for the instance's apps; `GET`/`PUT
//   /data/io.cozy.accounts/:id` on the instance's CouchDB database, in cozy-stack's shapes
//   (web/data); everything under `/accounts/` handed to the broker with its Host, as the
//   shipped nginx.conf does;
// - on `home.<instance>`: the Home app's page, with `data-cozy` only for a browser that
//   carries the instance's session cookie (cozy-stack serves an app's index.html with its
//   token only to a logged-in browser);
// - on the callback host: everything handed to the broker;
// - on `provider.cozy.test`: the provider's consent page (its token endpoint is the Rust
//   test's, which the broker calls).
//
// One TLS certificate for every host; Chromium maps the test hosts to loopback.

import https from 'node:https'
import http from 'node:http'

const hostOf = req => (req.headers.host || '').replace(/:\d+$/, '')

function readBody (req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', c => {
      size += c.length
      if (size > limit) reject(new Error('body too large'))
      else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function json (res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

/**
 * Starts the stand-in on `config.port` with `tls` ({key, cert}), or over plain HTTP
 * when `tls` is null (a konnector's calls, tests/konnector/run.js); `bundles` maps a
 * page script name to its bundled source; `WebSocketServer` is the `ws` package's
 * (installed beside the other npm packages, see scripts/harvest.sh), or null for no
 * realtime; `RedisClient` the `redis` package's, to relay cozy-stack's Redis channel of
 * document events when `config.redisUrl` is set. Returns {close, log, port}.
 */
export async function startStack (config, tls, bundles, WebSocketServer, RedisClient = null) {
  const log = []
  const instances = new Map(config.instances.map(i => [i.domain.replace(/:\d+$/, ''), i]))
  const subscribers = new Map() // instance host -> Set of sockets subscribed to notifications
  const broker = new URL(config.broker)
  const couch = new URL(config.couch)

  const instanceOfApp = host => {
    const dot = host.indexOf('.')
    return dot > 0 ? instances.get(host.slice(dot + 1)) : undefined
  }

  const tokenOk = (inst, req) => {
    const auth = req.headers.authorization || ''
    return inst.tokens.includes(auth.replace(/^Bearer /, ''))
  }

  // A frame to the sockets of `host` subscribed to the document or its doctype.
  const relay = (host, event, type, id, doc) => {
    const frame = JSON.stringify({ event, payload: { type, id, doc } })
    for (const ws of subscribers.get(host) || []) {
      if (ws.subs.has(`${type}/${id}`) || ws.subs.has(`${type}/`)) ws.send(frame)
    }
  }

  // cozy-stack's processes read document events off Redis (`pkg/realtime/redis_hub.go`:
  // `<doctype>,<event JSON>`) and relay them to the instance's websockets.
  let events = null
  if (config.redisUrl && RedisClient) {
    events = RedisClient.createClient({ url: config.redisUrl })
    await events.connect()
    await events.subscribe('realtime:events', payload => {
      const comma = payload.indexOf(',')
      const doctype = payload.slice(0, comma)
      const e = JSON.parse(payload.slice(comma + 1))
      const doc = { ...e.doc }
      delete doc._type
      log.push(`realtime ${e.verb} ${doctype} ${doc._id}`)
      relay(String(e.domain).replace(/:\d+$/, ''), e.verb, doctype, doc._id, doc)
    })
  }

  const cors = (req, inst) => {
    const origin = req.headers.origin
    if (!origin) return {}
    const originHost = new URL(origin).hostname
    // cozy-stack allows an instance's own apps (web/middlewares/cors.go).
    if (originHost === inst.host || originHost.endsWith('.' + inst.host)) {
      return {
        'access-control-allow-origin': origin,
        'access-control-allow-credentials': 'true',
        'access-control-allow-headers': 'Authorization, Content-Type, Accept',
        'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS'
      }
    }
    return {}
  }

  function toBroker (req, res, body) {
    const headers = { ...req.headers, 'x-forwarded-proto': 'https', 'x-forwarded-for': '127.0.0.1' }
    const out = http.request({
      host: broker.hostname,
      port: broker.port,
      method: req.method,
      path: req.url,
      headers
    }, up => {
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })
    out.on('error', e => { res.writeHead(502); res.end('broker unreachable: ' + e.message) })
    out.end(body)
  }

  function couchRequest (method, path, body) {
    return new Promise((resolve, reject) => {
      const auth = couch.username ? 'Basic ' + Buffer.from(decodeURIComponent(couch.username) + ':' + decodeURIComponent(couch.password)).toString('base64') : undefined
      const req = http.request({
        host: couch.hostname,
        port: couch.port,
        method,
        path,
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }
      }, res => {
        const chunks = []
        res.on('data', c => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }))
      })
      req.on('error', reject)
      req.end(body ? JSON.stringify(body) : undefined)
    })
  }

  async function data (req, res, inst, doctype, id) {
    if (config.dataDown) return json(res, 503, { error: 'stand-in /data is down' }, cors(req, inst))
    if (!tokenOk(inst, req)) return json(res, 401, { error: 'unauthorized' }, cors(req, inst))
    // The broker's tests keep each scene's databases under a prefix of their own.
    const db = encodeURIComponent((config.couchPrefix || '') + inst.prefix + '/' + doctype.replace(/\./g, '-'))
    const path = `/${db}/${encodeURIComponent(id)}`
    if (req.method === 'GET') {
      const r = await couchRequest('GET', path)
      if (r.status === 404) return json(res, 404, { status: '404', error: 'not_found', reason: 'missing' }, cors(req, inst))
      return json(res, r.status, r.body, cors(req, inst))
    }
    if (req.method === 'PUT') {
      const doc = JSON.parse((await readBody(req)).toString())
      delete doc._type
      const r = await couchRequest('PUT', path, doc)
      if (r.status === 409) return json(res, 409, { status: '409', error: 'conflict', reason: 'Document update conflict.' }, cors(req, inst))
      if (r.status >= 300) return json(res, r.status, r.body, cors(req, inst))
      return json(res, 200, { ok: true, id, rev: r.body.rev, type: doctype, data: { ...doc, _id: id, _rev: r.body.rev } }, cors(req, inst))
    }
    return json(res, 405, { error: 'method not allowed' })
  }

  function homePage (req, inst, script) {
    const cookies = Object.fromEntries((req.headers.cookie || '').split(/;\s*/).filter(Boolean).map(c => [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)]))
    const loggedIn = cookies[inst.sessionCookie] !== undefined
    const dataCozy = loggedIn ? ` data-cozy='${JSON.stringify({ domain: inst.domain, token: inst.tokens[0] })}'` : ''
    return `<!doctype html><html><head><meta charset="utf-8"><title>Home</title></head>
<body><div role="application"${dataCozy}><button id="connect">Connect</button><p id="status">loading</p></div>
<script src="/${script}.js?v=${config.harvest}"></script></body></html>`
  }

  function consentPage (url) {
    const q = url.searchParams
    const back = new URL(q.get('redirect_uri'))
    const allow = new URL(back)
    allow.searchParams.set('code', 'code-' + Math.random().toString(36).slice(2))
    allow.searchParams.set('state', q.get('state'))
    const deny = new URL(back)
    deny.searchParams.set('error', 'access_denied')
    deny.searchParams.set('state', q.get('state'))
    return `<!doctype html><html><head><title>Provider</title></head><body>
<p>Allow ${q.get('client_id')} to read your data?</p>
<a id="allow" href="${allow.href.replace(/"/g, '&quot;')}">Allow</a>
<a id="deny" href="${deny.href.replace(/"/g, '&quot;')}">Deny</a></body></html>`
  }

  async function handle (req, res) {
    const host = hostOf(req)
    const url = new URL(req.url, `https://${req.headers.host}`)
    log.push(`${req.method} ${host}${url.pathname}`)
    try {
      if (host === 'provider.cozy.test' && url.pathname === '/authorize') {
        log.push('authorize ' + url.search)
        res.writeHead(200, { 'content-type': 'text/html' })
        return res.end(consentPage(url))
      }
      if (host === config.callbackHost) return toBroker(req, res, await readBody(req))
      const inst = instances.get(host)
      if (inst) {
        if (req.method === 'OPTIONS') { res.writeHead(204, cors(req, inst)); return res.end() }
        if (url.pathname.startsWith('/accounts/')) return toBroker(req, res, await readBody(req))
        const notify = url.pathname.match(/^\/realtime\/([^/]+)\/([^/]+)$/)
        if (notify && req.method === 'POST') {
          if (config.realtimeDown) return json(res, 503, { error: 'realtime down' }, cors(req, inst))
          if (!tokenOk(inst, req)) return json(res, 401, { error: 'unauthorized' }, cors(req, inst))
          const body = JSON.parse((await readBody(req)).toString())
          relay(host, 'NOTIFIED', notify[1], notify[2], body)
          log.push('notified ' + JSON.stringify(body.data))
          res.writeHead(204, cors(req, inst))
          return res.end()
        }
        const doc = url.pathname.match(/^\/data\/([^/]+)\/([^/]+)$/)
        if (doc) return await data(req, res, inst, decodeURIComponent(doc[1]), decodeURIComponent(doc[2]))
      }
      const app = instanceOfApp(host)
      if (app && host.startsWith('home.')) {
        const script = url.pathname === '/opener.html' ? 'opener' : url.pathname === '/' ? 'home' : null
        if (script) {
          res.writeHead(200, { 'content-type': 'text/html' })
          return res.end(homePage(req, app, script))
        }
        const bundle = url.pathname.match(/^\/(opener|home)\.js$/)
        if (bundle) {
          res.writeHead(200, { 'content-type': 'text/javascript' })
          return res.end(bundles[bundle[1]])
        }
      }
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('stand-in: nothing here')
    } catch (e) {
      log.push('error ' + e.stack)
      res.writeHead(500)
      res.end(String(e))
    }
  }

  const server = tls ? https.createServer(tls, handle) : http.createServer(handle)
  const wss = WebSocketServer && new WebSocketServer({ noServer: true, handleProtocols: p => (p.has('io.cozy.websocket') ? 'io.cozy.websocket' : false) })
  if (wss) server.on('upgrade', (req, socket, head) => {
    const host = hostOf(req)
    const inst = instances.get(host)
    if (!inst || !req.url.startsWith('/realtime/') || config.realtimeDown) return socket.destroy()
    wss.handleUpgrade(req, socket, head, ws => {
      ws.subs = new Set()
      ws.authed = false
      if (!subscribers.has(host)) subscribers.set(host, new Set())
      subscribers.get(host).add(ws)
      ws.on('close', () => subscribers.get(host).delete(ws))
      ws.on('message', raw => {
        const m = JSON.parse(raw.toString())
        if (m.method === 'AUTH') {
          ws.authed = inst.tokens.includes(m.payload)
          if (!ws.authed) ws.close()
        } else if (m.method === 'SUBSCRIBE' && ws.authed) {
          ws.subs.add(`${m.payload.type}/${m.payload.id || ''}`)
          log.push('subscribed ' + JSON.stringify(m.payload))
        }
      })
    })
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, '127.0.0.1', resolve)
  })
  return {
    log,
    port: server.address().port,
    close: async () => {
      if (events) await events.quit().catch(() => {})
      await new Promise(resolve => { if (wss) wss.close(); server.closeAllConnections(); server.close(resolve) })
    }
  }
}
