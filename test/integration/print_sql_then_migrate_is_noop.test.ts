import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { listMigrations, migrate, pendingMigrations, printSql } from '../../src/db/migrate.ts';
import { useTestDatabase } from '../helpers/database.ts';

const execFileAsync = promisify(execFile);
const PSQL = process.env['PSQL'] ?? '/usr/bin/psql';

// What the install created, as a comparable list (names and signatures, not OIDs).
async function catalogOf(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ item: string }>(`
    select 'relation ' || c.relname || ' ' || c.relkind::text as item
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'audit_trail'
    union all
    select 'function ' || p.oid::regprocedure::text
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'audit_trail'
    union all
    select 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text
      from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'audit_trail' and not t.tgisinternal
    union all
    select 'policy ' || pol.polname || ' on ' || pol.polrelid::regclass::text
      from pg_policy pol join pg_class c on c.oid = pol.polrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'audit_trail'
    order by 1`);
  return rows.map((r) => r.item);
}

describe('a database installed with the --print-sql script is what migrate would make', () => {
  const viaPsql = useTestDatabase('print_sql_then_migrate_is_noop', { empty: true });
  const viaMigrate = useTestDatabase('print_sql_reference_install', { empty: true });

  it('psql -v ON_ERROR_STOP=1 -f script, then migrate() applies nothing', async () => {
    const shipped = (await listMigrations()).map((m) => m.name);
    expect(shipped.length, 'migrations/ is empty: run npm run build:sql').toBeGreaterThan(0);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'print-sql-'));
    try {
      const script = path.join(dir, 'install.sql');
      await writeFile(script, await printSql());
      await execFileAsync(PSQL, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', script, viaPsql.url], {
        env: { ...process.env, PGCLIENTENCODING: 'UTF8' },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    expect(await pendingMigrations({ databaseUrl: viaPsql.url })).toEqual([]);
    expect(await migrate({ databaseUrl: viaPsql.url })).toEqual([]);

    const client = await viaPsql.connect();
    const ledger = await client.query<{ name: string }>('select name from audit_trail.migrations order by run_on, id');
    expect(ledger.rows.map((r) => r.name)).toEqual(shipped);

    expect(await migrate({ databaseUrl: viaMigrate.url })).toEqual(shipped);
    expect(await catalogOf(client)).toEqual(await catalogOf(await viaMigrate.connect()));
  });

  it('refuses to run the script a second time, changing nothing', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'print-sql-'));
    try {
      const script = path.join(dir, 'install.sql');
      await writeFile(script, await printSql());
      const run = execFileAsync(PSQL, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', script, viaPsql.url]);
      await expect(run).rejects.toMatchObject({ stderr: expect.stringContaining('already applied') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const client = await viaPsql.connect();
    const { rows } = await client.query<{ n: string }>('select count(*) as n from audit_trail.migrations');
    expect(Number(rows[0]?.n)).toBe((await listMigrations()).length);
  });
});
