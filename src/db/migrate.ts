/**
 * Installs and upgrades the audit trail schema with node-pg-migrate.
 *
 * The migrations are plain SQL files in the package's `migrations/` folder; the
 * ledger of applied migrations is node-pg-migrate's own table
 * `audit_trail.migrations`, so a DBA can equally run the files through
 * node-pg-migrate in their own pipeline, or apply the script from `printSql()`.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { runner } from 'node-pg-migrate';
import { DatabaseError, MigrationStateError, UnsupportedServerError } from '../errors.ts';
import { connectClient, type ConnectionOptions } from './connect.ts';

/** Schema and table of node-pg-migrate's ledger. */
export const MIGRATIONS_SCHEMA = 'audit_trail';
export const MIGRATIONS_TABLE = 'migrations';

/** Oldest server the SQL is written and tested for. */
export const MIN_SERVER_VERSION_NUM = 150000;

// src/db/migrate.ts -> package root, so the migrations are found whatever the cwd.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The folder holding the shipped SQL migrations. */
export const defaultMigrationsDir = path.join(packageRoot, 'migrations');

export interface MigrateOptions extends ConnectionOptions {
  /** Folder of `.sql` migrations; default: the package's `migrations/`. */
  migrationsDir?: string | undefined;
  /** Receives node-pg-migrate's progress messages; default: discarded. */
  log?: ((message: string) => void) | undefined;
}

/** What the server reports about itself, as needed by the pre-flight checks. */
export interface ServerFacts {
  /** `server_version_num`, e.g. 170004. */
  serverVersionNum: number;
  /** `server_version`, e.g. "17.4", shown to the user. */
  serverVersion: string;
  /** The current database's encoding, e.g. "UTF8". */
  encoding: string;
}

/**
 * Refuses servers the audit trail cannot run on: older than PostgreSQL 15, or a
 * SQL_ASCII database (bytes without a known encoding cannot be hashed into a
 * chain that another implementation can recompute).
 */
export function checkServerSupported(facts: ServerFacts): void {
  if (!Number.isInteger(facts.serverVersionNum) || facts.serverVersionNum < MIN_SERVER_VERSION_NUM) {
    throw new UnsupportedServerError(
      `PostgreSQL ${facts.serverVersion} (server_version_num ${facts.serverVersionNum}) is not supported: PostgreSQL 15 to 18 is supported`,
      { hint: 'Upgrade the server to PostgreSQL 15 or later, or point --database-url at a newer server.' },
    );
  }
  if (facts.encoding.toUpperCase() === 'SQL_ASCII') {
    throw new UnsupportedServerError('the database encoding is SQL_ASCII, which the audit trail does not support', {
      hint: "Install into a database created with ENCODING 'UTF8' (createdb -E UTF8 -T template0 NAME).",
    });
  }
}

/** Reads the facts `checkServerSupported` needs. */
export async function readServerFacts(client: pg.ClientBase): Promise<ServerFacts> {
  const { rows } = await client.query<{ num: string; version: string; encoding: string }>(
    `select current_setting('server_version_num') as num,
            current_setting('server_version') as version,
            pg_catalog.getdatabaseencoding() as encoding`,
  );
  const row = rows[0];
  if (row === undefined) throw new DatabaseError('the server returned no version', { code: 'XX000' });
  return { serverVersionNum: Number.parseInt(row.num, 10), serverVersion: row.version, encoding: row.encoding };
}

/** A migration file as node-pg-migrate sees it. */
export interface MigrationFile {
  /** The ledger name: the file name without `.sql`. */
  name: string;
  path: string;
}

/**
 * Lists the migrations in the order node-pg-migrate runs them: by the numeric
 * prefix of the file name, then by name; files starting with a dot are ignored.
 */
