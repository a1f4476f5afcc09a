import { flushPromises } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import { WaggleError } from '../../src/api.ts'
import App from '../../src/App.vue'
import MePage from '../../src/views/MePage.vue'
import SettingsPage from '../../src/views/SettingsPage.vue'
import StatusPage from '../../src/views/StatusPage.vue'
import { ALICE, fakeApi, mountWith, op, settings, status, until } from './fixtures.ts'

describe('App', () => {
	it('lists the admin pages for administrators only', async () => {
		const admin = await mountWith(App, fakeApi(), { attach: false })
		await until(() => admin.wrapper.text().includes('Status'), 'admin navigation')
		expect(admin.wrapper.text()).toContain('Settings and policy')
		admin.wrapper.unmount()

		const user = await mountWith(App, fakeApi({ session: vi.fn(async () => ALICE) }), { attach: false })
		await until(() => user.wrapper.text().includes('My connection'), 'user navigation')
		await flushPromises()
		expect(user.wrapper.text()).not.toContain('Settings and policy')
		user.wrapper.unmount()
	})

	it('tells a user who opens an admin page what to do instead of showing it', async () => {
		const { wrapper } = await mountWith(App, fakeApi({ session: vi.fn(async () => ALICE) }), { path: '/status', attach: false })
		await until(() => wrapper.find('[data-code="admin_required"]').exists(), 'admin_required note')
		expect(wrapper.text()).toContain('Ask a Nextcloud administrator')
		wrapper.unmount()
	})

	it('says what to do when the session cannot be loaded, and retries', async () => {
		const session = vi.fn()
			.mockRejectedValueOnce(new WaggleError(0, 'network', 'down'))
			.mockResolvedValue(ALICE)
		const { wrapper } = await mountWith(App, fakeApi({ session }), { attach: false })
		await until(() => wrapper.find('[data-code="network"]').exists(), 'network error')
		expect(wrapper.text()).toContain('Check your connection')
		await wrapper.find('.waggle-error__retry').trigger('click')
		await until(() => !wrapper.find('[data-code="network"]').exists(), 'retry')
		expect(session).toHaveBeenCalledTimes(2)
		wrapper.unmount()
	})
})

describe('MePage', () => {
	it('shows my link, my last sync with its events, and the calls made as me', async () => {
		const api = fakeApi({
			meLink: vi.fn(async () => ({ state: 'unreachable' as const, checked_ms: 1, latency_ms: null, status: null, message: 'connect refused' })),
			me: vi.fn(async () => ({ user: 'alice', display_name: 'Alice', last_sync_ms: 1_700_000_000_000, events: [{ id: 'e1', type: 'user.updated', created_ms: 1, state: 'delivered' as const, attempts: 1 }] })),
			meCalls: vi.fn(async () => ({ items: [{ id: 7, at_ms: 1, user: 'alice', method: 'PROPFIND', path: '/remote.php/dav/files/alice/', status: 207, duration_ms: 31 }], next: 'c2' })),
		})
		const { wrapper } = await mountWith(MePage, api, { session: ALICE })
		await until(() => wrapper.find('[data-test="my-calls"]').exists(), 'calls table')
		expect(wrapper.find('[data-test="link"]').text()).toContain('Unreachable')
		expect(wrapper.find('[data-test="link"]').text()).toContain('connect refused')
		expect(wrapper.find('[data-test="my-events"]').text()).toContain('user.updated')
		expect(wrapper.find('[data-test="my-calls"]').text()).toContain('PROPFIND')

		const more = wrapper.findAll('button').find((b) => b.text().includes('Load older calls'))!
		await more.trigger('click')
		await flushPromises()
		expect(api.meCalls).toHaveBeenLastCalledWith('c2')
		wrapper.unmount()
	})
})

