/**
 * The runtime's ceiling: the least a Node UDP DNS server can do — copy a prebuilt answer,
 * patch the ID, send. dohd's cache-hit throughput is reported as a fraction of this,
 * measured in the same run on the same machine.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const answer = dnsPacket.encode({
  id: 0,
  type: 'response',
  flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
  questions: [{ name: 'hit.bench', type: 'A', class: 'IN' }],
  answers: [{ name: 'hit.bench', type: 'A', ttl: 3600, data: '192.0.2.1' }],
});
// The same send path as dohd's UDP listener: no lookup for the client's IP literal, no send callback.
const socket = dgram.createSocket({ type: 'udp4', lookup: (address, _family, callback) => callback(null, address, 4) });
socket.on('message', (msg, rinfo) => {
  if (msg.length < 2) return;
  const out = Buffer.allocUnsafe(answer.length);
  answer.copy(out);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  socket.send(out, rinfo.port, rinfo.address);
});
socket.bind(0, '127.0.0.1', () => process.send!({ ready: true, port: socket.address().port }));
process.on('disconnect', () => process.exit(0));
