// Loaded first: wraps Http2Stream#setTimeout to report calls on closed streams.
import http2 from 'node:http2';
const server = http2.createServer();
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const session = http2.connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
session.on('error', () => {});
const st = session.request({ ':path': '/' });
st.on('error', () => {});
let proto = Object.getPrototypeOf(st);
while (proto && !Object.prototype.hasOwnProperty.call(proto, 'setTimeout')) proto = Object.getPrototypeOf(proto);
const orig = proto.setTimeout;
let reported = 0;
export const stats = { late: 0, calls: 0 };
proto.setTimeout = function (this: http2.Http2Stream, ms: number, cb?: () => void) {
  stats.calls++;
  if (ms > 0 && (this.closed || this.destroyed)) {
    stats.late++;
    if (reported++ < 3) console.log('setTimeout on closed stream', ms, this.destroyed, new Error().stack);
  }
  return orig.call(this, ms, cb);
};
st.close();
session.destroy();
server.close();
