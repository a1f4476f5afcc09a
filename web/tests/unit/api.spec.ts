import { AxiosError, AxiosHeaders } from 'axios'
import { describe, expect, it, vi } from 'vitest'
import { follow, toWaggleError, WaggleError } from '../../src/api.ts'
import { advise } from '../../src/errors.ts'
import { fakeApi, op } from './fixtures.ts'

function axiosError(status: number, data: unknown): AxiosError {
	const config = { headers: new AxiosHeaders() }
	return new AxiosError('x', 'ERR', config, null, { status, statusText: '', data, headers: {}, config })
}

describe('toWaggleError', () => {
	it('keeps the stable code and message of Waggle\'s error body', () => {
		const e = toWaggleError(axiosError(423, { error: { code: 'setting_locked', message: 'set by env' } }))
		expect(e).toMatchObject({ status: 423, code: 'setting_locked', message: 'set by env' })
	})

	it('maps Nextcloud\'s own 404 page (proxy refused the route) and network failures', () => {
		expect(toWaggleError(axiosError(404, '<html>')).code).toBe('proxy_not_found')
		const net = new AxiosError('Network Error', 'ERR_NETWORK')
		expect(toWaggleError(net).code).toBe('network')
	})

	it('gives every error an action to take', () => {
		for (const code of ['network', 'proxy_not_found', 'admin_required', 'setting_locked', 'upstream_unreachable', 'something_new']) {
			const advice = advise(new WaggleError(500, code, ''))
			expect(advice.title.length).toBeGreaterThan(0)
			expect(advice.action.length).toBeGreaterThan(0)
		}
	})
})

describe('follow', () => {
	it('polls the operation until it ends and reports every state', async () => {
		const states = [op({ progress: 40 }), op({ progress: 80 }), op({ state: 'succeeded', progress: 100, message: '5 users' })]
		const api = fakeApi({ operation: vi.fn(async () => states.shift()!) })
		const seen: number[] = []
		const final = await follow(api, op(), (o) => seen.push(o.progress), { sleep: async () => {} })
		expect(seen).toEqual([0, 40, 80, 100])
		expect(final.state).toBe('succeeded')
		expect(api.operation).toHaveBeenCalledTimes(3)
	})

	it('gives up after its deadline with an actionable error', async () => {
		const api = fakeApi({ operation: vi.fn(async () => op({ progress: 10 })) })
		await expect(follow(api, op(), () => {}, { timeoutMs: 0, sleep: async () => {} })).rejects.toMatchObject({ code: 'operation_timeout' })
	})
})
