/**
 * Checks an upstream's DNS answer before it may win a race or enter the cache:
 * it parses, it is a response, and it answers the question that was asked.
 */
import dnsPacket from 'dns-packet';
import type { Packet, Query } from '../dns/message.js';
import { questionEnd, Rcode, readHeader, stripTrailingOpt, ttlOffsets } from '../dns/wire.js';
import { UpstreamError } from './errors.js';

export interface CheckedAnswer {
  /** Canonical wire form: ID 0, no OPT record. */
  wire: Buffer;
  packet: Packet;
  rcode: number;
}

export function checkAnswer(body: Buffer, q: Query, expectedId = 0): CheckedAnswer {
  const h = readHeader(body);
  if (!h) throw new UpstreamError('malformed', `answer too short (${body.length} bytes)`);
  let packet: Packet;
  try {
    packet = dnsPacket.decode(body);
  } catch (err) {
    throw new UpstreamError('malformed', `answer does not parse: ${(err as Error).message}`);
  }
  // Read at once: dns-packet keeps it in a global that the next decode overwrites.
  const used = (dnsPacket.decode as { bytes?: number }).bytes ?? body.length;
  if (!h.qr) throw new UpstreamError('malformed', 'answer is not a response (QR=0)');
  if (h.id !== expectedId) throw new UpstreamError('wrong_question', `answer ID ${h.id} does not match query ID ${expectedId}`);
  const aq = packet.questions?.[0];
  if (h.qdcount !== 1 || !aq) throw new UpstreamError('wrong_question', `answer has ${h.qdcount} questions`);
  const aname = aq.name.replace(/\.$/, '').toLowerCase();
  const aEnd = questionEnd(body);
  if (aname !== q.lname || aq.type !== q.type || aEnd < 0 || body.readUInt16BE(aEnd - 2) !== q.qclass) {
    throw new UpstreamError('wrong_question', `answer is for ${aq.name}/${aq.type}, asked ${q.name}/${q.type}`);
  }
  // dns-packet reads past a record cut short without complaint: walk the records ourselves too.
  if (used > body.length || ttlOffsets(body) === null) throw new UpstreamError('malformed', 'answer ends inside a record');
  // Bytes after the last record are dropped: the OPT we append to the client's answer must follow a record.
  const wire = Buffer.from(stripTrailingOpt(used < body.length ? body.subarray(0, used) : body));
  if (wire.length < 12) throw new UpstreamError('malformed', 'answer ends inside its header');
  wire.writeUInt16BE(0, 0);
  // What is stored and sent must itself read back whole: every record in place, nothing after them
  // (a damaged name or length can make the two readings above disagree).
  try {
    dnsPacket.decode(wire);
  } catch {
    throw new UpstreamError('malformed', 'answer does not parse once trimmed');
  }
  if ((dnsPacket.decode as { bytes?: number }).bytes !== wire.length || ttlOffsets(wire) === null) {
    throw new UpstreamError('malformed', 'answer records do not fill the message');
  }
  return { wire, packet, rcode: h.rcode };
}

/** SERVFAIL and REFUSED are answers, but never good enough to win while another upstream may do better. */
export function isSoftFailure(rcode: number): boolean {
  return rcode === Rcode.SERVFAIL || rcode === Rcode.REFUSED;
}

/** How a soft failure (see isSoftFailure) is told to health, logs and metrics. */
export function softFailureError(rcode: number): UpstreamError {
  return new UpstreamError(rcode === Rcode.SERVFAIL ? 'servfail' : 'refused', `rcode ${rcode}`);
}
