/**
 * Error classes of the TypeScript layer.
 *
 * Every error carries a five-character `code`: the server's SQLSTATE when the
 * database raised it, otherwise a standard SQLSTATE that describes the failure
 * (see the table in docs/migrations.md). Callers match on `code`, never on
 * message text, so messages can be improved without breaking anyone.
 */

/** The fields PostgreSQL sends with an error, all optional except the code. */
export interface ServerErrorFields {
  code: string;
  detail?: string | undefined;
  hint?: string | undefined;
  where?: string | undefined;
  schema?: string | undefined;
  table?: string | undefined;
  column?: string | undefined;
  constraint?: string | undefined;
}

/** The JSON shape of an error, as printed by the CLI with --json. */
export interface SerializedError extends ServerErrorFields {
  name: string;
  message: string;
}

export interface AuditTrailErrorOptions {
  detail?: string | undefined;
  hint?: string | undefined;
  cause?: unknown;
}

/** Base class: every error this package throws on purpose is one of these. */
export class AuditTrailError extends Error {
  readonly code: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, code: string, options: AuditTrailErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.detail = options.detail;
    this.hint = options.hint;
  }

  toJSON(): SerializedError {
    const out: SerializedError = { name: this.name, message: this.message, code: this.code };
    if (this.detail !== undefined) out.detail = this.detail;
    if (this.hint !== undefined) out.hint = this.hint;
    return out;
  }
}

/** An error as the CLI prints it on stderr: "error: message (SQLSTATE code)", then detail and hint lines. */
export function errorLines(error: Pick<SerializedError, 'message' | 'code' | 'detail' | 'hint'>): string {
  return `error: ${error.message} (SQLSTATE ${error.code})\n`
    + (error.detail !== undefined ? `detail: ${error.detail}\n` : '')
    + (error.hint !== undefined ? `hint: ${error.hint}\n` : '');
}

/**
 * A value that reached us as text but was not UTF-8: Node.js decodes the command
 * line and the environment as UTF-8 and puts U+FFFD where bytes are not, so such
 * a value would be looked up, written or signed as something nobody typed.
 * SQLSTATE 22021. (A value that really holds U+FFFD is refused too; none of this
 * tool's inputs needs one.)
 */
export class NotUtf8Error extends AuditTrailError {
  /** Throws when `value` holds U+FFFD; `name` says where it came from (--tenant, DATABASE_URL). */
  static refuseIn(name: string, value: string, hint = 'Give the value in UTF-8 (check the encoding of the terminal or script that passes it, e.g. LANG=C.UTF-8).'): void {
    if (value.includes('\uFFFD')) {
      throw new NotUtf8Error(`${name} is not valid UTF-8 text: it holds U+FFFD, which stands for bytes that are not UTF-8`, hint);
    }
  }

  private constructor(message: string, hint: string) {
    super(message, '22021', { hint });
  }
}

/** Bad input from a person: a wrong option, a missing argument, malformed JSON. SQLSTATE 22023. */
export class UsageError extends AuditTrailError {
  constructor(message: string, options: AuditTrailErrorOptions = {}) {
    super(message, '22023', {
      ...options,
      hint: options.hint ?? 'Run the command with --help to see its options.',
    });
  }
}

/** No connection string was given. SQLSTATE 08001 (client unable to establish connection). */
export class ConnectionConfigError extends AuditTrailError {
  constructor(message: string, options: AuditTrailErrorOptions = {}) {
    super(message, '08001', options);
  }
}

/** The server cannot host the audit trail (version, encoding). SQLSTATE 0A000 (feature not supported). */
export class UnsupportedServerError extends AuditTrailError {
  constructor(message: string, options: AuditTrailErrorOptions = {}) {
    super(message, '0A000', options);
  }
}

/**
 * The migration files and the ledger disagree (a migration was added before one
 * that already ran, a file is missing). SQLSTATE 55000 (object not in prerequisite state).
 */
export class MigrationStateError extends AuditTrailError {
  constructor(message: string, options: AuditTrailErrorOptions = {}) {
    super(message, '55000', options);
  }
}

/** An error raised by PostgreSQL, with every field the server sent. */
export class DatabaseError extends AuditTrailError {
  readonly where: string | undefined;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  readonly column: string | undefined;
  readonly constraint: string | undefined;