export async function listMigrations(dir: string = defaultMigrationsDir): Promise<MigrationFile[]> {
  if (!existsSync(dir)) {
    throw new MigrationStateError(`the migrations folder ${dir} does not exist`, {
      hint: 'Reinstall the package; in a checkout, run `npm run build:sql` to generate migrations/ from sql/.',
    });
  }
  const entries = await readdir(dir, { withFileTypes: true });
  const files = entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.'));
  for (const f of files) {
    if (path.extname(f.name) !== '.sql') {
      throw new MigrationStateError(`unexpected file ${f.name} in ${dir}: only .sql migrations are shipped`);
    }
  }
  const prefix = (name: string): number => Number.parseInt(/^\d+/.exec(name)?.[0] ?? 'NaN', 10);
  return files
    .map((f) => ({ name: path.basename(f.name, '.sql'), path: path.join(dir, f.name) }))
    .sort((a, b) => {
      const pa = prefix(a.name);
      const pb = prefix(b.name);
      if (pa !== pb && !Number.isNaN(pa) && !Number.isNaN(pb)) return pa - pb;
      return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    });
}

// The marker format node-pg-migrate's SQL loader looks for (its sqlMigration.ts):
// a line starting with `--`, optional dashes/spaces, then "up migration" or
// "down migration", case-insensitive.
const markerRegex = (direction: 'up' | 'down'): RegExp => new RegExp(`^\\s*--[\\s-]*${direction}\\s+migration`, 'im');

/** The up section of a SQL migration, exactly the text node-pg-migrate would run. */
export function upSection(content: string): string {
  const up = content.search(markerRegex('up'));
  const down = content.search(markerRegex('down'));
  if (up < 0) return content;
  return content.slice(up, down < up ? undefined : down);
}

/** The names recorded in the ledger, in the order node-pg-migrate reads them; [] before the first install. */
export async function readLedger(client: pg.ClientBase): Promise<string[]> {
  const { rows: exists } = await client.query<{ present: boolean }>(
    'select to_regclass($1) is not null as present',
    [`"${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}"`],
  );
  if (exists[0]?.present !== true) return [];
  const { rows } = await client.query<{ name: string }>(
    `select name from "${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}" order by run_on, id`,
  );
  return rows.map((r) => r.name);
}

/** Mirrors node-pg-migrate's checkOrder: the applied migrations must be a prefix of the files. */
export function checkLedgerOrder(applied: readonly string[], files: readonly MigrationFile[]): void {
  const n = Math.min(applied.length, files.length);
  for (let i = 0; i < n; i += 1) {
    if (applied[i] !== files[i]?.name) {
      throw new MigrationStateError(
        `migration ${files[i]?.name} is not applied but comes before the applied migration ${applied[i]}`,
        { hint: 'Shipped migrations must never be inserted or renamed; restore the original file order.' },
      );
    }
  }
  const unknown = applied.filter((name) => !files.some((f) => f.name === name));
  if (unknown.length > 0) {
    throw new MigrationStateError(`the database has migrations this version does not know: ${unknown.join(', ')}`, {
      hint: 'The database was migrated by a newer pg-audit-trail; upgrade this package.',
    });
  }
}

async function preflight(client: pg.ClientBase): Promise<void> {
  checkServerSupported(await readServerFacts(client));
}

