/**
 * Vite plugin: turns Vite's output into the bundle Waggle embeds (see ../README.md, "The bundle").
 *
 * After Vite has written `dist/`, it adds:
 * - `js/waggle-main.js`: the classic (non-module) script AppAPI's embedded page loads. Nextcloud
 *   renders registered scripts as `<script defer src>`, never as modules, so this loader imports the
 *   hashed ES module entry with a dynamic `import()`, relative to its own URL;
 * - `css/waggle-main.css`: the style AppAPI's embedded page loads (a copy of the hashed CSS);
 * - `<file>.br` and `<file>.gz` beside every compressible file, for `Accept-Encoding` negotiation;
 * - `.source-digest`: the digest of the sources the bundle was built from (`digest.ts`), which a
 *   Rust test recomputes so a stale bundle cannot be embedded unnoticed.
 */
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import type { Plugin } from 'vite'
import { sourceDigest } from './digest.ts'

const COMPRESSIBLE = /\.(js|css|html|svg|json|txt|map)$/
/** Below this size compression does not pay for the extra file. */
const MIN_COMPRESS = 1024

function walk(dir: string): string[] {
	return readdirSync(dir).flatMap((name) => {
		const path = join(dir, name)
		return statSync(path).isDirectory() ? walk(path) : [path]
	})
}

/** The loader text. Kept small and ES5-safe apart from `import()`; it runs before the module. */
export function loaderSource(entry: string): string {
	return `/* Waggle: loads ${entry} relative to this script (AppAPI embeds it as a classic script). */
(function () {
	var me = document.currentScript && document.currentScript.src
	var base = new URL('../', me || document.baseURI)
	import(new URL(${JSON.stringify(entry)}, base).href).catch(function (e) {
		console.error('Waggle: could not load its interface', e)
	})
})()
`
}

export function waggleBundle(root: string): Plugin {
	let outDir = ''
	return {
		name: 'waggle-bundle',
		apply: 'build',
		configResolved(config) {
			outDir = config.build.outDir
		},
		writeBundle(_options, bundle) {
			const chunks = Object.values(bundle)
			const entry = chunks.find((c) => c.type === 'chunk' && c.isEntry)
			const css = chunks.filter((c) => c.type === 'asset' && c.fileName.endsWith('.css'))
			if (!entry || css.length !== 1) {
				throw new Error(`waggle-bundle: expected one entry chunk and one stylesheet, got ${css.length} stylesheets`)
			}
			mkdirSync(join(outDir, 'js'), { recursive: true })
			mkdirSync(join(outDir, 'css'), { recursive: true })
			writeFileSync(join(outDir, 'js/waggle-main.js'), loaderSource(entry.fileName))
			writeFileSync(join(outDir, 'css/waggle-main.css'), readFileSync(join(outDir, css[0].fileName)))

			for (const file of walk(outDir)) {
				if (!COMPRESSIBLE.test(file)) continue
				const data = readFileSync(file)
				if (data.length < MIN_COMPRESS) continue
				writeFileSync(`${file}.gz`, gzipSync(data, { level: 9 }))
				writeFileSync(`${file}.br`, brotliCompressSync(data, {
					params: {
						[constants.BROTLI_PARAM_QUALITY]: 11,
						[constants.BROTLI_PARAM_SIZE_HINT]: data.length,
					},
				}))
			}
			writeFileSync(join(outDir, '.source-digest'), `${sourceDigest(root)}\n`)
			const listed = walk(outDir).map((f) => relative(outDir, f)).sort()
			this.info(`waggle-bundle: ${listed.length} files`)
		},
	}
}
