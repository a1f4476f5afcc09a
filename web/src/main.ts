/**
 * Entry: mounts the SPA either into Nextcloud's embedded page (AppAPI top menu: an empty
 * `#content`, initial state under app `app_api`) or into our own `index.html` (`#waggle-app`).
 */
import { loadState } from '@nextcloud/initial-state'
import { createApp, ref, watch } from 'vue'
import App from './App.vue'
import { createApi, type Session } from './api.ts'
import { computeBase } from './base.ts'
import { CONTEXT } from './context.ts'
import { createWaggleRouter } from './router.ts'
import './theme.css'

/** What Waggle registers as initial state at enable (key `waggle` of app `app_api`). */
interface Boot {
	app_id?: string
	version?: string
}

function mountPoint(): { el: Element, embedded: boolean } {
	const own = document.getElementById('waggle-app')
	if (own) return { el: own, embedded: false }
	const content = document.getElementById('content')
	if (!content) throw new Error('Waggle: no #content to mount into')
	// NcContent renders Nextcloud's `#content-vue` itself; replacing the empty `#content` keeps the
	// page's layout rules from applying twice.
	const host = document.createElement('div')
	host.className = 'waggle-host'
	content.replaceWith(host)
	return { el: host, embedded: true }
}

/**
 * On the standalone page there is no Nextcloud theme: link Nextcloud's theme stylesheets (the ones
 * its own pages use), so the instance's colours apply. Only from Nextcloud 32 on: @nextcloud/vue
 * picks its styles for the version it finds in `window.OC`, which a standalone page lacks, so it
 * styles for the current palette; Nextcloud 31's palette means other things by some of the same
 * names. On 31 the built-in palette of theme.css (the default theme's colours) stays.
 */
function linkNextcloudTheme(ncRoot: string) {
	for (const [theme, media] of [['default', ''], ['dark', '(prefers-color-scheme: dark)']]) {
		const link = document.createElement('link')
		link.rel = 'stylesheet'
		link.href = `${ncRoot}/index.php/apps/theming/theme/${theme}.css?plain=1`
		if (media) link.media = media
		document.head.appendChild(link)
	}
}

function start() {
	const base = computeBase(import.meta.url)
	const { el, embedded } = mountPoint()
	const boot = embedded ? loadState<Boot | null>('app_api', 'waggle', null) : null
	if (boot?.app_id) base.appId = boot.app_id
	const api = createApi(base)
	const session = ref<Session | null>(null)
	if (!embedded && base.transport !== 'direct') {
		watch(session, (s) => {
			const major = Number.parseInt(s?.nextcloud_version ?? '', 10)
			if (major >= 32) linkNextcloudTheme(base.ncRoot)
		}, { once: true })
	}
	const app = createApp(App)
	app.provide(CONTEXT, { api, base, session, embedded })
	app.use(createWaggleRouter())
	app.mount(el)
	document.documentElement.dataset.waggle = 'mounted'
}

start()
