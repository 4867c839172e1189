import { describe, expect, it } from 'vitest';
import { heapFlags } from '../../src/heap.js';

describe('heap settings (src/heap.ts)', () => {
  it('keeps the young generation at its initial size by default', () => {
    expect(heapFlags([], '')).toEqual(['--semi-space-growth-factor=1']);
    expect(heapFlags(['--heap-growing-percent=50'], '--inspect')).toEqual(['--semi-space-growth-factor=1']);
  });
  it("leaves it alone when the user sized it, on node's command line or in NODE_OPTIONS, in either spelling", () => {
    expect(heapFlags(['--max-semi-space-size=8'])).toEqual([]);
    expect(heapFlags([], '--inspect --min_semi_space_size=2')).toEqual([]);
  });
});