  constructor(message: string, fields: ServerErrorFields, cause?: unknown) {
    super(message, fields.code, { detail: fields.detail, hint: fields.hint, cause });
    this.where = fields.where;
    this.schema = fields.schema;
    this.table = fields.table;
    this.column = fields.column;
    this.constraint = fields.constraint;
  }

  /**
   * Wraps whatever a `pg` call threw. Server errors keep their SQLSTATE and
   * fields; socket errors (refused, reset, DNS) become class 08 so that callers
   * can still match on a code.
   */
  static fromPg(err: unknown): AuditTrailError {
    if (err instanceof AuditTrailError) return err;
    if (isPgServerError(err)) {
      return new DatabaseError(err.message, {
        code: err.code,
        detail: err.detail,
        hint: err.hint ?? SERVER_HINTS[err.code === '42P01' && !/audit_trail\./.test(err.message) ? '' : err.code],
        where: err.where,
        schema: err.schema,
        table: err.table,
        column: err.column,
        constraint: err.constraint,
      }, err);
    }
    const message = err instanceof Error ? err.message : String(err);
    const sysCode = (err as { code?: unknown } | null)?.code;
    const fsPath = (err as { path?: unknown } | null)?.path;
    if (typeof sysCode === 'string' && /^E[A-Z]+$/.test(sysCode) && typeof fsPath === 'string') {
      // A file system error (it names a path): not the database's.
      return new EvidenceFileError(`cannot ${String((err as { syscall?: unknown }).syscall ?? 'use')} ${fsPath}: ${message}`, fsPath, sysCode === 'ENOENT' ? '58P01' : '58030', {
        hint: FILE_HINTS[sysCode] ?? 'Check the path, its permissions and the free space.',
        cause: err,
      });
    }
    if ((err as { code?: unknown } | null)?.code === 'ERR_INVALID_URL' || (err instanceof TypeError && /Invalid URL/.test(message))) {
      return new ConnectionConfigError(`the connection string is not a valid URL (${message})`, {
        hint: 'Write it as postgres://user:password@host:5432/dbname, with characters such as @ # / : in the password percent-encoded (%40 %23 %2F %3A).',
        cause: err,
      });
    }
    if (sysCode === 'ENOTFOUND' || sysCode === 'EAI_AGAIN') {
      const host = (err as { hostname?: unknown }).hostname;
      return new DatabaseError(`could not connect to the database: the host name ${typeof host === 'string' ? JSON.stringify(host) : ''} cannot be resolved (${message})`, {
        code: '08001',
        hint: 'Check the host in the connection string; an @ or # in the password must be percent-encoded (%40, %23), else the rest is read as the host.',
      }, err);
    }
    if (typeof sysCode === 'string' && TLS_CERTIFICATE_CODES.has(sysCode)) {
      return new DatabaseError(`could not connect to the database: the server's TLS certificate was not accepted (${message})`, {
        code: '08001',
        hint:
          "node-postgres verifies the server's certificate and host name for sslmode=require and verify-ca as for verify-full. " +
          'Give the CA that signed it with sslrootcert=/path/to/ca.pem and connect by a host name the certificate names; ' +
          "or, to encrypt without verifying the server as libpq's sslmode=require does, write uselibpqcompat=true&sslmode=require.",
      }, err);
    }
    if (typeof sysCode === 'string' && /^(ERR_TLS_|ERR_SSL_)/.test(sysCode)) {
      return new DatabaseError(`could not connect to the database: the TLS handshake failed (${message})`, {
        code: '08001',
        hint: "The client and the server could not agree on TLS: check the sslmode in the connection string and the server's ssl settings (ssl_min_protocol_version, ssl_ciphers).",
      }, err);
    }
    if (/does not support SSL/.test(message)) {
      return new DatabaseError(`could not connect to the database: ${message}`, {
        code: '08001',
        hint: 'The server does not accept TLS connections: remove sslmode from the connection string, or ask the DBA to turn ssl on.',
      }, err);
    }
    if (typeof sysCode === 'string' && /^E[A-Z]+$/.test(sysCode)) {
      return new DatabaseError(`could not connect to the database: ${message}`, {
        code: '08006',
        hint: 'Check that the server is running and that the host and port in the connection string are right.',
      }, err);
    }
    // node-postgres's words for a connection that the server (or the network) ended.
    if (/Connection terminated|has encountered a connection error and is not queryable|Client was closed and is not queryable/.test(message)) {
      return new DatabaseError(`the connection to the database was lost: ${message}`, {
        code: '08006',
        hint: 'The server ended the connection (a restart, or an administrator terminated it) or the network failed: run the command again.',
      }, err);
    }
    // node-postgres's own client-side refusal when the server asks for a
    // password (SCRAM or MD5) and the connection string has none.
    if (/client password must be a string/.test(message)) {
      return new DatabaseError(`could not connect to the database: the server asks for a password and none was given (${message})`, {
        code: '28P01',
        hint: 'Put the password in the connection string (postgres://user:password@host:5432/db) or in PGPASSWORD, or use a ~/.pgpass file.',
      }, err);
    }
    return new DatabaseError(message, { code: 'XX000' }, err);
  }

