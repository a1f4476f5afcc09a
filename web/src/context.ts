/** What every page needs, provided once by main.ts: the API client, where we are, who is signed in. */
import type { InjectionKey, Ref } from 'vue'
import { inject } from 'vue'
import type { Api, Session } from './api.ts'
import type { Base } from './base.ts'

export interface Context {
	api: Api
	base: Base
	/** Filled once `GET session` answered; null while loading or after it failed. */
	session: Ref<Session | null>
	/** True inside Nextcloud's embedded page (AppAPI top menu), false as a standalone page. */
	embedded: boolean
}

export const CONTEXT: InjectionKey<Context> = Symbol('waggle')

export function useContext(): Context {
	const ctx = inject(CONTEXT)
	if (!ctx) throw new Error('Waggle context missing')
	return ctx
}
