#!/usr/bin/env node
/**
 * The browser run behind `tests/api/browser.rs`: Debian's Chromium, headless, driven by
 * playwright-core, against a stand-in Nextcloud front (WAGGLE_FRONT) that proxies to the real
 * Waggle with fakes behind it. Opens every page both ways in, checks real data from the fakes,
 * clicks "Sync now", and saves screenshots (WAGGLE_SCREENSHOTS). Any CSP violation, page error or
 * failed check exits non-zero. Prints one JSON line of figures (time to first render).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const FRONT = process.env.WAGGLE_FRONT
const SHOTS = process.env.WAGGLE_SCREENSHOTS
if (!FRONT || !SHOTS) throw new Error('WAGGLE_FRONT and WAGGLE_SCREENSHOTS are required')
const PROXY = `${FRONT}/index.php/apps/app_api/proxy/waggle/`
const EMBEDDED = `${FRONT}/index.php/apps/app_api/embedded/waggle/main`
const TIMEOUT = 15_000

mkdirSync(SHOTS, { recursive: true })
const profile = mkdtempSync(join(tmpdir(), 'waggle-chromium-'))
const figures = {}
const problems = []
/** The page being checked, for a screenshot if the run fails. */
let current = null

function check(ok, what) {
	if (!ok) problems.push(what)
	return ok
}

const context = await chromium.launchPersistentContext(profile, {
	executablePath: process.env.WAGGLE_CHROMIUM || '/usr/bin/chromium',
	headless: true,
	args: [
		'--headless', '--no-sandbox', '--disable-gpu',
		'--disable-quic', '--no-first-run', '--disable-background-networking',
		'--disable-component-update', '--disable-sync',
	],
	viewport: { width: 1280, height: 860 },
	locale: 'en-US',
	timezoneId: 'UTC',
})

