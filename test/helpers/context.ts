import pg from 'pg';
import type { ManagedServer } from './server.ts';

/** Values the global setup hands to every test file (vitest provide/inject). */
declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser connection string to the run's server (database "postgres"). */
    pgSuperuserUrl: string;
    /** Set when the harness started the server itself, so tests may stop and start it. */
    pgManagedServer: ManagedServer | null;
    /** Database in which migrate() ran once; createTestDatabase clones it. */
    pgTemplateDatabase: string;
  }
}

export const TEMPLATE_DATABASE = 'audit_trail_template';

/** Databases that are not test databases and are never reported as kept. */
export const SYSTEM_DATABASES = ['postgres', 'template0', 'template1', TEMPLATE_DATABASE];

/** Same server, another database. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** Runs `fn` on a new client of `url` and always closes it. */
export async function withSuperuser<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
