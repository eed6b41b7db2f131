import { describe, expect, it } from 'vitest';
import { listMigrations, migrate } from '../../src/db/migrate.ts';
import { useTestDatabase } from '../helpers/database.ts';

describe('migrate is idempotent and safe to run concurrently', () => {
  const db = useTestDatabase('migrate_is_idempotent_and_concurrent', { empty: true });

  it('applies every migration once even when two migrators race, leaving other data alone', async () => {
    const shipped = (await listMigrations()).map((m) => m.name);
    expect(shipped.length, 'migrations/ is empty: run npm run build:sql').toBeGreaterThan(0);

    const client = await db.connect();
    // An existing application database: its own schema and data.
    await client.query(`
      create schema mes;
      create table mes.production_orders (order_no text primary key, qty numeric(12,3) not null);
      insert into mes.production_orders values ('PO-1', 10.5), ('PO-2', 3);
    `);

    const [first, second] = await Promise.all([migrate({ databaseUrl: db.url }), migrate({ databaseUrl: db.url })]);
    // node-pg-migrate's advisory lock serialises the two: one applies everything, the other nothing.
    expect([first, second].sort((a, b) => b.length - a.length)).toEqual([shipped, []]);

    const ledger = await client.query<{ name: string; n: string }>(
      'select name, count(*) as n from audit_trail.migrations group by name order by min(id)',
    );
    expect(ledger.rows).toEqual(shipped.map((name) => ({ name, n: '1' })));

    const orders = await client.query('select order_no, qty::text from mes.production_orders order by 1');
    expect(orders.rows).toEqual([
      { order_no: 'PO-1', qty: '10.500' },
      { order_no: 'PO-2', qty: '3.000' },
    ]);
  });

  it('does nothing when run again', async () => {
    expect(await migrate({ databaseUrl: db.url })).toEqual([]);
    const client = await db.connect();
    const { rows } = await client.query<{ n: string }>('select count(*) as n from audit_trail.migrations');
    expect(Number(rows[0]?.n)).toBe((await listMigrations()).length);
  });
});
