/**
 * A memory-limited cgroup to start a process in, as a container runtime or systemd's
 * MemoryMax= would: Node sizes V8's heap from the limit it finds (libuv reads the cgroup's),
 * and V8 then collects sooner. Needs root and a writable cgroup hierarchy (v1 memory
 * controller, or v2 with the memory controller available); otherwise the reason is returned.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemoryCgroup {
  dir: string;
  limitMb: number;
  /** Removes the cgroup (once the processes in it have exited). */
  remove(): void;
}

export function memoryCgroup(name: string, limitMb: number): MemoryCgroup | { skipped: string } {
  try {
    const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    const v1 = lines.map((l) => l.split(':')).find(([, ctrls]) => ctrls!.split(',').includes('memory'));
    let dir: string;
    let limitFile: string;
    if (v1 && existsSync('/sys/fs/cgroup/memory')) {
      dir = join('/sys/fs/cgroup/memory', v1[2]!, name);
      limitFile = 'memory.limit_in_bytes';
    } else {
      const v2 = lines.find((l) => l.startsWith('0::'));
      const root = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
      if (!v2 || !readFileSync(join(root, v2.slice(3), 'cgroup.subtree_control'), 'utf8').includes('memory')) {
        return { skipped: 'no cgroup with a memory controller to create a limited one under' };
      }
      dir = join(root, v2.slice(3), name);
      limitFile = 'memory.max';
    }
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, limitFile), String(limitMb * 2 ** 20));
    return {
      dir,
      limitMb,
      remove: () => {
        try {
          rmdirSync(dir);
        } catch {
          // still busy or gone: nothing to keep it for
        }
      },
    };
  } catch (err) {
    return { skipped: `cannot create a memory-limited cgroup: ${(err as Error).message}` };
  }
}

/** `command args` started inside the cgroup `dir` (by a shell that moves itself there and execs it). */
export function inCgroup(dir: string, command: string, args: string[]): [string, string[]] {
  return ['sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec "$0" "$@"`, command, ...args]];
}