/** The migrations that `migrate()` would apply now, without changing anything. */
export async function pendingMigrations(options: MigrateOptions = {}): Promise<string[]> {
  const files = await listMigrations(options.migrationsDir);
  const client = await connectClient(options);
  try {
    await preflight(client);
    const applied = await readLedger(client);
    checkLedgerOrder(applied, files);
    return files.filter((f) => !applied.includes(f.name)).map((f) => f.name);
  } catch (err) {
    throw DatabaseError.fromPg(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Applies every pending migration in one transaction and returns their names
 * ([] when the schema is current). Safe to run repeatedly and from several
 * processes at once: node-pg-migrate holds a session advisory lock
 * (PG_MIGRATE_LOCK_ID, per database) for the whole run, and we ask it to wait
 * for that lock instead of failing, so a second migrator finds the work done.
 */
export async function migrate(options: MigrateOptions = {}): Promise<string[]> {
  const dir = options.migrationsDir ?? defaultMigrationsDir;
  const files = await listMigrations(dir);
  const client = await connectClient(options);
  const log = options.log ?? ((): void => undefined);
  try {
    await preflight(client);
    // node-pg-migrate's checkOrder only compares the common prefix; also refuse
    // a ledger with names we do not ship (a newer version migrated this database).
    checkLedgerOrder(await readLedger(client), files);
    const applied = await runner({
      dbClient: client,
      dir,
      direction: 'up',
      migrationsSchema: MIGRATIONS_SCHEMA,
      migrationsTable: MIGRATIONS_TABLE,
      createMigrationsSchema: true,
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      logger: { debug: log, info: log, warn: log, error: log },
    });
    return applied.map((m) => m.name);
  } catch (err) {
    if (err instanceof Error && !('severity' in err) && /preceding already run migration|loading migration files/.test(err.message)) {
      throw new MigrationStateError(err.message, { cause: err });
    }
    throw DatabaseError.fromPg(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function sqlLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * One script that installs every migration, for DBAs who apply SQL themselves
 * (`psql -v ON_ERROR_STOP=1 -f`, Flyway, Liquibase). It runs in one
 * transaction, performs the same server checks as `migrate()`, refuses to run
 * on a database where one of its migrations is already recorded, and records
 * each migration in `audit_trail.migrations` exactly as node-pg-migrate does,
 * so a later `audit-trail migrate` finds nothing to do.
 */
export async function printSql(options: Pick<MigrateOptions, 'migrationsDir'> = {}): Promise<string> {
  const files = await listMigrations(options.migrationsDir);
  const table = `"${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}"`;
  const names = files.map((f) => sqlLiteral(f.name)).join(', ');
  const out: string[] = [];
  out.push(
    '-- pg-audit-trail install script, generated by `audit-trail migrate --print-sql`.',
    '-- Apply with: psql -v ON_ERROR_STOP=1 -f THIS_FILE "$DATABASE_URL"',
    '-- Everything runs in one transaction; each migration is recorded in',
    `-- ${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE} as node-pg-migrate records it.`,
    '',
    'begin;',
    '',
    'do $preflight$',
    'begin',
    `  if current_setting('server_version_num')::int < ${MIN_SERVER_VERSION_NUM} then`,
    "    raise exception 'PostgreSQL % is not supported: PostgreSQL 15 to 18 is supported', current_setting('server_version')",
    "      using errcode = '0A000', hint = 'Upgrade the server to PostgreSQL 15 or later.';",
    '  end if;',
    "  if pg_catalog.getdatabaseencoding() = 'SQL_ASCII' then",
    "    raise exception 'the database encoding is SQL_ASCII, which the audit trail does not support'",
    "      using errcode = '0A000', hint = 'Install into a database created with ENCODING ''UTF8''.';",
    '  end if;',
    'end',
    '$preflight$;',
    '',
    `create schema if not exists "${MIGRATIONS_SCHEMA}";`,
    `create table if not exists ${table} (id serial primary key, name varchar(255) not null, run_on timestamp not null);`,
  );
  if (files.length > 0) {
    out.push(
      '',
      'do $already_applied$',
      'declare',
      '  v_found text;',
      'begin',
      `  select string_agg(name, ', ' order by id) into v_found from ${table} where name in (${names});`,
      '  if v_found is not null then',
      "    raise exception 'pg-audit-trail migrations already applied here: %', v_found",
      "      using errcode = '55000', hint = 'Run `audit-trail migrate` to apply only the pending migrations.';",
      '  end if;',
      'end',
      '$already_applied$;',
    );
  }
  for (const file of files) {
    const up = upSection(await readFile(file.path, 'utf8'));
    out.push('', `-- migration: ${file.name}`, up.trimEnd());
    // node-pg-migrate appends ';' when the section does not end with one.
    if (!up.trimEnd().endsWith(';')) out.push(';');
    out.push(`INSERT INTO "${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}" (name, run_on) VALUES (${sqlLiteral(file.name)}, NOW());`);
  }
  out.push('', 'commit;', '');
  return out.join('\n');
}