  override toJSON(): SerializedError {
    const out = super.toJSON();
    for (const key of ['where', 'schema', 'table', 'column', 'constraint'] as const) {
      const value = this[key];
      if (value !== undefined) out[key] = value;
    }
    return out;
  }
}

/** What to do about a server error that comes without a hint, by its SQLSTATE. */
const SERVER_HINTS: Record<string, string> = {
  '3F000': 'The audit_trail schema is not installed in this database: run audit-trail migrate (or check the database name).',
  '42P01': 'The audit_trail schema is not installed in this database, or is older than this tool: run audit-trail migrate.',
  '3D000': 'Check the database name at the end of the connection string.',
  '28P01': 'Check the user name and password in the connection string (percent-encode @ # / : in the password).',
  '28000': 'The server refuses this user or address (pg_hba.conf): ask the DBA which role and address may connect.',
  '42501': 'This role lacks a privilege the command needs: see docs/install.md, "Roles", for which role runs which command.',
  '57P01': 'The server ended the connection (a restart, or an administrator terminated it): run the command again.',
};

/** Node's (OpenSSL's) codes for a TLS certificate it did not accept. */
const TLS_CERTIFICATE_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_REJECTED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
]);

/** What to do about a file system error, by its code. */
const FILE_HINTS: Record<string, string> = {
  ENOENT: 'The file or directory does not exist: check the path.',
  EEXIST: 'Something already exists at this path: choose a new path (evidence is never overwritten).',
  ENOTDIR: 'A part of the path is a file, not a directory: check the path.',
  EISDIR: 'The path is a directory where a file is expected: check the path.',
  EACCES: 'No permission: run as a user that may write there, or choose another path.',
  EPERM: 'The operation is not permitted here: choose another path.',
  EROFS: 'The file system is read-only: choose another path.',
  ENOSPC: 'The disk is full: free space or choose another path.',
  ENAMETOOLONG: 'A file name is too long for this file system.',
};

interface PgServerErrorShape {
  message: string;
  code: string;
  detail?: string;
  hint?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  constraint?: string;
}

function isPgServerError(err: unknown): err is PgServerErrorShape {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  // A SQLSTATE is five characters of digits and upper-case letters; Node's
  // system errors (ECONNREFUSED, ...) also have a `code` but never that shape.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && 'severity' in err;
}

/** Turns anything thrown into an AuditTrailError, keeping the original as `cause`. */
export function toAuditTrailError(err: unknown): AuditTrailError {
  return DatabaseError.fromPg(err);
}

/**
 * A file of an export, a key or an anchor store that is missing, unreadable or
 * malformed. `file` names it. SQLSTATE 58P01 (undefined file) when it is
 * missing, 22P02 (invalid text representation) when its content is malformed,
 * 58030 (I/O error) when reading or writing failed.
 */
export class EvidenceFileError extends AuditTrailError {
  readonly file: string;

  constructor(message: string, file: string, code: '58P01' | '22P02' | '58030', options: AuditTrailErrorOptions = {}) {
    super(message, code, options);
    this.file = file;
  }

  override toJSON(): SerializedError & { file: string } {
    return { ...super.toJSON(), file: this.file };
  }
}

