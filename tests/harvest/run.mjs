// Runs one scenario of cozy-harvest-lib's OAuth flow in Debian's Chromium against the
// broker, and prints what happened as JSON (the Rust test, tests/harvest.rs, asserts).
//
//   node tests/harvest/run.mjs <config.json>
//
// The config names the broker, CouchDB, the instances, the Harvest package to bundle
// (`harvest35` or `harvest39`, npm aliases of cozy-harvest-lib) and the scenario. The npm
// packages live in $BROKER_TEST_HARVEST_MODULES (installed by scripts/harvest.sh).

import { createRequire } from 'node:module'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startStack } from './stand-in-stack.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const modules = process.env.BROKER_TEST_HARVEST_MODULES
if (!modules) throw new Error('BROKER_TEST_HARVEST_MODULES is not set (scripts/harvest.sh installs them)')
const require = createRequire(path.join(modules, 'noop.js'))
const esbuild = require('esbuild')
const puppeteer = require('puppeteer-core')
const { WebSocketServer } = require('ws')
const RedisClient = require('redis')

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const scenario = config.scenario
const TIMEOUT = 20000

function certificate () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harvest-tls-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '1', '-subj', '/CN=cozy.test', '-keyout', path.join(dir, 'key.pem'),
    '-out', path.join(dir, 'cert.pem'), '-addext', 'subjectAltName=DNS:*.cozy.test,DNS:*.alice.cozy.test,DNS:*.alice.example.org,DNS:alice.example.org'], { stdio: 'ignore' })
  return { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }
}

