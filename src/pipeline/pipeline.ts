/**
 * The one place that orders the resolve path, like CoreDNS's plugin chain:
 *
 *   admission → loop → pins → hosts → local zones → cache → coalesce → route → forward (upstream group strategy)
 *
 * (daemon.ts builds the list.)
 *
 * Each stage answers or hands on. The listener (server/) decodes before and the
 * answer step (dns/answer.ts) encodes after.
 */
import { PASS, WAIT, type Context, type Next, type Result, type Stage } from './types.js';

export class Pipeline {
  /** nexts[i]: the chain from stage i on, once the query may wait (its deadline armed). */
  private readonly nexts: Next[];

  constructor(readonly stages: readonly Stage[]) {
    if (stages.length === 0) throw new Error('pipeline needs at least one stage');
    let next: Next = () => Promise.reject(new Error(`no stage answered (last: ${stages[stages.length - 1]!.name})`));
    this.nexts = new Array<Next>(stages.length + 1);
    this.nexts[stages.length] = next;
    for (let i = stages.length - 1; i >= 0; i--) {
      const stage = stages[i]!;
      const after = next;
      next = (ctx) => {
        try {
          const d = stage.decide(ctx, after);
          if (d === PASS) return after(ctx);
          if (d === WAIT) return stage.wait!(ctx, after);
          return Promise.resolve(d);
        } catch (err) {
          return Promise.reject(err as Error);
        }
      };
      this.nexts[i] = next;
    }
  }

  /**
   * Runs the query through the stages. Those that decide at once (admission, pins, a cache
   * hit) do, and their answer comes back without a promise. `beforeWait` is called just
   * before the first stage that waits (the caller arms the deadline and sets `ctx.signal`);
   * when it returns a result, that is the answer and nothing waits. Throws what a stage throws.
   */
  start(ctx: Context, beforeWait?: (ctx: Context) => Result | undefined): Result | Promise<Result> {
    const stages = this.stages;
    for (let i = 0; i < stages.length; i++) {
      const stage = stages[i]!;
      const next = this.nexts[i + 1]!;
      const d = stage.decide(ctx, next);
      if (d === PASS) continue;
      if (d !== WAIT) return d;
      const refused = beforeWait?.(ctx);
      if (refused) return refused;
      return stage.wait!(ctx, next);
    }
    // No stage answered (a bug): fail as a waiting query would.
    const refused = beforeWait?.(ctx);
    if (refused) return refused;
    return this.nexts[stages.length]!(ctx);
  }
}
