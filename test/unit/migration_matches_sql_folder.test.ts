import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INSTALL_MIGRATION_FILE, renderInstallMigration } from '../../src/db/install_migration.ts';
import { upSection } from '../../src/db/migrate.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const migrationPath = path.join(root, 'migrations', INSTALL_MIGRATION_FILE);

describe('the install migration is the concatenation of sql/', () => {
  it('matches sql/*.sql byte for byte (run `npm run build:sql` after editing sql/)', async () => {
    const expected = await renderInstallMigration(path.join(root, 'sql'));
    if (expected === null) {
      // No SQL yet: then nothing may ship either.
      expect(existsSync(migrationPath), `${INSTALL_MIGRATION_FILE} exists but sql/ has no .sql file`).toBe(false);
      return;
    }
    expect(existsSync(migrationPath), `${INSTALL_MIGRATION_FILE} is missing: run npm run build:sql`).toBe(true);
    const actual = await readFile(migrationPath, 'utf8');
    // A plain equality keeps the failure readable: vitest prints the diff.
    expect(actual, 'migrations/ drifted from sql/: run npm run build:sql').toBe(expected);
  });

  it('puts every sql file in the up section and leaves the down section empty', async () => {
    if (!existsSync(migrationPath)) return;
    const text = await readFile(migrationPath, 'utf8');
    const up = upSection(text);
    const down = text.slice(text.indexOf('-- Down Migration'));
    expect(up.startsWith('-- Up Migration')).toBe(true);
    expect(down.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('--'))).toEqual([]);
  });
});
