/**
 * The hosts stage: names in the configured hosts file are answered locally (A, AAAA, and
 * PTR for their addresses; any other type of such a name gets an empty NOERROR), before
 * the cache. Everything else goes on.
 */
import type { Answer } from '../../dns/message.js';
import { addressAnswers, localReply } from '../../dns/message.js';
import { Rcode } from '../../dns/wire.js';
import type { HostsFile } from './hosts-file.js';
import { localSoa } from '../local-zones/zones.js';
import { PASS, type Context, type Result, type Stage } from '../../pipeline/types.js';

export class HostsStage implements Stage {
  readonly name = 'hosts';
  answered = 0;

  constructor(
    private readonly hosts: HostsFile,
    private readonly ttl: number,
  ) {}

  decide(ctx: Context): Result | typeof PASS {
    const q = ctx.query;
    if (q.qclass !== 1) return PASS;
    const { names, reverse } = this.hosts.table;
    const answers: Answer[] = [];
    if (q.type === 'PTR') {
      const ptr = reverse.get(q.lname);
      if (!ptr) return PASS;
      for (const n of ptr) answers.push({ name: q.name, type: 'PTR', class: 'IN', ttl: this.ttl, data: n });
    } else {
      const e = names.get(q.lname);
      if (!e) return PASS;
      addressAnswers(q, e.v4, e.v6, this.ttl, answers);
    }
    this.answered++;
    // NODATA carries a SOA: never empty in every section (Go would take it for a lame referral).
    return { wire: localReply(q, answers, Rcode.NOERROR, answers.length === 0 ? [localSoa(q.name, this.ttl)] : []), source: 'hosts', rcode: Rcode.NOERROR };
  }
}
