/**
 * Whether the tests of the export verifier's native core can run: the core
 * is built (npm install builds it where a C compiler is). Where it is not,
 * those tests are skipped with a note saying why and how to build it; with
 * AUDIT_TRAIL_REQUIRE_NATIVE=1 (CI, which builds it with --required) a
 * missing core fails them instead, so that it is never left untested.
 */
import { loadNativeCore, verifierCore } from '../../src/export/native.ts';

export function nativeCoreTestable(): boolean {
  if (loadNativeCore() !== null) return true;
  const why = verifierCore().why;
  if (process.env.AUDIT_TRAIL_REQUIRE_NATIVE === '1') throw new Error(`AUDIT_TRAIL_REQUIRE_NATIVE=1 but the native core is not loaded: ${why}`);
  console.warn(`[native core] SKIPPED: the native core of verify --export is ${why}; its tests are skipped (the TypeScript path is tested as always). Build it with npm run build:native.`);
  return false;
}
