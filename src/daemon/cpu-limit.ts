/**
 * How many CPUs this process may use: the CPUs it may run on (affinity), and the CPU quota of
 * its cgroup and every cgroup above it (a container's CPU limit, systemd's CPUQuota=), v2
 * (`cpu.max`) or v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`). A quota of 50% is 0.5 CPUs.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** The smaller of the CPUs this process may run on and its cgroups' CPU quota. */
export function usableCpus(): number {
  return Math.min(availableParallelism(), cgroupCpuQuota(readOr('/proc/self/cgroup') ?? '') ?? Infinity);
}

/**
 * The tightest CPU quota, in CPUs, over the cgroups that `procSelfCgroup` (the text of
 * /proc/self/cgroup) names and their ancestors, under `root`; null without any. Inside a
 * container the cgroup path named there may not exist (the container sees its own cgroup as
 * the root): missing directories are skipped, the root is always read.
 */
export function cgroupCpuQuota(procSelfCgroup: string, root = '/sys/fs/cgroup'): number | null {
  let best = Infinity;
  for (const line of procSelfCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, hierarchy, controllers, path] = m;
    if (hierarchy === '0' && controllers === '') {
      for (const dir of selfAndAncestors(root, path!)) best = Math.min(best, cpuMax(readOr(join(dir, 'cpu.max'))));
    } else if (controllers!.split(',').includes('cpu')) {
      for (const dir of selfAndAncestors(join(root, 'cpu'), path!)) {
        const quota = Number(readOr(join(dir, 'cpu.cfs_quota_us')) ?? -1);
        const period = Number(readOr(join(dir, 'cpu.cfs_period_us')) ?? 0);
        if (quota > 0 && period > 0) best = Math.min(best, quota / period);
      }
    }
  }
  return best === Infinity ? null : best;
}

/** `cpu.max` ("max 100000", "50000 100000"), in CPUs; Infinity when unlimited or unreadable. */
function cpuMax(text: string | null): number {
  const [quota, period] = (text ?? '').trim().split(/\s+/);
  const q = Number(quota);
  const p = Number(period ?? 100_000);
  return quota !== 'max' && q > 0 && p > 0 ? q / p : Infinity;
}

/** root/path, then each directory above it up to root itself. */
function selfAndAncestors(root: string, path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  const dirs: string[] = [];
  for (let i = parts.length; i >= 0; i--) dirs.push(join(root, ...parts.slice(0, i)));
  return dirs;
}

function readOr(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