describe('StatusPage', () => {
	it('says what is missing and how to set it when Waggle is unconfigured', async () => {
		const api = fakeApi({ status: vi.fn(async () => status({ configured: false, missing: ['service_url'], service: { url: null, source: 'default', reachable: null, latency_ms: null, checked_ms: null, error: null }, tenant_key: { state: 'none', id: null, age_secs: null, error: null } })) })
		const { wrapper } = await mountWith(StatusPage, api, { path: '/status' })
		await until(() => wrapper.find('[data-test="unconfigured"]').exists(), 'unconfigured note')
		const note = wrapper.find('[data-test="unconfigured"]').text()
		expect(note).toContain('service_url')
		expect(note).toContain('WAGGLE_SERVICE_URL')
		wrapper.unmount()
	})

	it('runs "sync now" with visible progress and reloads the status when it ends', async () => {
		let release!: () => void
		const gate = new Promise<void>((r) => { release = r })
		const operation = vi.fn()
			.mockImplementationOnce(async () => { await gate; return op({ progress: 60, message: 'comparing groups' }) })
			.mockResolvedValue(op({ state: 'succeeded', progress: 100, message: '7 events' }))
		const api = fakeApi({ operation })
		const { wrapper } = await mountWith(StatusPage, api, { path: '/status' })
		await until(() => wrapper.find('[data-test="sync-now"]').exists(), 'sync button')
		expect(wrapper.find('[data-test="signature-failures"]').text()).toContain('expired')
		expect(wrapper.find('[data-test="php-proxy-note"]').exists()).toBe(true)

		await wrapper.find('[data-test="sync-now"] button').trigger('click')
		await until(() => wrapper.find('[data-test="sync-now"]').attributes('data-state') === 'running', 'running state')
		release()
		await until(() => wrapper.find('[data-test="sync-now"]').attributes('data-state') === 'succeeded', 'done', 5000)
		expect(wrapper.find('[data-test="sync-now"]').text()).toContain('7 events')
		expect(api.syncNow).toHaveBeenCalledTimes(1)
		expect((api.status as ReturnType<typeof vi.fn>).mock.calls.length).toBeGreaterThanOrEqual(2)
		wrapper.unmount()
	})

	it('filters the audit log by user', async () => {
		const api = fakeApi()
		const { wrapper } = await mountWith(StatusPage, api, { path: '/status' })
		await until(() => wrapper.find('.waggle-filters').exists(), 'filters')
		await wrapper.find('.waggle-filters input').setValue('alice')
		await wrapper.find('.waggle-filters').trigger('submit')
		await flushPromises()
		expect(api.audit).toHaveBeenLastCalledWith(expect.objectContaining({ user: 'alice' }), null)
		wrapper.unmount()
	})
})

describe('SettingsPage', () => {
	it('shows a value set by the environment as locked, and never sends it', async () => {
		const api = fakeApi({ settings: vi.fn(async () => settings({ service_url: { value: 'https://env.example/', source: 'env', locked: true } })) })
		const { wrapper } = await mountWith(SettingsPage, api, { path: '/settings' })
		await until(() => wrapper.find('[data-test="settings-form"]').exists(), 'form')
		const url = wrapper.find('input[data-test="service-url"]')
		expect(url.attributes('disabled')).toBeDefined()
		expect(wrapper.text()).toContain('Set by the environment (WAGGLE_SERVICE_URL)')

		const textareas = wrapper.findAll('textarea')
		await textareas[1].setValue('/ocs/v2.php/apps/deck/\n')
		await wrapper.find('[data-test="settings-form"]').trigger('submit')
		await flushPromises()
		expect(api.saveSettings).toHaveBeenCalledWith({ policy: { allowed_prefixes: ['/ocs/v2.php/apps/deck/'] } })
		wrapper.unmount()
	})

	it('follows the pairing that setting a service URL starts', async () => {
		const api = fakeApi({
			settings: vi.fn(async () => settings({ service_url: { value: '', source: 'default', locked: false } })),
			saveSettings: vi.fn(async () => ({ settings: settings(), operation: op({ kind: 'bootstrap' as const, progress: 10, message: 'asking the service' }) })),
			operation: vi.fn(async () => op({ kind: 'bootstrap' as const, state: 'succeeded', progress: 100, message: 'key k1 active' })),
		})
		const { wrapper } = await mountWith(SettingsPage, api, { path: '/settings' })
		await until(() => wrapper.find('[data-test="service-url"]').exists(), 'form')
		await wrapper.find('input[data-test="service-url"]').setValue('https://saas.example/')
		await wrapper.find('[data-test="settings-form"]').trigger('submit')
		await until(() => wrapper.find('[data-test="bootstrap"]').text().includes('key k1 active'), 'bootstrap done', 5000)
		expect(api.saveSettings).toHaveBeenCalledWith({ service_url: 'https://saas.example/' })
		wrapper.unmount()
	})

	it('previews a policy decision with its reason', async () => {
		const api = fakeApi({ previewPolicy: vi.fn(async () => ({ allowed: false, code: 'read_only', reason: 'Read-only mode lets only reading verbs pass.' })) })
		const { wrapper } = await mountWith(SettingsPage, api, { path: '/settings' })
		await until(() => wrapper.find('.waggle-preview').exists(), 'preview form')
		await wrapper.find('.waggle-preview').trigger('submit')
		await until(() => wrapper.find('[data-test="preview-result"]').exists(), 'preview result')
		expect(wrapper.find('[data-test="preview-result"]').attributes('data-allowed')).toBe('false')
		expect(wrapper.find('[data-test="preview-result"]').text()).toContain('Read-only mode')
		expect(api.previewPolicy).toHaveBeenCalledWith('GET', '/remote.php/dav/files/', 'admin')
		wrapper.unmount()
	})
})
