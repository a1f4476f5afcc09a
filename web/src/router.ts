/**
 * Client routes, in the URL hash: the embedded page's URL belongs to Nextcloud, and the PHP proxy
 * only adds its CSP nonce to documents whose path ends in `.html`, so the document stays
 * `index.html` and the route lives after `#`. Deep links such as `…/status` are redirected there by
 * Waggle (src/spa.rs).
 */
import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router'
import MePage from './views/MePage.vue'
import SettingsPage from './views/SettingsPage.vue'
import StatusPage from './views/StatusPage.vue'

export const routes: RouteRecordRaw[] = [
	{ path: '/', redirect: '/me' },
	{ path: '/me', name: 'me', component: MePage },
	{ path: '/status', name: 'status', component: StatusPage, meta: { admin: true } },
	{ path: '/settings', name: 'settings', component: SettingsPage, meta: { admin: true } },
	{ path: '/:rest(.*)', redirect: '/me' },
]

export function createWaggleRouter() {
	return createRouter({ history: createWebHashHistory(), routes })
}
