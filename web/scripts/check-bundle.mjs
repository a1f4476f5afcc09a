#!/usr/bin/env node
/**
 * Proves the committed bundle (`dist/`) is what its sources build to: builds again into a temporary
 * directory and compares file by file. Precompressed files are compared by their decompressed bytes
 * (another zlib/brotli version may encode the same bytes differently). Exit 1 with the differing
 * paths, and the command that fixes it.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const web = fileURLToPath(new URL('..', import.meta.url))
const committed = join(web, 'dist')
const fresh = mkdtempSync(join(tmpdir(), 'waggle-web-'))

function walk(dir) {
	return readdirSync(dir).flatMap((name) => {
		const path = join(dir, name)
		return statSync(path).isDirectory() ? walk(path) : [path]
	})
}

function content(path) {
	const data = readFileSync(path)
	if (path.endsWith('.br')) return brotliDecompressSync(data)
	if (path.endsWith('.gz')) return gunzipSync(data)
	return data
}

try {
	execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], {
		cwd: web,
		stdio: 'inherit',
		env: { ...process.env, WAGGLE_WEB_OUT_DIR: fresh },
	})
	const a = walk(committed).map((f) => relative(committed, f)).sort()
	const b = walk(fresh).map((f) => relative(fresh, f)).sort()
	const problems = []
	for (const f of a) if (!b.includes(f)) problems.push(`only in the committed bundle: ${f}`)
	for (const f of b) if (!a.includes(f)) problems.push(`missing from the committed bundle: ${f}`)
	for (const f of a.filter((x) => b.includes(x))) {
		if (!content(join(committed, f)).equals(content(join(fresh, f)))) problems.push(`differs: ${f}`)
	}
	if (problems.length) {
		console.error(`web/dist does not match its sources:\n  ${problems.join('\n  ')}\nRebuild it: npm --prefix web run build, then commit web/dist.`)
		process.exitCode = 1
	} else {
		console.log(`web/dist matches its sources (${a.length} files)`)
	}
} finally {
	rmSync(fresh, { recursive: true, force: true })
}
