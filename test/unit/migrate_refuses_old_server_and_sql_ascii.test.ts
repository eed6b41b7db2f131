import { describe, expect, it } from 'vitest';
import { UnsupportedServerError } from '../../src/errors.ts';
import { checkServerSupported } from '../../src/db/migrate.ts';

const facts = (serverVersionNum: number, serverVersion: string, encoding = 'UTF8') => ({ serverVersionNum, serverVersion, encoding });

describe('migrate checks the server before touching it', () => {
  it.each([
    [150000, '15.0'],
    [150018, '15.18'],
    [160009, '16.9'],
    [170010, '17.10'],
    [180004, '18.4'],
  ])('accepts server_version_num %i', (num, version) => {
    expect(() => checkServerSupported(facts(num, version))).not.toThrow();
  });

  it.each([
    [140017, '14.17'],
    [130000, '13.0'],
    [90624, '9.6.24'],
  ])('refuses server_version_num %i and names the version found', (num, version) => {
    let caught: unknown;
    try {
      checkServerSupported(facts(num, version));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UnsupportedServerError);
    const err = caught as UnsupportedServerError;
    expect(err.code).toBe('0A000');
    expect(err.message).toContain(`PostgreSQL ${version}`);
    expect(err.message).toContain(String(num));
    expect(err.message).toContain('PostgreSQL 15 to 18 is supported');
    expect(err.hint).toBeDefined();
  });

  it('refuses a SQL_ASCII database', () => {
    expect(() => checkServerSupported(facts(170010, '17.10', 'SQL_ASCII'))).toThrow(/SQL_ASCII/);
  });

  it('accepts UTF8 and other real encodings', () => {
    expect(() => checkServerSupported(facts(170010, '17.10', 'UTF8'))).not.toThrow();
    expect(() => checkServerSupported(facts(170010, '17.10', 'LATIN1'))).not.toThrow();
  });
});
