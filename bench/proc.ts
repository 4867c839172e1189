/** A process's resident memory and CPU time, read from /proc (Linux). */
import { readFileSync } from 'node:fs';

/** Resident memory of a process, MB; 0 once it is gone. */
export function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return 0;
  }
}

/** CPU time (user + system, all threads) a process has used, ms: /proc/PID/stat fields 14 and 15, in ticks of 10 ms. */
export function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / 100);
}
