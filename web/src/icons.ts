/** The Material Design icons the pages use (the set Nextcloud's apps use, tree-shaken). */
export { mdiAccountOutline, mdiCogOutline, mdiPulse } from '@mdi/js'
