import { describe, expect, it } from 'vitest';
import { GC_HELPER_FLAGS, heapFlags, MAIN_THREAD_MARKING_CPUS } from '../../../src/daemon/heap.js';

const NO_HELPERS = GC_HELPER_FLAGS.map((f) => `--no-${f}`);

describe('heap settings (src/daemon/heap.ts)', () => {
  it('keeps the young generation at its initial size by default', () => {
    expect(heapFlags([], '')).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags(['--heap-growing-percent=50'], '--inspect')).toEqual(['--semi-space-growth-factor=1']);
  });
  it("leaves it alone when the user sized it, on node's command line or in NODE_OPTIONS, in either spelling", () => {
    expect(heapFlags(['--max-semi-space-size=8'])).toEqual([]);
    expect(heapFlags([], '--inspect --min_semi_space_size=2')).toEqual([]);
  });
  it('turns concurrent marking off with two CPUs or fewer, not with more', () => {
    expect(heapFlags([], '', MAIN_THREAD_MARKING_CPUS)).toEqual(['--semi-space-growth-factor=1', ...NO_HELPERS]);
    expect(heapFlags([], '', 0.5)).toEqual(['--semi-space-growth-factor=1', ...NO_HELPERS]);
    expect(heapFlags(['--max-semi-space-size=8'], '', 1)).toEqual(NO_HELPERS);
    expect(heapFlags([], '', 2.5)).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags([], '', 16)).toEqual(['--semi-space-growth-factor=1']);
  });
  it('every flag it turns off is one node knows (a misspelt one would be ignored without a word)', async () => {
    const { execFileSync } = await import('node:child_process');
    const known = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
    for (const f of GC_HELPER_FLAGS) expect(known).toMatch(new RegExp(`^\\s+--${f} `, 'm'));
  });
  it('leaves GC threading alone when the user chose, on the command line or in NODE_OPTIONS, in either spelling', () => {
    expect(heapFlags(['--single-threaded-gc'], '', 1)).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags(['--single-threaded'], '', 1)).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags([], '--concurrent_marking', 1)).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags(['--no-parallel-marking'], '', 2)).toEqual(['--semi-space-growth-factor=1']);
    // Not a GC threading flag, only a prefix of one's name.
    expect(heapFlags(['--concurrent-recompilation'], '', 2)).toEqual(['--semi-space-growth-factor=1', ...NO_HELPERS]);
  });
});
