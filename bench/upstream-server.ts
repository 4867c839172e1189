/**
 * Benchmark DoH upstream, run as a forked child process so it never shares an event loop
 * with the harness or dohd: answers any A query with one address (TTL 3600) after a
 * configurable delay and jitter, and counts requests and TLS handshakes.
 * Control messages over IPC: {cmd:'config', delayMs, jitterProb, jitterMs}, {cmd:'stats'}, {cmd:'reset'}.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';

const [certFile, keyFile] = process.argv.slice(2);
const { readFileSync } = await import('node:fs');
let delayMs = Number(process.env.BENCH_DELAY_MS ?? 0);
let jitterProb = 0;
let jitterMs = 0;
let requests = 0;
/** Time from a request's arrival to its answer being written, ms: the upstream's own time. */
let serviceMs: number[] = [];
let handshakes = 0;
/** Never reset: connections dohd opened over a whole benchmark phase. */
let totalHandshakes = 0;
const server = http2.createSecureServer({ cert: readFileSync(certFile!), key: readFileSync(keyFile!), allowHTTP1: false, settings: { maxConcurrentStreams: 1000 } });
server.on('secureConnection', () => {
  handshakes++;
  totalHandshakes++;
});
server.on('stream', (stream, headers) => {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('error', () => {});
  stream.on('end', () => {
    const t0 = performance.now();
    requests++;
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(Buffer.concat(chunks));
    } catch {
      stream.respond({ ':status': 400 });
      stream.end();
      return;
    }
    const question = q.questions![0]!;
    const n = (requests % 250) + 1;
    const answers: dnsPacket.Answer[] = question.type === 'A' ? [{ name: question.name, type: 'A', ttl: 3600, data: `192.0.2.${n}` }] : [];
    const body = dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: [question], answers });
    const send = () => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/dns-message', 'content-length': body.length });
      stream.end(body);
      if (serviceMs.length < 200_000) serviceMs.push(performance.now() - t0);
    };
    const d = delayMs + (jitterProb > 0 && Math.random() < jitterProb ? jitterMs : 0);
    if (d > 0) setTimeout(send, d);
    else send();
  });
  void headers;
});
server.listen(0, '127.0.0.1', () => {
  const port = (server.address() as { port: number }).port;
  process.send!({ ready: true, port });
});
process.on('message', (m: { cmd: string; delayMs?: number; jitterProb?: number; jitterMs?: number }) => {
  if (m.cmd === 'config') {
    delayMs = m.delayMs ?? delayMs;
    jitterProb = m.jitterProb ?? 0;
    jitterMs = m.jitterMs ?? 0;
    process.send!({ ok: true });
  } else if (m.cmd === 'stats') {
    const sorted = [...serviceMs].sort((a, b) => a - b);
    const pct = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);
    process.send!({ requests, handshakes, totalHandshakes, serviceP50Ms: pct(50), serviceP99Ms: pct(99) });
  }
  else if (m.cmd === 'reset') {
    requests = 0;
    handshakes = 0;
    serviceMs = [];
    process.send!({ ok: true });
  } else if (m.cmd === 'exit') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
