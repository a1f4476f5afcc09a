/// <reference types="vitest/config" />
/**
 * Builds the SPA Waggle embeds (rust-embed over `dist/`, see src/spa.rs in the crate).
 *
 * - `base: './'`: every URL is relative, so one bundle works under the PHP proxy
 *   (`/index.php/apps/app_api/proxy/waggle/`), HaRP (`/exapps/waggle/`) and the embedded page;
 * - one JS chunk and one stylesheet: Nextcloud's CSP only trusts scripts that carry its nonce or
 *   are loaded by one ('strict-dynamic'), so no `modulepreload` links and no lazy chunks;
 * - hashed names under `assets/` (served `immutable`); `js/waggle-main.js` and
 *   `css/waggle-main.css` are the stable names registered with AppAPI (build/waggle-bundle.ts).
 */
import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'
import { waggleBundle } from './build/waggle-bundle.ts'

const root = fileURLToPath(new URL('.', import.meta.url))

export default defineConfig({
	root,
	base: './',
	plugins: [vue(), waggleBundle(root)],
	// @nextcloud/vue expects the bundler to name the app (its logger and local storage keys).
	define: {
		appName: JSON.stringify('waggle'),
		appVersion: JSON.stringify(process.env.npm_package_version ?? '0.1.0'),
	},
	build: {
		outDir: process.env.WAGGLE_WEB_OUT_DIR || 'dist',
		emptyOutDir: true,
		modulePreload: false,
		cssCodeSplit: false,
		sourcemap: false,
		reportCompressedSize: false,
		chunkSizeWarningLimit: 2048,
		rolldownOptions: {
			output: {
				codeSplitting: false,
				entryFileNames: 'assets/waggle-[hash].js',
				assetFileNames: 'assets/waggle-[hash][extname]',
			},
		},
	},
	test: {
		environment: 'happy-dom',
		include: ['tests/unit/**/*.spec.ts'],
		css: false,
		server: { deps: { inline: [/@nextcloud\/vue/, /\/vue\//, /@vue\//, /vue-router/] } },
	},
})