// Every page reports CSP violations and uncaught errors; both fail the run.
await context.addInitScript(() => {
	window.__violations = []
	document.addEventListener('securitypolicyviolation', (e) => {
		window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`)
	})
})

async function signIn(user) {
	await context.clearCookies()
	await context.addCookies([{ name: 'nc_test_user', value: user, url: FRONT }])
}

async function open(url, { colorScheme = 'light', viewport = { width: 1280, height: 860 } } = {}) {
	const page = await context.newPage()
	await page.emulateMedia({ colorScheme })
	await page.setViewportSize(viewport)
	page.on('pageerror', (e) => problems.push(`page error on ${url}: ${e.message}`))
	page.on('console', (m) => {
		if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) problems.push(`console: ${m.text()}`)
	})
	current = page
	const started = Date.now()
	await page.goto(url, { waitUntil: 'load' })
	await page.waitForSelector('html[data-waggle="mounted"]', { timeout: TIMEOUT })
	await page.waitForSelector('#app-navigation-vue, .app-navigation', { timeout: TIMEOUT })
	return { page, started }
}

async function settled(page) {
	// No spinner left on the page: every section has its data (or its error).
	await page.waitForFunction(() => !document.querySelector('.waggle-page .loading-icon, .waggle-page [role="img"].material-design-icon.loading-icon'), null, { timeout: TIMEOUT }).catch(() => {})
	await page.waitForTimeout(150) // let transitions finish before a screenshot (not an assertion)
}

async function violations(page, where) {
	const v = await page.evaluate(() => window.__violations)
	check(v.length === 0, `CSP violations on ${where}: ${v.join(', ')}`)
}

async function shot(page, name) {
	await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false })
}

try {
	// --- Standalone, through the PHP proxy, as an administrator ---------------------------------
	await signIn('admin')
	{
		const { page, started } = await open(PROXY)
		await page.waitForSelector('[data-test="link"]', { timeout: TIMEOUT })
		figures.first_render_ms = Date.now() - started
		figures.first_render_navigation_ms = await page.evaluate(() => Math.round(performance.now()))
		check(page.url().endsWith('/index.html#/me'), `landing moved to index.html#/me (got ${page.url()})`)
		await settled(page)
		const link = await page.textContent('[data-test="link"]')
		check(/Working/.test(link), `Me: link state from the fake SaaS (got "${link}")`)
		const calls = await page.textContent('[data-test="my-calls"]').catch(() => '')
		check(/PROPFIND/.test(calls) && /remote\.php\/dav\/files\/admin/.test(calls), `Me: calls made as me from the audit table (got "${calls}")`)
		await violations(page, 'standalone Me')
		await shot(page, 'me')

		await page.click('a[href="#/status"]')
		await page.waitForSelector('[data-test="versions"]', { timeout: TIMEOUT })
		await settled(page)
		const versions = await page.textContent('[data-test="versions"]')
		check(/31\.0\.6/.test(versions) && /5\.0\.2/.test(versions), `Status: Nextcloud and AppAPI versions (got "${versions}")`)
		const key = await page.textContent('[data-test="tenant-key"]')
		check(/k-test-1/.test(key) && /Active/.test(key), `Status: tenant key id and state (got "${key}")`)
		check(await page.isVisible('[data-test="php-proxy-note"]'), 'Status: the PHP proxy note is shown under the PHP proxy')
		const audit = await page.textContent('[data-test="audit"]').catch(() => '')
		check(/alice/.test(audit), `Status: the audit log of all users (got "${audit}")`)
		await shot(page, 'status')

		// "Sync now": progress, completion, and the reconcile figures reloaded.
		const before = await page.textContent('[data-test="reconcile"]')
		await page.click('[data-test="sync-now"] button')
		await page.waitForSelector('[data-test="sync-now"][data-state="succeeded"]', { timeout: 30_000 })
		const after = await page.textContent('[data-test="reconcile"]')
		check(/Users/.test(after) && after !== before, `Status: reconcile shown after "Sync now" (before "${before}", after "${after}")`)
		await settled(page)
		await shot(page, 'status-after-sync')
		await violations(page, 'standalone Status')

		await page.click('a[href="#/settings"]')
		await page.waitForSelector('[data-test="settings-form"]', { timeout: TIMEOUT })
		await settled(page)
		const locked = await page.textContent('[data-test="settings-form"]')
		check(/Set by the environment \(WAGGLE_SERVICE_URL\)/.test(locked), 'Settings: the env-locked service URL says so')
		await page.fill('.waggle-preview__path input', '/remote.php/dav/files/alice/')
		await page.fill('.waggle-preview__user input', 'bob')
		await page.click('.waggle-preview button[type="submit"]')
		await page.waitForSelector('[data-test="preview-result"]', { timeout: TIMEOUT })
		const allowed = await page.getAttribute('[data-test="preview-result"]', 'data-allowed')
		check(allowed === 'false', `Settings: bob may not reach alice's files (allowed=${allowed})`)
		await shot(page, 'settings')
		await violations(page, 'standalone Settings')
		await page.close()
	}

	// --- Dark and narrow --------------------------------------------------------------------------
	{
		const { page } = await open(`${PROXY}index.html#/status`, { colorScheme: 'dark' })
		await page.waitForSelector('[data-test="versions"]', { timeout: TIMEOUT })
		await settled(page)
		const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor)
		check(bg !== 'rgb(255, 255, 255)', `dark: the page follows the dark palette (body ${bg})`)
		await shot(page, 'status-dark')
		await page.close()
	}
	{
		const { page } = await open(`${PROXY}index.html#/me`, { viewport: { width: 360, height: 740 } })
		await page.waitForSelector('[data-test="link"]', { timeout: TIMEOUT })
		await settled(page)
		const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
		check(overflow <= 0, `360 px: no horizontal scrolling of the page (overflow ${overflow} px)`)
		await shot(page, 'me-360')
		await page.close()
	}

	// --- A user who is not an administrator --------------------------------------------------------
	await signIn('alice')
	{
		const { page } = await open(PROXY)
		await page.waitForSelector('[data-test="link"]', { timeout: TIMEOUT })
		check(!(await page.isVisible('a[href="#/status"]')), 'alice: no Status entry in the navigation')
		await page.goto(`${PROXY}index.html#/status`)
		await page.waitForSelector('[data-code="admin_required"]', { timeout: TIMEOUT })
		await page.close()
	}

	// --- Embedded: AppAPI's top-menu page loads the registered script through the proxy ------------
	await signIn('admin')
	{
		const { page, started } = await open(EMBEDDED)
		await page.waitForSelector('[data-test="link"]', { timeout: TIMEOUT })
		figures.embedded_first_render_ms = Date.now() - started
		check(await page.isVisible('#header'), 'embedded: Nextcloud\'s header stays')
		check(!(await page.$('#content')), 'embedded: the empty #content was taken over')
		await settled(page)
		await violations(page, 'embedded')
		await shot(page, 'embedded')
		await page.close()
	}
} catch (e) {
	problems.push(`${e.name}: ${e.message.split('\n')[0]}`)
	if (current && !current.isClosed()) {
		const path = join(tmpdir(), `waggle-browser-failure-${Date.now()}.png`)
		await current.screenshot({ path }).catch(() => {})
		problems.push(`screenshot of the failing page: ${path}`)
	}
} finally {
	await context.close()
	rmSync(profile, { recursive: true, force: true })
}

console.log(JSON.stringify({ figures, problems }))
if (problems.length) {
	console.error(`browser checks failed:\n- ${problems.join('\n- ')}`)
	process.exitCode = 1
}
