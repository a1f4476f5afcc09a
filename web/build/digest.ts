/**
 * The digest of the bundle's sources, written to `dist/.source-digest` by the build and recomputed
 * by the Rust test `tests/api/spa.rs` (`the_committed_bundle_matches_its_sources`). Both sides
 * implement the same rule, so keep them in step:
 *
 * files: every regular file under the INPUTS below (directories walked recursively), as paths
 * relative to `web/` with `/` separators, sorted bytewise; digest: SHA-256 over, for each file,
 * `<path>\n<byte length>\n<bytes>`; written as lowercase hex.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

export const INPUTS = [
	'build',
	'index.html',
	'package-lock.json',
	'package.json',
	'public',
	'src',
	'tsconfig.json',
	'vite.config.ts',
]

function files(root: string, rel: string): string[] {
	const path = join(root, rel)
	if (!statSync(path).isDirectory()) return [rel]
	return readdirSync(path).flatMap((name) => files(root, `${rel}/${name}`))
}

export function sourceDigest(root: string): string {
	const hash = createHash('sha256')
	const all = INPUTS.flatMap((input) => files(root, input))
	all.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
	for (const rel of all) {
		const data = readFileSync(join(root, rel))
		hash.update(`${rel}\n${data.length}\n`)
		hash.update(data)
	}
	return hash.digest('hex')
}
