/**
 * The connector JSON API under `<app base>/waggle/` (docs/UI-API.md is the contract; keep the two in
 * step). One typed function per route, one error type, and operation polling for long actions:
 * the PHP proxy buffers streamed responses, so progress is polled, never streamed.
 */
import axios from '@nextcloud/axios'
import type { AxiosError } from '@nextcloud/axios'
import { apiUrl, type Base } from './base.ts'

// --- Shapes (docs/UI-API.md §3) ---------------------------------------------------------------

/** Where a setting's value comes from. `env` wins over `settings`, which wins over `default`. */
export type Source = 'env' | 'settings' | 'default'

export interface Setting<T> {
	value: T
	source: Source
	/** Set by the environment: the UI shows it read-only and says so. */
	locked: boolean
}

export interface Session {
	user: string
	display_name: string
	is_admin: boolean
	app: { id: string, version: string }
	/** False until a service URL is set (env or settings). */
	configured: boolean
	/** Nextcloud's version (`31.0.6`), when Waggle knows it. */
	nextcloud_version: string | null
}

export type LinkState = 'ok' | 'unconfigured' | 'pending' | 'no_key' | 'unreachable' | 'refused' | 'error'

export interface MeLink {
	state: LinkState
	checked_ms: number
	latency_ms: number | null
	/** HTTP status the service answered with, when it answered. */
	status: number | null
	message: string
}

export interface EventRow {
	id: string
	type: string
	created_ms: number
	state: 'pending' | 'delivered' | 'dead'
	attempts: number
}

export interface Me {
	user: string
	display_name: string
	/** When the last reconciliation that saw this user finished; null before the first. */
	last_sync_ms: number | null
	/** The latest events about this user (newest first, at most 20). */
	events: EventRow[]
}

export interface AuditRow {
	id: number
	at_ms: number
	user: string
	method: string
	path: string
	status: number
	duration_ms: number
}

export interface Page<T> {
	items: T[]
	/** Opaque cursor for the next (older) page; null at the end. */
	next: string | null
}

export interface ReconcileReport {
	started_ms: number
	finished_ms: number
	users: number
	groups: number
	events: number
	error: string | null
}

export type KeyState = 'none' | 'pending' | 'active' | 'failed'

export interface AdminStatus {
	configured: boolean
	/** What is missing before Waggle can work, e.g. `["service_url"]`. */
	missing: string[]
	service: {
		url: string | null
		source: Source
		reachable: boolean | null
		latency_ms: number | null
		checked_ms: number | null
		error: string | null
	}
	tenant_key: {
		state: KeyState
		id: string | null
		age_secs: number | null
		error: string | null
	}
	outbox: { depth: number, oldest_pending_age_secs: number | null, dead_letters: number }
	reconcile: { running: boolean, last: ReconcileReport | null }
	/** Failed `/nc` signature checks in the last 24 h, by reason code. */
	signature_failures_24h: Record<string, number>
	versions: { waggle: string, nextcloud: string | null, app_api: string | null }
	/** Counters from the metrics registry (name → value); empty until that stream lands. */
	metrics: Record<string, number>
}

export interface DeadLetter {
	id: string
	type: string
	user: string | null
	created_ms: number
	attempts: number
	last_error: string
}

export type OperationKind = 'sync' | 'replay' | 'rotate' | 'bootstrap'

export interface Operation {
	id: string
	kind: OperationKind
	state: 'running' | 'succeeded' | 'failed'
	/** 0–100. */
	progress: number
	message: string
	started_ms: number
	finished_ms: number | null
}

export interface PolicySettings {
	read_only: Setting<boolean>
	apps: Setting<string[]>
	allowed_prefixes: Setting<string[]>
	denied_prefixes: Setting<string[]>
}

export interface AdminSettings {
	service_url: Setting<string>
	sync_interval_secs: Setting<number>
	/** Write-only: `value` is never sent back; `is_set` says whether one is stored. */
	pairing_code: Setting<string> & { is_set: boolean }
	policy: PolicySettings
}

export interface SettingsUpdate {
	service_url?: string
	sync_interval_secs?: number
	pairing_code?: string
	policy?: {
		read_only?: boolean
		apps?: string[]
		allowed_prefixes?: string[]
		denied_prefixes?: string[]
	}
}

export interface SettingsSaved {
	settings: AdminSettings
	/** Started when the service URL changed and no tenant key exists yet. */
	operation: Operation | null
}

export interface PolicyDecision {
	allowed: boolean
	/** Stable code: `allowed`, `read_only`, `target_not_allowed`, `target_denied`, `outside_user_scope`, … */
	code: string
	/** One sentence for people. */
	reason: string
}

export interface AuditFilter {
	user?: string
	method?: string
	status?: string
	path?: string
}

