/**
 * Turns an error into what a person can act on: what happened, and what to do next. Keyed by the
 * stable codes of Waggle's error type (docs/UI-API.md §4); unknown codes fall back to the message.
 */
import type { WaggleError } from './api.ts'
import { t } from './l10n.ts'

export interface Advice {
	title: string
	/** The next step, in one sentence. */
	action: string
}

export function advise(e: WaggleError): Advice {
	switch (e.code) {
	case 'network':
		return { title: t('Nextcloud could not be reached'), action: t('Check your connection and reload the page.') }
	case 'proxy_not_found':
		return { title: t('Waggle is not available'), action: t('An administrator should check that Waggle is enabled in AppAPI (occ app_api:app:list).') }
	case 'admin_required':
		return { title: t('This needs an administrator'), action: t('Ask a Nextcloud administrator to open this page.') }
	case 'user_required':
	case 'unauthorized':
		return { title: t('You are not signed in'), action: t('Sign in to Nextcloud again and reload the page.') }
	case 'csrf':
	case 'cross_site_request':
	case 'origin_not_allowed':
		return { title: t('The request was refused as cross-site'), action: t('Open Waggle from Nextcloud itself; if it still fails, the administrator should check WAGGLE_NC_PUBLIC_URL.') }
	case 'saas_not_configured':
		return { title: t('No service is configured yet'), action: t('An administrator sets the service URL in Waggle\'s settings.') }
	case 'tenant_key_missing':
	case 'tenant_key_pending':
		return { title: t('Waggle is not paired with the service yet'), action: t('An administrator can follow the pairing on the Status page.') }
	case 'setting_locked':
		return { title: t('This setting is set by the environment'), action: t('Change it where Waggle is deployed (the ExApp\'s environment), then restart Waggle.') }
	case 'upstream_unreachable':
		return { title: t('The service could not be reached'), action: t('Check the service URL and that the service is up; the Status page shows the last check.') }
	case 'upstream_timeout':
		return { title: t('The service did not answer in time'), action: t('Try again in a minute; if it persists, check the service\'s health.') }
	case 'nextcloud_unavailable':
		return { title: t('Waggle could not reach Nextcloud'), action: t('Check NEXTCLOUD_URL in Waggle\'s environment and Nextcloud\'s log.') }
	case 'operation_timeout':
		return { title: t('The operation is taking longer than expected'), action: t('It may still finish; reload the page later to see its result.') }
	case 'bad_request':
		return { title: t('The input was not accepted'), action: e.message || t('Check the values and try again.') }
	case 'busy':
		return { title: t('Another operation of this kind is running'), action: t('Wait for it to finish, then try again.') }
	case 'not_found':
		return { title: t('Not found'), action: t('It may have been removed meanwhile; reload the page.') }
	default:
		return {
			title: e.message || t('Something went wrong'),
			action: e.status >= 500 ? t('Try again; if it persists, an administrator can look for the request id in Waggle\'s log.') : t('Reload the page and try again.'),
		}
	}
}
