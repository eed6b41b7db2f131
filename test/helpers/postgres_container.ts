/**
 * A PostgreSQL server of a chosen version in a container, for running the
 * suite on versions other than the embedded one:
 *
 *   AUDIT_TRAIL_PG_IMAGE=postgres:16 npm test
 *
 * Opt-in and only where a container engine is reachable (see
 * container_runtime.ts); without one, vitest.config.ts narrows the run to the
 * one test that reports the skip. The server is configured like the one the
 * harness starts itself (fsync on, 200 connections, UTC). It is not started
 * with pg_ctl, so crash tests skip on it, as they do with DATABASE_URL.
 */
import { randomBytes } from 'node:crypto';
import { containerRuntimeUnavailable } from './container_runtime.ts';

export const PG_IMAGE_VARIABLE = 'AUDIT_TRAIL_PG_IMAGE';

export interface PostgresContainer {
  image: string;
  /** Superuser connection string to the container's "postgres" database. */
  superuserUrl: string;
  stop(): Promise<void>;
}

/** The image asked for, or undefined (the default suite). */
export function requestedPostgresImage(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const image = env[PG_IMAGE_VARIABLE];
  return image === undefined || image === '' ? undefined : image;
}

/** Why the requested image cannot run here (no container engine), or null when it can or none was asked for. */
export async function postgresImageSkipReason(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const image = requestedPostgresImage(env);
  if (image === undefined) return null;
  const unavailable = await containerRuntimeUnavailable();
  return unavailable === null ? null : `${PG_IMAGE_VARIABLE}=${image} needs a container engine: ${unavailable}`;
}

/** Starts `image` (for example postgres:16) and waits until it accepts connections. */
export async function startPostgresContainer(image: string): Promise<PostgresContainer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const password = randomBytes(12).toString('hex');
  const container = await new GenericContainer(image)
    .withEnvironment({ POSTGRES_PASSWORD: password })
    .withCommand(['postgres', '-c', 'fsync=on', '-c', 'max_connections=200', '-c', 'timezone=UTC'])
    .withExposedPorts(5432)
    // The image's entrypoint starts a temporary server for initdb first, then the real one: wait for the second.
    .withWaitStrategy(Wait.forAll([Wait.forLogMessage(/database system is ready to accept connections/, 2), Wait.forListeningPorts()]))
    .withStartupTimeout(180_000)
    .start();
  return {
    image,
    superuserUrl: `postgres://postgres:${password}@${container.getHost()}:${container.getMappedPort(5432)}/postgres`,
    stop: async () => {
      await container.stop();
    },
  };
}
