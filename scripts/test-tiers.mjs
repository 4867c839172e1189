#!/usr/bin/env node
/**
 * `npm test`: every test tier, one vitest run each, in order of speed, with the time each took.
 * A tier that fails does not stop the later ones (their results are still worth reading); the
 * exit code is non-zero when any failed. `npm run test:fast` is the first two tiers alone.
 *
 *   unit          test/unit         pure code, fake clocks, no sockets
 *   integration   test/integration  the daemon in-process, real sockets on loopback
 *   e2e           test/e2e          the built CLI (dist/) as users run it: real clients, systemd
 *                                   as PID 1, namespaces, fuzzing, the soak
 *
 * Arguments after `--` go to every vitest run (e.g. `npm test -- --reporter=dot`).
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

// Unit and integration tests mostly wait (timers, loopback sockets): four files at a time keep
// two cores busy (vitest's default is one worker per core but one). e2e spawns the CLI, systemd and
// client programs: the default.
const TIERS = [
  { name: 'unit', dir: 'test/unit', args: ['--maxWorkers=4'] },
  { name: 'integration', dir: 'test/integration', args: ['--maxWorkers=4'] },
  { name: 'e2e', dir: 'test/e2e', args: [] },
];
const only = process.env.DOHD_TEST_TIERS?.split(',').filter(Boolean);
const extra = process.argv.slice(2);
const results = [];
for (const tier of TIERS) {
  if (only && !only.includes(tier.name)) continue;
  console.log(`\n=== tier ${tier.name} (${tier.dir}) ===`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', tier.dir, ...tier.args, ...extra], { stdio: 'inherit' });
  results.push({ tier: tier.name, ok: r.status === 0, s: (performance.now() - t0) / 1000 });
}
console.log('\n=== test tiers ===');
for (const r of results) console.log(`${r.ok ? 'pass' : 'FAIL'}  ${r.tier.padEnd(12)} ${r.s.toFixed(1).padStart(7)} s`);
const total = results.reduce((a, r) => a + r.s, 0);
console.log(`${''.padEnd(18)}${total.toFixed(1).padStart(7)} s in all`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
