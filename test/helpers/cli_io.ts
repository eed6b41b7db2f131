import type { Io } from '../../src/cli/main.ts';

/** An Io for main() that keeps what the CLI prints: `out` (stdout) and `err` (stderr) as they grow. */
export function capturedIo(): Io & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: (t: string) => {
      io.out += t;
    },
    stderr: (t: string) => {
      io.err += t;
    },
  };
  return io;
}
