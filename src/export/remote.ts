/**
 * Exports kept in object storage: `export --out s3://bucket/prefix` writes the
 * export locally, then uploads every file (Object Lock COMPLIANCE, never
 * replacing an object); `verify --export s3://bucket/prefix` downloads it
 * into a temporary directory and verifies that copy.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EvidenceFileError } from '../errors.ts';
import { openStore, type StoreOptions } from '../anchor/stores.ts';
import { MANIFEST_FILE } from './manifest.ts';

export const isRemote = (location: string): boolean => location.startsWith('s3://');

/** Uploads every file of a local export; manifest.json last, so a complete manifest means a complete upload. */
export async function uploadExport(localDir: string, storeUrl: string, options: StoreOptions = {}): Promise<string[]> {
  const store = openStore(storeUrl, options);
  const names = (await readdir(localDir)).filter((n) => n !== MANIFEST_FILE).sort();
  for (const name of [...names, MANIFEST_FILE]) await store.put(name, await readFile(path.join(localDir, name)));
  return [...names, MANIFEST_FILE];
}

/**
 * Downloads an export from a store into a new temporary directory (the
 * caller removes it). On a versioned bucket the first version of each file is
 * read; `overwritten` names the files that have newer versions or delete
 * markers written over them since (see AnchorStore.listingAnomalies).
 */
export async function downloadExport(storeUrl: string): Promise<{ dir: string; overwritten: string[] }> {
  const store = openStore(storeUrl);
  const names = await store.list('');
  if (!names.includes(MANIFEST_FILE)) {
    throw new EvidenceFileError(`${storeUrl}/${MANIFEST_FILE} does not exist`, `${storeUrl}/${MANIFEST_FILE}`, '58P01', {
      hint: 'Point --export at the s3://bucket/prefix that audit-trail export --out wrote.',
    });
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'audit-trail-export-'));
  try {
    for (const name of names) {
      if (name.includes('/')) continue;
      await writeFile(path.join(dir, name), await store.get(name));
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const overwritten = [...store.listingAnomalies()].filter(([name]) => !name.includes('/')).map(([name, detail]) => `${storeUrl}/${name}: ${detail}`);
  return { dir, overwritten };
}
