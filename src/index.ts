/** Public API of pg-audit-trail's TypeScript layer. */
export {
  AuditTrailError,
  ConnectionConfigError,
  DatabaseError,
  MigrationStateError,
  UnsupportedServerError,
  UsageError,
  EvidenceFileError,
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
export { ChainEncoder, ENCODING_VERSION, GENESIS_HASH, BODY_FIELDS, type EventBodyFields, type TextValue } from './chain/encoding.ts';
export { StreamingChainVerifier, type ChainEvent, type ChainProblem, type ProblemKind } from './chain/verifier.ts';
export { exportTenant, type ExportOptions, type ExportFormat } from './export/export.ts';
export { verifyExport, type VerifyExportOptions, type ExportVerification } from './export/verify_export.ts';
export { readManifest, manifestSchema, type ExportManifest } from './export/manifest.ts';
export { generateKeys, keyIdOf, loadPrivateKey, loadPublicKey, type GeneratedKeys } from './anchor/keys.ts';
export { anchorAll, checkStores, type AnchorOptions, type AnchorRun, type TenantAnchorResult } from './anchor/anchor.ts';
export { canonicalCheckpoint, checkpointDigest, signCheckpoint, type Checkpoint, type PublishedCheckpoint } from './anchor/checkpoint.ts';
export { openStore, type AnchorStore, type ImmutabilityReport } from './anchor/stores.ts';
export { readCheckpoints } from './anchor/read_checkpoints.ts';
export { verifyWithAnchors, type AnchoredVerification } from './anchor/verify_database.ts';
