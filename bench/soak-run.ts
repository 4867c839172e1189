/**
 * `npm run soak`: the 10-minute chaos soak (bench/soak.ts) against the real CLI. SOAK_SECONDS
 * (default 600), SOAK_RATE (queries/s, default 100), SOAK_FLIP_MS (default 10000), SOAK_SEED
 * (replay). Prints progress every minute and the report as JSON for docs/soak.md; exits 1 when
 * a query went unanswered, an answer was wrong, dohd died or logged at error level.
 */
import { soak } from './soak.js';

const seconds = Number(process.env.SOAK_SECONDS ?? 600);
const seed = Number(process.env.SOAK_SEED ?? Date.now() % 2 ** 31);
console.log(`soak: seed ${seed} (replay: SOAK_SEED=${seed} npm run soak), ${seconds} s`);
const report = await soak({
  durationMs: seconds * 1000,
  rate: Number(process.env.SOAK_RATE ?? 100),
  flipMs: Number(process.env.SOAK_FLIP_MS ?? 10_000),
  sampleMs: Number(process.env.SOAK_SAMPLE_MS ?? 60_000),
  seed,
  log: (l) => console.log(l),
});
console.log(JSON.stringify(report, null, 2));
const ok = report.silence === 0 && report.wrong === 0 && report.processRestarts === 0 && report.errorLines === 0;
process.exit(ok ? 0 : 1);
