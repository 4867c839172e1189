/**
 * The `dohd` command turns V8's concurrent marking off on a machine with two CPUs or fewer
 * (src/daemon/heap.ts): seen in V8's own trace of each collection, which says how long helper
 * threads marked in it (`background.mark`). Collections are forced often (`--gc-interval`)
 * so that even `--help` runs a full one.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { usableCpus } from '../../src/daemon/cpu-limit.js';
import { MAIN_THREAD_MARKING_CPUS } from '../../src/daemon/heap.js';
import { CLI } from '../fixtures/spawn.js';

const run = promisify(execFile);
/** The CLI without the `dohd` entry's heap set-up: V8's defaults. */
const CLI_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Full collections in `node --trace-gc-nvp … <script> --help`, and the ms helper threads spent marking in them. */
async function fullCollections(script: string, nodeArgs: string[] = []): Promise<{ count: number; helperMs: number }> {
  const { stdout } = await run(process.execPath, ['--trace-gc-nvp', '--gc-interval=2000', ...nodeArgs, script, '--help'], {
    maxBuffer: 64 * 2 ** 20,
    timeout: 60_000,
  });
  let count = 0;
  let helperMs = 0;
  for (const line of stdout.split('\n')) {
    if (!/\bgc=(mc|ms)\b/.test(line)) continue;
    count++;
    for (const m of line.matchAll(/\bbackground\.mark=([\d.]+)/g)) helperMs += Number(m[1]);
  }
  return { count, helperMs };
}

describe.runIf(usableCpus() <= MAIN_THREAD_MARKING_CPUS)(`garbage collection with ${MAIN_THREAD_MARKING_CPUS} CPUs or fewer`, () => {
  it("V8's defaults mark on helper threads (the measure sees them)", async () => {
    const v8Defaults = await fullCollections(CLI_MAIN);
    expect(v8Defaults.count).toBeGreaterThan(0);
    expect(v8Defaults.helperMs).toBeGreaterThan(0);
  }, 90_000);
  it('the dohd command marks on the main thread alone', async () => {
    const dohd = await fullCollections(CLI);
    expect(dohd.count).toBeGreaterThan(0);
    expect(dohd.helperMs).toBe(0);
  }, 90_000);
  it('a GC threading flag given to node leaves the helpers on', async () => {
    const given = await fullCollections(CLI, ['--concurrent-marking']);
    expect(given.count).toBeGreaterThan(0);
    expect(given.helperMs).toBeGreaterThan(0);
  }, 90_000);
});
