/**
 * A DBA who adds sslmode=require to the connection string, as they would for
 * psql, meets node-postgres's stricter reading of it: it verifies the server's
 * certificate. The CLI must say so and what to write instead (class 08, a
 * hint), not "self-signed certificate (SQLSTATE XX000)".
 *
 * The certificate case needs a server that speaks TLS with a certificate no
 * CA vouches for: a loopback endpoint that answers PostgreSQL's SSLRequest
 * with 'S' and then does the TLS handshake with the self-signed certificate in
 * test/fixtures/tls (valid until 2126). The client refuses it during the
 * handshake, before any PostgreSQL message: nothing of the database is
 * imitated. The server without TLS is the test server itself.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { capturedIo } from '../helpers/cli_io.ts';
import { useTestDatabase } from '../helpers/database.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tls');

/** Answers an SSLRequest (8 bytes) with 'S', then hands the socket to TLS with the self-signed certificate. */
function selfSignedTlsEndpoint(): Promise<net.Server> {
  const context = tls.createSecureContext({
    key: readFileSync(path.join(FIXTURES, 'self_signed.key')),
    cert: readFileSync(path.join(FIXTURES, 'self_signed.crt')),
  });
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', (request) => {
      if (request.length !== 8 || request.readUInt32BE(4) !== 80877103) {
        socket.destroy();
        return;
      }
      socket.write('S');
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context });
      secure.on('error', () => undefined);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('TLS connection errors say what to do', () => {
  const db = useTestDatabase('tls_connection_errors_say_what_to_do');
  let endpoint: net.Server;

  beforeAll(async () => {
    endpoint = await selfSignedTlsEndpoint();
  });
  afterAll(async () => {
    await new Promise((resolve) => endpoint.close(resolve));
  });

  it('a certificate no CA vouches for: 08001, and the hint names sslrootcert and libpq-compatible require', async () => {
    const { port } = endpoint.address() as net.AddressInfo;
    for (const mode of ['require', 'verify-full']) {
      const io = capturedIo();
      const code = await main(['verify', '--database-url', `postgres://auditor@127.0.0.1:${port}/plant?sslmode=${mode}`], io);
      expect(code).toBe(2);
      const [error, hint] = io.err.split('\n');
      expect(error).toMatch(/^error: could not connect to the database: the server's TLS certificate was not accepted \(.+\) \(SQLSTATE 08001\)$/);
      expect(hint).toContain('sslrootcert=');
      expect(hint).toContain('uselibpqcompat=true&sslmode=require');
    }
  });

  it('a server without TLS: 08001, and the hint says to drop sslmode or turn ssl on', async (ctx) => {
    const client = await db.connect();
    const { rows } = await client.query<{ ssl: string }>('show ssl');
    if (rows[0]?.ssl === 'on') {
      console.log('[tls test] skipped: this server accepts TLS (ssl = on), so it cannot show the refusal of a server without it');
      ctx.skip();
    }
    const io = capturedIo();
    const url = new URL(db.url);
    url.searchParams.set('sslmode', 'require');
    expect(await main(['verify', '--database-url', url.toString()], io)).toBe(2);
    const [error, hint] = io.err.split('\n');
    expect(error).toMatch(/^error: could not connect to the database: .*does not support SSL.* \(SQLSTATE 08001\)$/);
    expect(hint).toContain('remove sslmode');
  });
});
