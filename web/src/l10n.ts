/**
 * Translation for Waggle's strings: `t` and `n` bound to the app id, as Nextcloud's apps do. Inside
 * Nextcloud the translations registered for the app are used; elsewhere the English text.
 */
import { translate, translatePlural } from '@nextcloud/l10n'

export const APP = 'waggle'

export function t(text: string, vars?: Record<string, string | number>): string {
	return translate(APP, text, vars, undefined, { escape: false, sanitize: false })
}

export function n(singular: string, plural: string, count: number, vars?: Record<string, string | number>): string {
	return translatePlural(APP, singular, plural, count, vars, { escape: false, sanitize: false })
}
