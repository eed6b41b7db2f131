#!/usr/bin/env node
// Builds the export verifier's optional native core (native/verify_native.c)
// into native/build/verify_native.node with the machine's C compiler and
// Node's own headers (Node-API and the OpenSSL inside Node: no dependency,
// no node-gyp, nothing downloaded). Runs on `npm install` / `npm ci`.
//
// Without a compiler or the headers it says so and exits 0: `verify --export`
// then uses its TypeScript path, the same checks, slower. `--required` makes
// a failed build an error (CI: the suite tests the native core against the
// TypeScript path, so it must be there).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'native', 'verify_native.c');
const outDir = path.join(root, 'native', 'build');
const out = path.join(outDir, 'verify_native.node');
const required = process.argv.includes('--required');

function giveUp(why) {
  const message = `audit-trail: the native core of verify --export was not built (${why}); verify --export uses its TypeScript path (same checks, slower). To build it: a C compiler (cc) and Node's headers, then npm run build:native.`;
  if (required) {
    console.error(message);
    process.exit(1);
  }
  console.warn(message);
  process.exit(0);
}

if (process.platform === 'win32') giveUp('not built on Windows');
// Node's headers: beside the running node (official tarballs, nvm), or where Debian's nodejs-dev puts them.
const candidates = [
  process.env.AUDIT_TRAIL_NODE_HEADERS,
  path.resolve(process.execPath, '..', '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean);
const headers = candidates.find((dir) => existsSync(path.join(dir, 'node_api.h')) && existsSync(path.join(dir, 'openssl', 'sha.h')));
if (headers === undefined) giveUp(`no node_api.h with openssl/sha.h in ${candidates.join(', ')}`);
const cc = process.env.CC || 'cc';
mkdirSync(outDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const flags = ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', `-I${headers}`];
if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
try {
  execFileSync(cc, [...flags, source, '-o', tmp], { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(tmp, out); // a reader never loads a half-written file
} catch (err) {
  rmSync(tmp, { force: true });
  giveUp(`${cc} failed: ${err.message.split('\n')[0]}`);
}
console.log(`audit-trail: built ${path.relative(root, out)} (${cc}, headers ${headers})`);
