/**
 * A real S3-protocol server (s3rver) on 127.0.0.1 for the test file, reached
 * through the real AWS SDK v3 via the standard environment variables.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';
import { afterAll, beforeAll } from 'vitest';

export function useS3Server(buckets: string[]): { endpoint: () => string } {
  let server: S3rver | undefined;
  let endpoint = '';
  beforeAll(async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 's3rver-'));
    server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
    const { port } = await server.run();
    endpoint = `http://127.0.0.1:${port}`;
    // s3rver's fixed credentials; the SDK reads them like any deployment would.
    process.env['AWS_ENDPOINT_URL'] = endpoint;
    process.env['AWS_ACCESS_KEY_ID'] = 'S3RVER';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'S3RVER';
    process.env['AWS_REGION'] = 'us-east-1';
  });
  afterAll(async () => {
    await server?.close();
  });
  return { endpoint: () => endpoint };
}
