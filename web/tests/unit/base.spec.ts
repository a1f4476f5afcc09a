import { describe, expect, it } from 'vitest'
import { apiUrl, computeBase, ncUrl } from '../../src/base.ts'

describe('computeBase', () => {
	it('finds the app base and Nextcloud root under the PHP proxy', () => {
		const b = computeBase('https://cloud.example/index.php/apps/app_api/proxy/waggle/assets/waggle-abc.js?v=1')
		expect(b).toEqual({ app: 'https://cloud.example/index.php/apps/app_api/proxy/waggle/', ncRoot: '', transport: 'php-proxy', appId: 'waggle' })
		expect(apiUrl(b, 'admin/status')).toBe('https://cloud.example/index.php/apps/app_api/proxy/waggle/waggle/admin/status')
		expect(ncUrl(b, '/settings/admin')).toBe('/index.php/settings/admin')
	})

	it('keeps a Nextcloud installed in a sub folder, with pretty URLs', () => {
		const b = computeBase('https://example.org/nextcloud/apps/app_api/proxy/waggle/assets/w.js')
		expect(b.ncRoot).toBe('/nextcloud')
		expect(b.transport).toBe('php-proxy')
		expect(ncUrl(b, '/apps/files/')).toBe('/nextcloud/index.php/apps/files/')
	})

	it('recognises HaRP and another app id', () => {
		const b = computeBase('https://cloud.example/sub/exapps/waggle_test/assets/w.js')
		expect(b).toMatchObject({ app: 'https://cloud.example/sub/exapps/waggle_test/', ncRoot: '/sub', transport: 'harp', appId: 'waggle_test' })
	})

	it('falls back to the directory above the bundle when served directly', () => {
		const b = computeBase('http://127.0.0.1:23000/assets/w.js')
		expect(b).toMatchObject({ app: 'http://127.0.0.1:23000/', ncRoot: '', transport: 'direct' })
	})

	it('never lets an API path escape the app base', () => {
		const b = computeBase('https://cloud.example/exapps/waggle/assets/w.js')
		expect(apiUrl(b, '/session')).toBe('https://cloud.example/exapps/waggle/waggle/session')
	})
})
