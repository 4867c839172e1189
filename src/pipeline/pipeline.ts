/**
 * The one place that orders the resolve path, like CoreDNS's plugin chain:
 *
 *   policy → loop → pins → hosts → local zones → cache → coalesce → route → forward (upstream group strategy)
 *
 * (daemon.ts builds the list.)
 *
 * Each stage answers or hands on. The listener (server/) decodes before and the
 * answer step (dns/answer.ts) encodes after.
 */
import { PASS, type Context, type Next, type Result, type Stage } from './types.js';

export class Pipeline {
  private readonly entry: Next;
  /** nexts[i]: the chain from stage i on. */
  private readonly nexts: Next[];

  constructor(readonly stages: readonly Stage[]) {
    if (stages.length === 0) throw new Error('pipeline needs at least one stage');
    let next: Next = () => Promise.reject(new Error(`no stage answered (last: ${stages[stages.length - 1]!.name})`));
    this.nexts = new Array<Next>(stages.length + 1);
    this.nexts[stages.length] = next;
    for (let i = stages.length - 1; i >= 0; i--) {
      const stage = stages[i]!;
      const after = next;
      next = (ctx) => stage.handle(ctx, after);
      this.nexts[i] = next;
    }
    this.entry = next;
  }

  resolve(ctx: Context): Promise<Result> {
    return this.entry(ctx);
  }

  /**
   * The same path, with the fast lane: stages that can decide synchronously (policy, pins,
   * a cache hit) do, and their answer comes back without a promise. From the first stage
   * that has to wait, the rest runs as `resolve` would. `beforeWait` is called just before
   * that (the caller arms the deadline and sets `ctx.signal`); when it returns a result,
   * that is the answer and nothing waits. Throws what a stage throws.
   */
  start(ctx: Context, beforeWait?: (ctx: Context) => Result | undefined): Result | Promise<Result> {
    const stages = this.stages;
    let i = 0;
    for (; i < stages.length; i++) {
      const stage = stages[i]!;
      if (stage.handleSync === undefined) break;
      const r = stage.handleSync(ctx, this.nexts[i + 1]!);
      if (r === PASS) continue;
      if (r === undefined) break;
      return r;
    }
    const refused = beforeWait?.(ctx);
    if (refused) return refused;
    return this.nexts[i]!(ctx);
  }
}
