/** Formatting helpers shared by the pages: times, ages, durations. */
import { getCanonicalLocale } from '@nextcloud/l10n'
import { n, t } from './l10n.ts'

export function dateTime(ms: number | null | undefined): string {
	if (!ms) return t('never')
	return new Date(ms).toLocaleString(getCanonicalLocale(), { dateStyle: 'medium', timeStyle: 'medium' })
}

/** "5 minutes", "3 hours", "2 days". */
export function age(secs: number | null | undefined): string {
	if (secs === null || secs === undefined) return '—'
	if (secs < 60) return n('%n second', '%n seconds', Math.floor(secs))
	if (secs < 3600) return n('%n minute', '%n minutes', Math.floor(secs / 60))
	if (secs < 86400) return n('%n hour', '%n hours', Math.floor(secs / 3600))
	return n('%n day', '%n days', Math.floor(secs / 86400))
}

export function millis(ms: number | null | undefined): string {
	if (ms === null || ms === undefined) return '—'
	return t('{ms} ms', { ms: Math.round(ms) })
}
