/** Turns capture on and off for a domain table (audit_trail.enable / disable). */
import { withClient, type ConnectionOptions } from './connect.ts';

/** Options of audit_trail.enable(); the SQL function validates them and documents each one. */
export type CaptureOptions = Record<string, unknown>;

/**
 * Starts (or, when already enabled, reconfigures) capture for `table`, a name
 * PostgreSQL resolves as regclass: `orders`, `mes.orders`, `mes."Orders"`.
 */
export async function enable(table: string, options: CaptureOptions = {}, connection: ConnectionOptions = {}): Promise<void> {
  await withClient(connection, async (client) => {
    await client.query('select audit_trail.enable($1::regclass, $2::jsonb)', [table, JSON.stringify(options)]);
  });
}

/** Stops capture for `table`; the reason is itself recorded. */
export async function disable(table: string, reason: string, connection: ConnectionOptions = {}): Promise<void> {
  await withClient(connection, async (client) => {
    await client.query('select audit_trail.disable($1::regclass, $2)', [table, reason]);
  });
}
