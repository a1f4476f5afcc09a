/** Shared fixtures for component tests: a fake Api (vi.fn per route) and a mount helper. */
import { mount } from '@vue/test-utils'
import { vi } from 'vitest'
import { type Component, ref } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'
import type { AdminSettings, AdminStatus, Api, Operation, Session } from '../../src/api.ts'
import { computeBase } from '../../src/base.ts'
import { CONTEXT } from '../../src/context.ts'
import { routes } from '../../src/router.ts'

export const ADMIN: Session = { user: 'admin', display_name: 'Admin', is_admin: true, app: { id: 'waggle', version: '0.1.0' }, configured: true, nextcloud_version: '31.0.6' }
export const ALICE: Session = { ...ADMIN, user: 'alice', display_name: 'Alice', is_admin: false }

export function status(over: Partial<AdminStatus> = {}): AdminStatus {
	return {
		configured: true,
		missing: [],
		service: { url: 'https://saas.example/', source: 'env', reachable: true, latency_ms: 12, checked_ms: 1_700_000_000_000, error: null },
		tenant_key: { state: 'active', id: 'k-2024', age_secs: 7200, error: null },
		outbox: { depth: 3, oldest_pending_age_secs: 90, dead_letters: 1 },
		reconcile: { running: false, last: { started_ms: 1_700_000_000_000, finished_ms: 1_700_000_000_420, users: 5, groups: 2, events: 7, error: null } },
		signature_failures_24h: { expired: 2, bad_signature: 1 },
		versions: { waggle: '0.1.0', nextcloud: '31.0.6', app_api: '5.0.2' },
		metrics: {},
		...over,
	}
}

export function settings(over: Partial<AdminSettings> = {}): AdminSettings {
	return {
		service_url: { value: 'https://saas.example/', source: 'settings', locked: false },
		sync_interval_secs: { value: 300, source: 'default', locked: false },
		pairing_code: { value: '', source: 'default', locked: false, is_set: false },
		policy: {
			read_only: { value: false, source: 'default', locked: false },
			apps: { value: [], source: 'default', locked: false },
			allowed_prefixes: { value: [], source: 'default', locked: false },
			denied_prefixes: { value: ['/remote.php/dav/trashbin/'], source: 'settings', locked: false },
		},
		...over,
	}
}

export function op(over: Partial<Operation> = {}): Operation {
	return { id: 'op-1', kind: 'sync', state: 'running', progress: 0, message: '', started_ms: 1, finished_ms: null, ...over }
}

export function fakeApi(over: Partial<Api> = {}): Api {
	return {
		session: vi.fn(async () => ADMIN),
		me: vi.fn(async () => ({ user: 'admin', display_name: 'Admin', last_sync_ms: null, events: [] })),
		meLink: vi.fn(async () => ({ state: 'ok' as const, checked_ms: 1, latency_ms: 5, status: 200, message: '' })),
		meCalls: vi.fn(async () => ({ items: [], next: null })),
		status: vi.fn(async () => status()),
		audit: vi.fn(async () => ({ items: [], next: null })),
		deadLetters: vi.fn(async () => ({ items: [], next: null })),
		replay: vi.fn(async () => op({ kind: 'replay' })),
		syncNow: vi.fn(async () => op()),
		rotateKey: vi.fn(async () => op({ kind: 'rotate' })),
		operation: vi.fn(async () => op({ state: 'succeeded', progress: 100, message: 'ok' })),
		settings: vi.fn(async () => settings()),
		saveSettings: vi.fn(async () => ({ settings: settings(), operation: null })),
		previewPolicy: vi.fn(async () => ({ allowed: true, code: 'allowed', reason: 'ok' })),
		...over,
	}
}

/** Mounts `component` with the Waggle context and a router at `path`. */
export async function mountWith(component: Component, api: Api, opts: { session?: Session | null, path?: string, url?: string, attach?: boolean } = {}) {
	// Nextcloud's layout provides this; NcContent teleports its keyboard help into it.
	if (!document.getElementById('skip-actions')) {
		const skip = document.createElement('div')
		skip.id = 'skip-actions'
		document.body.appendChild(skip)
	}
	const router = createRouter({ history: createMemoryHistory(), routes })
	await router.push(opts.path ?? '/me')
	await router.isReady()
	const session = ref<Session | null>(opts.session === undefined ? ADMIN : opts.session)
	const base = computeBase(opts.url ?? 'https://cloud.example/index.php/apps/app_api/proxy/waggle/assets/waggle-x.js')
	const wrapper = mount(component, {
		global: { plugins: [router], provide: { [CONTEXT as symbol]: { api, base, session, embedded: false } } },
		attachTo: opts.attach === false ? undefined : document.body,
	})
	return { wrapper, router, session }
}

/** Waits until `check` passes (component tests: promises resolve over a few ticks). */
export async function until(check: () => boolean, what: string, ms = 2000) {
	const end = Date.now() + ms
	while (!check()) {
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
		await new Promise((r) => setTimeout(r, 5))
	}
}
