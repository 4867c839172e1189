import { describe, expect, it } from 'vitest';
import { heapFlags } from '../../src/heap.js';

describe('heap settings (src/heap.ts)', () => {
  it('keeps the young generation at 1 MB and collects the old one at 1.5x live by default', () => {
    expect(heapFlags([], '')).toEqual(['--semi-space-growth-factor=1', '--heap-growing-percent=50']);
  });
  it("leaves alone what the user set, on node's command line or in NODE_OPTIONS, in either spelling", () => {
    expect(heapFlags(['--max-semi-space-size=8'])).toEqual(['--heap-growing-percent=50']);
    expect(heapFlags([], '--inspect --min_semi_space_size=2')).toEqual(['--heap-growing-percent=50']);
    expect(heapFlags(['--heap-growing-percent=100'])).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags([], '--heap_growing_percent=20 --max-semi-space-size=4')).toEqual([]);
  });
});