// --- Errors -----------------------------------------------------------------------------------------

/** Every failure of a call: Waggle's `{"error":{"code","message"}}`, or a transport failure. */
export class WaggleError extends Error {
	constructor(
		public readonly status: number,
		public readonly code: string,
		message: string,
	) {
		super(message)
		this.name = 'WaggleError'
	}
}

export function toWaggleError(e: unknown): WaggleError {
	if (e instanceof WaggleError) return e
	const ax = e as AxiosError<{ error?: { code?: string, message?: string } }>
	if (ax && ax.isAxiosError) {
		const status = ax.response?.status ?? 0
		const body = ax.response?.data?.error
		if (body && typeof body.code === 'string') {
			return new WaggleError(status, body.code, body.message ?? '')
		}
		if (status === 0) return new WaggleError(0, 'network', ax.message)
		// Nextcloud's own 404 page: the proxy refused the route (app disabled, no access).
		if (status === 404) return new WaggleError(404, 'proxy_not_found', '')
		return new WaggleError(status, 'http_error', `HTTP ${status}`)
	}
	return new WaggleError(0, 'unexpected', String(e))
}

// --- The client -------------------------------------------------------------------------------------

export interface Api {
	session(): Promise<Session>
	me(): Promise<Me>
	meLink(): Promise<MeLink>
	meCalls(cursor?: string | null): Promise<Page<AuditRow>>
	status(): Promise<AdminStatus>
	audit(filter: AuditFilter, cursor?: string | null): Promise<Page<AuditRow>>
	deadLetters(cursor?: string | null): Promise<Page<DeadLetter>>
	replay(id: string): Promise<Operation>
	syncNow(): Promise<Operation>
	rotateKey(): Promise<Operation>
	operation(id: string): Promise<Operation>
	settings(): Promise<AdminSettings>
	saveSettings(update: SettingsUpdate): Promise<SettingsSaved>
	previewPolicy(method: string, path: string, user: string): Promise<PolicyDecision>
}

export function createApi(base: Base): Api {
	async function call<T>(method: 'GET' | 'POST' | 'PUT', path: string, params?: object, data?: object): Promise<T> {
		try {
			const r = await axios.request<T>({
				method,
				url: apiUrl(base, path),
				params,
				data,
				headers: { Accept: 'application/json' },
			})
			return r.data
		} catch (e) {
			throw toWaggleError(e)
		}
	}
	const cursor = (c?: string | null) => (c ? { cursor: c } : undefined)
	const op = (r: { operation: Operation }) => r.operation
	return {
		session: () => call('GET', 'session'),
		me: () => call('GET', 'me'),
		meLink: () => call('GET', 'me/link'),
		meCalls: (c) => call('GET', 'me/calls', cursor(c)),
		status: () => call('GET', 'admin/status'),
		audit: (filter, c) => call('GET', 'admin/audit', { ...clean(filter), ...cursor(c) }),
		deadLetters: (c) => call('GET', 'admin/dead-letters', cursor(c)),
		replay: (id) => call<{ operation: Operation }>('POST', `admin/dead-letters/${encodeURIComponent(id)}/replay`).then(op),
		syncNow: () => call<{ operation: Operation }>('POST', 'admin/sync').then(op),
		rotateKey: () => call<{ operation: Operation }>('POST', 'admin/tenant-key/rotate').then(op),
		operation: (id) => call<{ operation: Operation }>('GET', `admin/operations/${encodeURIComponent(id)}`).then(op),
		settings: () => call('GET', 'admin/settings'),
		saveSettings: (update) => call('PUT', 'admin/settings', undefined, update),
		previewPolicy: (method, path, user) => call('GET', 'admin/policy/preview', { method, path, user }),
	}
}

function clean(filter: AuditFilter): Record<string, string> {
	return Object.fromEntries(Object.entries(filter).filter(([, v]) => typeof v === 'string' && v.trim() !== '')) as Record<string, string>
}

/**
 * Polls an operation until it finishes, reporting each state. Polling, not SSE: the PHP proxy
 * delivers a streamed response only when it ends.
 */
export async function follow(
	api: Api,
	start: Operation,
	onUpdate: (op: Operation) => void,
	opts: { intervalMs?: number, timeoutMs?: number, sleep?: (ms: number) => Promise<void> } = {},
): Promise<Operation> {
	const interval = opts.intervalMs ?? 700
	const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000)
	const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
	let current = start
	onUpdate(current)
	while (current.state === 'running') {
		if (Date.now() > deadline) {
			throw new WaggleError(0, 'operation_timeout', '')
		}
		await sleep(interval)
		current = await api.operation(current.id)
		onUpdate(current)
	}
	return current
}
