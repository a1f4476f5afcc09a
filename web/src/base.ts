/**
 * Where Waggle lives, computed at run time from the URL the bundle was loaded from, never hard-coded.
 *
 * The hashed entry module sits at `<app base>/assets/waggle-<hash>.js`, so `../` of its URL is the
 * app base in every way in: the PHP proxy (`/index.php/apps/app_api/proxy/<appid>/`, also used by
 * AppAPI's embedded page), pretty URLs (`/apps/app_api/proxy/<appid>/`) and HaRP (`/exapps/<appid>/`).
 * Nextcloud's root (its webroot, for links into Nextcloud) is what precedes those prefixes.
 */

/** How the browser reaches Waggle. */
export type Transport = 'php-proxy' | 'harp' | 'direct'

export interface Base {
	/** Absolute URL of the app base, with a trailing slash. */
	app: string
	/** Nextcloud's webroot path, without a trailing slash ('' at the domain root). */
	ncRoot: string
	/** Which reverse proxy carries our requests (the PHP proxy buffers streams; HaRP does not). */
	transport: Transport
	/** The app id, as it appears in the URL (`waggle` unless registered under another id). */
	appId: string
}

const PROXY = /^(.*?)(?:\/index\.php)?\/apps\/app_api\/proxy\/([^/]+)\//
const HARP = /^(.*?)\/exapps\/([^/]+)\//

/** Computes the base from the entry module's URL (`import.meta.url`). */
export function computeBase(entryUrl: string): Base {
	const app = new URL('../', entryUrl)
	app.search = ''
	app.hash = ''
	const path = app.pathname
	let m = PROXY.exec(path)
	if (m) {
		return { app: app.href, ncRoot: m[1], transport: 'php-proxy', appId: decodeURIComponent(m[2]) }
	}
	m = HARP.exec(path)
	if (m) {
		return { app: app.href, ncRoot: m[1], transport: 'harp', appId: decodeURIComponent(m[2]) }
	}
	return { app: app.href, ncRoot: '', transport: 'direct', appId: 'waggle' }
}

/** The URL of a connector API path (`status`, `admin/settings`, …) under `<app base>/waggle/`. */
export function apiUrl(base: Base, path: string): string {
	return new URL(`waggle/${path.replace(/^\/+/, '')}`, base.app).href
}

/** An absolute-path URL inside Nextcloud (`/settings/admin/app_api` → `<root>/index.php/settings/…`). */
export function ncUrl(base: Base, path: string): string {
	return `${base.ncRoot}/index.php${path}`
}
