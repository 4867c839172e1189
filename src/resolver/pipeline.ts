/**
 * The one place that orders the resolve path, like CoreDNS's plugin chain:
 *
 *   policy → loop → pins → hosts → cache → coalesce → route → forward (upstream group strategy)
 *
 * (daemon.ts builds the list.)
 *
 * Each stage answers or hands on. The listener (server/) decodes before and the
 * answer step (dns/answer.ts) encodes after.
 */
import type { Context, Next, Result, Stage } from './types.js';

export class Pipeline {
  private readonly entry: Next;

  constructor(readonly stages: readonly Stage[]) {
    if (stages.length === 0) throw new Error('pipeline needs at least one stage');
    let next: Next = () => Promise.reject(new Error(`no stage answered (last: ${stages[stages.length - 1]!.name})`));
    for (let i = stages.length - 1; i >= 0; i--) {
      const stage = stages[i]!;
      const after = next;
      next = (ctx) => stage.handle(ctx, after);
    }
    this.entry = next;
  }

  resolve(ctx: Context): Promise<Result> {
    return this.entry(ctx);
  }
}
