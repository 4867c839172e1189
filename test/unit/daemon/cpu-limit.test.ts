import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupCpuQuota, usableCpus } from '../../../src/daemon/cpu-limit.js';

/** A cgroup tree of files under a temporary root: { 'a/b/cpu.max': '50000 100000' }. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'dohd-cgroup-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}
const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

describe('CPU quota of the cgroup (src/daemon/cpu-limit.ts)', () => {
  it('cgroup v2: the quota of the process cgroup, in CPUs', () => {
    const root = tree({ 'cpu.max': 'max 100000\n', 'kubepods/pod1/c1/cpu.max': '50000 100000\n' });
    expect(cgroupCpuQuota('0::/kubepods/pod1/c1\n', root)).toBe(0.5);
  });
  it('cgroup v2: a tighter quota higher up wins; "max" is no limit', () => {
    const root = tree({ 'system.slice/cpu.max': '150000 100000\n', 'system.slice/dohd.service/cpu.max': 'max 100000\n' });
    expect(cgroupCpuQuota('0::/system.slice/dohd.service\n', root)).toBe(1.5);
    expect(cgroupCpuQuota('0::/system.slice/dohd.service\n', tree({ 'cpu.max': 'max 100000\n' }))).toBeNull();
  });
  it("inside a container: the named path is missing, the container's own root is read", () => {
    const root = tree({ 'cpu.max': '200000 100000\n' });
    expect(cgroupCpuQuota('0::/kubepods/burstable/pod9/abc\n', root)).toBe(2);
  });
  it('cgroup v1: cfs quota over period of the cpu controller; -1 is no limit', () => {
    const root = tree({
      'cpu/docker/c1/cpu.cfs_quota_us': '25000\n',
      'cpu/docker/c1/cpu.cfs_period_us': '100000\n',
      'cpu/cpu.cfs_quota_us': '-1\n',
      'cpu/cpu.cfs_period_us': '100000\n',
    });
    const self = '9:name=systemd:/docker/c1\n4:cpu,cpuacct:/docker/c1\n3:memory:/docker/c1\n';
    expect(cgroupCpuQuota(self, root)).toBe(0.25);
    expect(cgroupCpuQuota('4:cpu,cpuacct:/\n', root)).toBeNull();
  });
  it('no cgroup files, or a line it does not know: no quota', () => {
    expect(cgroupCpuQuota('0::/x\n', tree({}))).toBeNull();
    expect(cgroupCpuQuota('garbage\n\n', tree({ 'cpu.max': '50000 100000' }))).toBeNull();
  });
  it("this process: at most the CPUs it may run on, and a positive number", () => {
    const n = usableCpus();
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThanOrEqual(availableParallelism());
  });
});
