/** Public API of pg-audit-trail's TypeScript layer. */
export {
  AuditTrailError,
  ConnectionConfigError,
  DatabaseError,
  MigrationStateError,
  UnsupportedServerError,
  UsageError,
  toAuditTrailError,
  type SerializedError,
  type ServerErrorFields,
} from './errors.ts';
export { connectClient, createPool, resolveDatabaseUrl, type ConnectionOptions } from './db/connect.ts';
export {
  MIGRATIONS_SCHEMA,
  MIGRATIONS_TABLE,
  checkServerSupported,
  listMigrations,
  migrate,
  pendingMigrations,
  printSql,
  type MigrateOptions,
  type ServerFacts,
} from './db/migrate.ts';
export { verify, verifyTenant, type ChainVerification, type VerifyOptions } from './db/verify.ts';
export { enable, disable, type CaptureOptions } from './db/capture.ts';
