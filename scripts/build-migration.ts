/**
 * npm run build:sql: concatenates sql/*.sql into the install migration.
 * test/unit/migration_matches_sql_folder.test.ts fails when they drift apart.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { INSTALL_MIGRATION_FILE, renderInstallMigration } from '../src/db/install_migration.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sqlDir = path.join(root, 'sql');
const target = path.join(root, 'migrations', INSTALL_MIGRATION_FILE);

const text = await renderInstallMigration(sqlDir);
if (text === null) {
  console.error(`error: no .sql files in ${sqlDir}; nothing to build`);
  process.exit(1);
}
await mkdir(path.dirname(target), { recursive: true });
await writeFile(target, text);
console.log(`wrote ${path.relative(root, target)} from sql/*.sql`);
