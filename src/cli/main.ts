/**
 * The `audit-trail` command line. Exit codes: 0 success, 1 a chain is broken
 * (verify), 2 any error (bad input, connection, SQL).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { AuditTrailError, UsageError, toAuditTrailError } from '../errors.ts';
import { migrate, pendingMigrations, printSql } from '../db/migrate.ts';
import { enable, disable } from '../db/capture.ts';
import { verify, type ChainVerification } from '../db/verify.ts';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  allowPositionals: boolean;
  run: (values: Record<string, unknown>, positionals: string[], io: Io) => Promise<number>;
}

const connectionOptions = {
  'database-url': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies Options;

const connectionHelp = `  --database-url URL   connection string (default: $DATABASE_URL)
  --json               print the result as one JSON object
  -h, --help           show this help`;

const databaseUrl = z.string().min(1, 'must not be empty').optional();

/** Validates parsed options with zod and turns the first problem into a UsageError naming the option. */
function validate<T extends z.ZodType>(schema: T, values: unknown): z.infer<T> {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `--${issue.path.join('.')}` : 'options';
  throw new UsageError(`${where}: ${issue?.message ?? 'invalid value'}`);
}

function printJson(io: Io, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

const migrateCommand: Command = {
  summary: 'install or upgrade the audit_trail schema',
  usage: `Usage: audit-trail migrate [options]

Applies every pending migration in one transaction. Safe to run repeatedly and
concurrently (an advisory lock serialises migrators). Refuses PostgreSQL older
than 15 and SQL_ASCII databases.

Options:
  --print-sql          print the whole install as one SQL script for psql,
                       Flyway or Liquibase, and connect to nothing
  --dry-run            list the pending migrations without applying them
${connectionHelp}`,
  options: { ...connectionOptions, 'print-sql': { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z
        .object({
          'database-url': databaseUrl,
          json: z.boolean().default(false),
          'print-sql': z.boolean().default(false),
          'dry-run': z.boolean().default(false),
        })
        .refine((o) => !(o['print-sql'] && o['dry-run']), { message: '--print-sql and --dry-run exclude each other', path: ['dry-run'] }),
      values,
    );
    if (opts['print-sql']) {
      const sql = await printSql();
      if (opts.json) printJson(io, { ok: true, sql });
      else io.stdout(sql);
      return 0;
    }
    const connection = { databaseUrl: opts['database-url'] };
    if (opts['dry-run']) {
      const pending = await pendingMigrations(connection);
      if (opts.json) printJson(io, { ok: true, dryRun: true, pending });
      else if (pending.length === 0) io.stdout('the schema is up to date; nothing to apply\n');
      else io.stdout(`pending migrations (not applied):\n${pending.map((n) => `  ${n}\n`).join('')}`);
      return 0;
    }
    const applied = await migrate(connection);
    if (opts.json) printJson(io, { ok: true, applied });
    else if (applied.length === 0) io.stdout('the schema is up to date; nothing to apply\n');
    else io.stdout(`applied:\n${applied.map((n) => `  ${n}\n`).join('')}`);
    return 0;
  },
};

const enableCommand: Command = {
  summary: 'turn capture on for a table (again: update its options)',
  usage: `Usage: audit-trail enable <table> [options]

Calls audit_trail.enable(table, options). <table> is resolved by PostgreSQL:
orders, mes.orders, 'mes."Orders"'.

Options:
  --options JSON       capture options as a JSON object, e.g.
                       '{"tenant_column":"plant_id","hard_delete":"forbid"}'
${connectionHelp}`,
  options: { ...connectionOptions, options: { type: 'string' } },
  allowPositionals: true,
  async run(values, positionals, io) {
    const table = oneTable(positionals);
    const opts = validate(
      z.object({
        'database-url': databaseUrl,
        json: z.boolean().default(false),
        options: z
          .string()
          .default('{}')
          .transform((text, ctx) => {
            try {
              return JSON.parse(text) as unknown;
            } catch {
              ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
              return z.NEVER;
            }
          })
          .pipe(z.record(z.string(), z.unknown(), { error: 'must be a JSON object' })),
      }),
      values,
    );
    await enable(table, opts.options, { databaseUrl: opts['database-url'] });
    if (opts.json) printJson(io, { ok: true, table, options: opts.options });
    else io.stdout(`capture enabled on ${table}\n`);
    return 0;
  },
};

const disableCommand: Command = {
  summary: 'turn capture off for a table, with a reason',
  usage: `Usage: audit-trail disable <table> --reason TEXT [options]

Calls audit_trail.disable(table, reason); the reason is recorded.

Options:
  --reason TEXT        why capture stops (required)
${connectionHelp}`,
  options: { ...connectionOptions, reason: { type: 'string' } },
  allowPositionals: true,
  async run(values, positionals, io) {
    const table = oneTable(positionals);
    const opts = validate(
      z.object({
        'database-url': databaseUrl,
        json: z.boolean().default(false),
        reason: z.string({ error: 'is required' }).trim().min(1, 'must not be empty'),
      }),
      values,
    );
    await disable(table, opts.reason, { databaseUrl: opts['database-url'] });
    if (opts.json) printJson(io, { ok: true, table });
    else io.stdout(`capture disabled on ${table}\n`);
    return 0;
  },
};

const sequenceNo = z.string().regex(/^[1-9][0-9]*$/, 'must be a positive integer').transform(Number).optional();

const verifyCommand: Command = {
  summary: 'check the hash chain of one or every tenant in the database',
  usage: `Usage: audit-trail verify [options]

Calls audit_trail.verify() for the tenant, or for every tenant that has events.
Prints one line per tenant and exits 1 if any chain is broken.

Options:
  --tenant T           verify this tenant only
  --from-seq N         first sequence_no to check (default 1)
  --to-seq M           last sequence_no to check (default: the newest)
${connectionHelp}`,
  options: {
    ...connectionOptions,
    tenant: { type: 'string' },
    'from-seq': { type: 'string' },
    'to-seq': { type: 'string' },
  },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z
        .object({
          'database-url': databaseUrl,
          json: z.boolean().default(false),
          tenant: z.string().min(1, 'must not be empty').optional(),
          'from-seq': sequenceNo,
          'to-seq': sequenceNo,
        })
        .refine((o) => o['to-seq'] === undefined || o['to-seq'] >= (o['from-seq'] ?? 1), {
          message: 'must not be smaller than --from-seq',
          path: ['to-seq'],
        }),
      values,
    );
    const results = await verify({
      databaseUrl: opts['database-url'],
      tenant: opts.tenant,
      fromSeq: opts['from-seq'],
      toSeq: opts['to-seq'],
    });
    const ok = results.every((r) => r.ok);
    if (opts.json) {
      printJson(io, { ok, tenants: results.map(verificationJson) });
    } else if (results.length === 0) {
      io.stdout('no tenant has events yet; nothing to verify\n');
    } else {
      for (const r of results) io.stdout(`${verificationLine(r)}\n`);
    }
    return ok ? 0 : 1;
  },
};