async function bundle (entry) {
  const out = await esbuild.build({
    entryPoints: [path.join(here, 'pages', entry + '.js')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    nodePaths: [modules],
    alias: { harvest: config.harvest },
    define: { 'process.env.NODE_ENV': '"production"', global: 'window' },
    // The apps' webpack builds provide `process` to the browser; so does this bundle.
    banner: { js: "var process = { env: { NODE_ENV: 'production' }, browser: true, nextTick: function (f) { setTimeout(f, 0) } };" },
    logLevel: 'error'
  })
  return out.outputFiles[0].text
}

const wait = ms => new Promise(resolve => setTimeout(resolve, ms))

/** A page's address and the first of its text, for the report. */
async function seen (page) {
  try {
    return { url: page.url(), text: (await page.evaluate(() => document.body ? document.body.innerText : '')).slice(0, 600) }
  } catch (e) {
    return { url: page.url(), text: '(gone: ' + e.message + ')' }
  }
}

/**
 * Walks a browser window through the provider and back: consents (or refuses), and
 * confirms on the broker's confirmation page if one shows and the scenario says so.
 * Returns the pages it saw.
 */
async function walk (page, context, report) {
  const pages = []
  await page.waitForSelector('#allow, #deny, #confirm', { timeout: TIMEOUT }).catch(() => {})
  pages.push(await seen(page))
  if (!(await page.$('#allow'))) return pages
  if (scenario.closeAtProvider) {
    // The person closes the window at the provider's page, half way.
    await page.close()
    return pages
  }
  const link = await page.$eval(scenario.consent === 'deny' ? '#deny' : '#allow', a => a.href)
  report.authorize = Object.fromEntries(new URL(page.url()).searchParams)
  let target = page
  if (scenario.returnLeg === 'other-context') {
    // The provider hands the browser back in another cookie jar (an app hand-off, the
    // default browser): the same address, opened where the start left no cookie.
    const other = await report.browser.createBrowserContext()
    if (scenario.otherLegLoggedIn) await login(other)
    target = await other.newPage()
    await target.goto(link, { timeout: TIMEOUT }).catch(e => pages.push({ url: link, text: 'navigation: ' + e.message }))
  } else {
    await Promise.all([page.waitForNavigation({ timeout: TIMEOUT }).catch(() => {}), page.click(scenario.consent === 'deny' ? '#deny' : '#allow')])
  }
  // Follow the broker's pages until the app's page is reached.
  for (let i = 0; i < 4; i++) {
    await target.waitForSelector('#status, #confirm, body', { timeout: TIMEOUT }).catch(() => {})
    if (target.isClosed()) break
    pages.push(await seen(target))
    const confirm = await target.$('#confirm').catch(() => null)
    if (confirm && scenario.confirm) {
      await Promise.all([target.waitForNavigation({ timeout: TIMEOUT }).catch(() => {}), confirm.click()])
      continue
    }
    // The broker's failure page: the person reads it, then goes back to the app.
    const back = await target.$('#back').catch(() => null)
    if (back && scenario.followBack) {
      await Promise.all([target.waitForNavigation({ timeout: TIMEOUT }).catch(() => {}), back.click()])
      continue
    }
    break
  }
  if (!target.isClosed()) {
    await target.waitForFunction(() => { const s = document.getElementById('status'); return !s || s.textContent !== 'loading' }, { timeout: 5000 }).catch(() => {})
    if (!target.isClosed()) pages.push(await seen(target))
  }
  return pages
}

/** A konnector's refresh, on the instance host (the broker behind cozy-stack's proxy). */
function refreshThroughBroker (id, token) {
  const inst = config.instances.find(i => i.domain === scenario.instance)
  const broker = new URL(config.broker)
  return new Promise((resolve, reject) => {
    const req = require('node:http').request({
      host: broker.hostname,
      port: broker.port,
      method: 'POST',
      path: `/accounts/${scenario.konnector.slug}/${id}/refresh`,
      headers: { host: inst.domain, authorization: `Bearer ${token}`, accept: 'application/json' }
    }, res => { res.resume(); res.on('end', () => resolve(res.statusCode)) })
    req.on('error', reject)
    req.end()
  })
}

async function login (context) {
  if (!scenario.login) return
  const inst = config.instances.find(i => i.domain === scenario.instance)
  await context.setCookie({
    name: inst.sessionCookie,
    value: inst.sessionValue,
    domain: inst.cookieDomain,
    path: '/',
    secure: true,
    httpOnly: true,
    sameSite: 'Lax'
  })
}

async function main () {
  const tls = certificate()
  const bundles = { opener: await bundle('opener'), home: await bundle('home') }
  const stack = await startStack(config, tls, bundles, WebSocketServer, RedisClient)
  const browser = await puppeteer.launch({
    executablePath: process.env.BROKER_TEST_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors',
      ...(scenario.lang ? [`--accept-lang=${scenario.lang}`, `--lang=${scenario.lang}`] : []),
      '--host-resolver-rules=MAP *.cozy.test 127.0.0.1, MAP *.example.org 127.0.0.1']
  })
  const report = { scenario: scenario.name, harvest: config.harvest, browser }
  try {
    const context = await browser.createBrowserContext()
    await login(context)
    const inst = config.instances.find(i => i.domain === scenario.instance)
    const opener = await context.newPage()
    opener.on('console', m => stack.log.push('console ' + m.text()))
    opener.on('pageerror', e => stack.log.push('pageerror ' + e.message))
    await opener.goto(`https://home.${inst.domain}/opener.html`, { timeout: TIMEOUT })
    await opener.evaluate(s => { window.scenario = s }, scenario)
    const walks = []
    if (scenario.intents) {
      // The in-app browser: a fresh cookie jar (SFSafariViewController, Custom Tabs with
      // no cozy cookie), closed when Harvest asks or when the walk ends.
      let closeIab
      await opener.exposeFunction('showInAppBrowser', async url => {
        const iab = await browser.createBrowserContext()
        const page = await iab.newPage()
        page.goto(url, { timeout: TIMEOUT }).catch(() => {})
        const closed = new Promise(resolve => { closeIab = resolve })
        walks.push(walk(page, iab, report).then(p => { report.pages = p }))
        await Promise.race([closed, walks[0].then(() => wait(3000))])
        await iab.close().catch(() => {})
        return { state: 'dismiss' }
      })
      await opener.exposeFunction('closeInAppBrowser', async () => { if (closeIab) closeIab() })
    } else {
      context.on('targetcreated', async target => {
        if (target.type() !== 'page') return
        const popup = await target.page()
        walks.push(walk(popup, context, report).then(p => { report.pages = p }))
      })
    }
    await opener.click('#connect')
    // Harvest's answer, or, when it never comes (a dead end), a few seconds after the
    // browser's walk ended.
    let walked = null
    for (let t = 0; t < TIMEOUT * 2; t += 250) {
      if (await opener.evaluate(() => window.result !== undefined)) break
      if (walks.length && walked === null) Promise.all(walks).then(() => { walked = Date.now() })
      if (walked && Date.now() - walked > 4000) break
      await wait(250)
    }
    await Promise.all(walks)
    report.result = await opener.evaluate(() => window.result ?? null)
    if (scenario.watchRefresh && report.result && report.result.key) {
      // The Home app watching the account through cozy-client's realtime plugin
      // (cozy-realtime), as Harvest's ConnectionFlow does; the konnector refreshes it.
      const key = report.result.key
      await opener.evaluate(key => {
        window.updates = []
        window.client.plugins.realtime.subscribe('updated', 'io.cozy.accounts', key, doc => window.updates.push(doc))
      }, key)
      await wait(500)
      report.refreshStatus = await refreshThroughBroker(key, scenario.watchRefresh.token)
      await opener.waitForFunction(() => window.updates.length > 0, { timeout: 10000 }).catch(() => {})
      report.updates = await opener.evaluate(() => window.updates)
    }
    if (scenario.staleSave && report.result && report.result.key) {
      // Harvest holds the account it read after the connection; meanwhile the konnector
      // refreshes it (the broker rotates the refresh token); then Harvest saves its copy
      // with its own `updateAccount` (ensureDefaultFolderPathInAccount, prepareTriggerAccount
      // do), whose conflict merge lets the stale copy win.
      const key = report.result.key
      report.stale = await opener.evaluate(async key => await window.harvest.fetchAccount(window.client, key), key)
      report.refreshStatus = await refreshThroughBroker(key, scenario.staleSave.token)
      report.saved = await opener.evaluate(async acc => {
        try {
          const saved = await window.harvest.updateAccount(window.client, { ...acc, defaultFolderPath: '/Administratif/Svc' })
          return { ok: true, rev: saved && saved._rev }
        } catch (e) { return { error: String(e) } }
      }, report.stale)
    }
    // Harvest's entries are keyed by the UUID it sent as `state` (cozy's logger keeps its own).
    report.stateKeysLeft = await opener.evaluate(() => window.stateKeysLeft ? window.stateKeysLeft.filter(k => /^[0-9a-f-]{36}$/.test(k)) : null)
    const popups = (await context.pages()).filter(p => p !== opener)
    report.popupOpen = popups.some(p => !p.isClosed())
    if (report.result && report.result.key) {
      report.account = await opener.evaluate(async key => {
        try { return await window.harvest.fetchAccount(window.client, key) } catch (e) { return { fetchError: String(e) } }
      }, report.result.key)
    }
  } finally {
    delete report.browser
    report.log = stack.log
    await browser.close().catch(() => {})
    await stack.close()
  }
  process.stdout.write(JSON.stringify(report) + '\n')
}

main().catch(e => { console.error(e); process.exit(1) })
