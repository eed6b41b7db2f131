/**
 * Whether a container engine (Docker, or one that speaks its API) is reachable,
 * for the opt-in tests and servers started with testcontainers.
 *
 * Asks testcontainers' own runtime strategies (TESTCONTAINERS_HOST_OVERRIDE,
 * ~/.testcontainers.properties, DOCKER_HOST, /var/run/docker.sock, the
 * rootless sockets), so a test skips exactly when testcontainers could not
 * start a container. The answer comes within `timeoutMs`: no image is pulled,
 * and a DOCKER_HOST that does not answer counts as unreachable instead of
 * hanging the run.
 */
import { existsSync } from 'node:fs';

const DEFAULT_TIMEOUT_MS = 5_000;

let cached: Promise<string | null> | undefined;

/** Null when a container engine answers; otherwise why not, in one line. Asked once per process. */
export function containerRuntimeUnavailable(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string | null> {
  cached ??= probe(timeoutMs);
  return cached;
}

async function probe(timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no container engine answered within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
  });
  const attempt = (async (): Promise<string | null> => {
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      await getContainerRuntimeClient();
      return null;
    } catch (err) {
      const host = process.env['DOCKER_HOST'];
      const where = host ? `DOCKER_HOST=${host}` : `DOCKER_HOST unset, /var/run/docker.sock ${existsSync('/var/run/docker.sock') ? 'does not answer' : 'does not exist'}`;
      return `no container engine reachable (${where}): ${err instanceof Error ? err.message : String(err)}`;
    }
  })();
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