function verificationLine(r: ChainVerification): string {
  if (r.ok) return `${r.tenantId}: OK (${r.eventsChecked} events checked)`;
  const detail = r.detail === null ? '' : `, ${r.detail}`;
  return `${r.tenantId}: BROKEN at sequence_no ${r.firstBadSequenceNo ?? '?'}: ${r.problem ?? 'unknown problem'}${detail}`;
}

// The SQL column names, so a JSON report reads like audit_trail.verify()'s result.
function verificationJson(r: ChainVerification): Record<string, unknown> {
  return {
    tenant_id: r.tenantId,
    events_checked: r.eventsChecked,
    ok: r.ok,
    first_bad_sequence_no: r.firstBadSequenceNo,
    problem: r.problem,
    detail: r.detail,
  };
}

function oneTable(positionals: string[]): string {
  if (positionals.length !== 1 || positionals[0] === undefined || positionals[0] === '') {
    throw new UsageError(positionals.length === 0 ? 'missing <table>' : `expected one <table>, got ${positionals.length}`);
  }
  return positionals[0];
}

const commands: Record<string, Command> = {
  migrate: migrateCommand,
  enable: enableCommand,
  disable: disableCommand,
  verify: verifyCommand,
};

function globalHelp(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: audit-trail <command> [options]

Commands:
${lines.join('\n')}

Run audit-trail <command> --help for a command's options.
The database comes from --database-url or DATABASE_URL.
Exit codes: 0 success, 1 a verified chain is broken, 2 error.
`;
}

/** Prints an error as one line (plus detail and hint), or as JSON. */
export function reportError(err: unknown, json: boolean, io: Io): void {
  const error: AuditTrailError = toAuditTrailError(err);
  if (json) {
    printJson(io, { ok: false, error: error.toJSON() });
    return;
  }
  io.stderr(`error: ${error.message} (SQLSTATE ${error.code})\n`);
  if (error.detail !== undefined) io.stderr(`detail: ${error.detail}\n`);
  if (error.hint !== undefined) io.stderr(`hint: ${error.hint}\n`);
}

/** Runs the CLI and returns the exit code; never throws. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const json = argv.includes('--json');
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      (name === undefined ? io.stderr : io.stdout)(globalHelp());
      return name === undefined ? 2 : 0;
    }
    const command = commands[name];
    if (command === undefined) {
      throw new UsageError(`unknown command "${name}"`, { hint: `Commands: ${Object.keys(commands).join(', ')}.` });
    }
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: command.allowPositionals, strict: true });
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err), {
        hint: `Run audit-trail ${name} --help to see its options.`,
      });
    }
    if (parsed.values['help'] === true) {
      io.stdout(`${command.usage}\n`);
      return 0;
    }
    return await command.run(parsed.values, parsed.positionals, io);
  } catch (err) {
    reportError(err, json, io);
    return 2;
  }
}
