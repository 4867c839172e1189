/** A query dohd makes itself (loop probe, bootstrap lookup), in the same form as a decoded client query. */
import dnsPacket from 'dns-packet';
import { decodeQuery, type Query } from './message.js';

export function makeQuery(name: string, type: dnsPacket.RecordType): Query {
  const wire = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
  const d = decodeQuery(wire);
  if (!d.ok) throw new Error(`cannot build a query for ${name}/${type}: ${d.reason}`);
  return d.query;
}
