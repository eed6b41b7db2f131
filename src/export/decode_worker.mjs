// Entry of the export verifier's worker threads (src/export/parallel.ts).
// The package runs TypeScript through tsx with no build step: register tsx's
// loader in this thread (a worker does not inherit the loader that
// bin/audit-trail.mjs registered), then load the TypeScript module.
import { register } from 'tsx/esm/api';

register();
await import('./decode_worker.ts');
