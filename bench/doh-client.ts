/**
 * A DoH client that asks the benchmark upstream directly, run as a forked child process:
 * its round trip is "the upstream's own time" as any DoH client on this machine sees it
 * (TLS and HTTP/2 on both ends, loopback both ways), so that dohd's cold-miss time minus it
 * is what the stub resolver adds. One HTTP/2 connection (warmed up first), queries paced
 * like dnsperf -Q, each timed from request to complete response.
 * IPC: {cmd:'run', port, ca, names, qps, outstanding} → {latencies}.
 */
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';

interface Run {
  cmd: 'run';
  port: number;
  ca: string;
  names: string[];
  qps: number;
  outstanding: number;
  warmup: number;
}

function ask(session: http2.ClientHttp2Session, name: string): Promise<number> {
  const body = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', accept: 'application/dns-message' });
    req.on('error', reject);
    req.on('data', () => {});
    req.on('end', () => resolve(performance.now() - t0));
    req.end(body);
  });
}

async function run(r: Run): Promise<number[]> {
  const session = http2.connect(`https://127.0.0.1:${r.port}`, { ca: readFileSync(r.ca), servername: 'localhost' });
  session.on('error', () => {});
  await new Promise<void>((res, rej) => {
    session.once('connect', () => res());
    session.once('error', rej);
  });
  for (let i = 0; i < r.warmup; i++) await ask(session, `warmup${i}.direct.bench`);
  const latencies: number[] = [];
  let next = 0;
  let inflight = 0;
  const start = performance.now();
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(r.names.length, Math.floor(((performance.now() - start) / 1000) * r.qps) + 1);
      while (next < due && inflight < r.outstanding) {
        inflight++;
        ask(session, r.names[next++]!).then(
          (ms) => {
            latencies.push(ms);
            inflight--;
            if (next >= r.names.length && inflight === 0) done();
          },
          () => {
            inflight--;
            if (next >= r.names.length && inflight === 0) done();
          },
        );
      }
      if (next < r.names.length) setTimeout(tick, 1);
    };
    tick();
  });
  session.close();
  return latencies;
}

process.on('message', (m: Run) => {
  if (m.cmd === 'run') run(m).then((latencies) => process.send!({ latencies }), (err: Error) => process.send!({ error: err.message }));
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true, port: 0 });
