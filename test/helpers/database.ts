/**
 * Helpers test files use to get a database on the run's one server.
 *
 *   const db = useTestDatabase('soft_delete_is_a_delete_event');
 *   it('...', async () => { const c = await db.connect(); ... });
 *
 * Every test file gets its own database cloned from the template in which
 * migrate() ran once. A database is dropped after its file when all of the
 * file's tests passed, and kept (with the server's data directory, when the
 * harness started the server) when one failed, so it can be inspected.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, inject } from 'vitest';
import './context.ts';
import { databaseUrl, withSuperuser } from './context.ts';
import { pgCtlManaged, type ManagedServer } from './server.ts';

export { databaseUrl };

/** Superuser connection string to the server's "postgres" database. */
export function superuserUrl(): string {
  return inject('pgSuperuserUrl');
}

export interface TestDatabase {
  name: string;
  /** Superuser connection string to this database. */
  url: string;
}


function uniqueName(name: string): string {
  const base = name.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 48);
  return `t_${base}_${randomBytes(4).toString('hex')}`;
}

/**
 * Creates a database for a test. Default: a clone of the migrated template
 * (`CREATE DATABASE x TEMPLATE audit_trail_template`); `{ empty: true }`: an
 * empty UTF8 database from template0, for tests of the installation itself.
 * The name gets a random suffix so parallel files and reruns never collide.
 */
export async function createTestDatabase(name: string, options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const db = uniqueName(name);
  const template = options.empty === true ? 'template0' : inject('pgTemplateDatabase');
  await withSuperuser(superuserUrl(), (c) => c.query(`create database ${db} encoding 'UTF8' template ${template}`));
  return { name: db, url: databaseUrl(superuserUrl(), db) };
}

/** Drops a test database, disconnecting whoever is still connected. */
export async function dropTestDatabase(db: TestDatabase): Promise<void> {
  await withSuperuser(superuserUrl(), (c) => c.query(`drop database if exists ${db.name} with (force)`));
}

export interface UsedTestDatabase {
  /** Available from beforeAll on. */
  readonly name: string;
  readonly url: string;
  /** A superuser client on this database, ended after the file. */
  connect(): Promise<pg.Client>;
}

/**
 * Registers hooks that create a database for this test file before its tests
 * and drop it afterwards unless a test failed.
 */
export function useTestDatabase(name: string, options: { empty?: boolean } = {}): UsedTestDatabase {
  let db: TestDatabase | undefined;
  let failed = false;
  const clients: pg.Client[] = [];
  beforeAll(async () => {
    db = await createTestDatabase(name, options);
  });
  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      failed = true;
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    if (db === undefined) return;
    if (failed) console.log(`[test database] kept ${db.name} of a failed test: ${db.url}`);
    else await dropTestDatabase(db);
  });
  const current = (): TestDatabase => {
    if (db === undefined) throw new Error('the test database exists only from beforeAll on');
    return db;
  };
  return {
    get name() {
      return current().name;
    },
    get url() {
      return current().url;
    },
    async connect() {
      const client = new pg.Client({ connectionString: current().url });
      await client.connect();
      clients.push(client);
      return client;
    },
  };
}

/** The password connectAs gives the LOGIN roles it creates. Test-only. */
export function testRolePassword(role: string): string {
  return `test-password-${role}`;
}

/**
 * Connects to `db` as `role` by really logging in as it (not SET ROLE), so
 * that session_user, RLS and privileges are exactly what that role gets and
 * the test cannot RESET ROLE its way back to superuser.
 *
 * If the role does not exist it is created `LOGIN PASSWORD testRolePassword(role)`
 * with no other attributes; grant it what the test needs. Roles are
 * cluster-wide, so a role name is shared by every test file of the run: use
 * names that say which file owns them. A role that exists but cannot log in
 * (for example the NOLOGIN owner audit_trail_owner) is refused: test such a
 * role with `SET ROLE` from a superuser client instead.
 */
export async function connectAs(db: Pick<TestDatabase, 'url'>, role: string): Promise<pg.Client> {
  await withSuperuser(db.url, async (c) => {
    const existing = await c.query<{ rolcanlogin: boolean }>('select rolcanlogin from pg_roles where rolname = $1', [role]);
    if (existing.rows[0] === undefined) {
      try {
        await c.query(`create role ${pg.escapeIdentifier(role)} login password ${pg.escapeLiteral(testRolePassword(role))}`);
      } catch (err) {
        // Another test file created it at the same moment.
        const code = (err as { code?: string }).code;
        if (code !== '42710' && code !== '23505') throw err;
      }
    } else if (!existing.rows[0].rolcanlogin) {
      throw new Error(`role ${role} exists and is NOLOGIN; use SET ROLE from a superuser client to act as it`);
    }
  });
  const url = new URL(db.url);
  url.username = encodeURIComponent(role);
  url.password = encodeURIComponent(testRolePassword(role));
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return client;
}

/** The server the harness started with pg_ctl, or null when DATABASE_URL named one or it runs in a container (then it cannot be stopped). */
export function managedServer(): ManagedServer | null {
  return inject('pgManagedServer');
}

/** Why crash tests are skipped in this run, or null when they can run. Use with it.skipIf. */
export function serverControlUnavailable(): string | null {
  return managedServer() === null
    ? 'the server comes from DATABASE_URL or AUDIT_TRAIL_PG_IMAGE; crash tests need a server the harness started with pg_ctl'
    : null;
}

/**
 * Stops the run's server like a crash (`pg_ctl stop -m immediate`: no
 * checkpoint, recovery on next start) or starts it again, waiting until it
 * accepts connections. Only for a server the harness started; returns false
 * with a visible note otherwise.
 *
 * The server is shared by every test file of the run: a crash test takes the
 * server away from files running in parallel. Keep crash tests in files that
 * tolerate that, or run them alone (`npx vitest run test/crash`).
 */
export async function pgCtl(action: 'stop-immediate' | 'start'): Promise<boolean> {
  const server = managedServer();
  if (server === null) {
    console.warn(`[pgCtl] skipped ${action}: ${serverControlUnavailable()}`);
    return false;
  }
  await pgCtlManaged(server, action);
  return true;
}
