/**
 * Access control: which client sources may use this resolver. Everything not in the
 * allow list gets REFUSED (by the policy stage).
 */
import { CidrList, parseClientAddress } from '../../config/cidr.js';

/** Addresses whose verdict is remembered (a client sends many queries); cleared when full. */
const MEMO_MAX = 4096;

export class Acl {
  private readonly allow: CidrList;
  private readonly memo = new Map<string, boolean>();

  constructor(allow: readonly string[]) {
    this.allow = new CidrList(allow);
  }

  /** True when the source address (as the socket reports it) is in the allow list. */
  allows(address: string): boolean {
    let ok = this.memo.get(address);
    if (ok === undefined) {
      const addr = parseClientAddress(address);
      ok = addr !== null && this.allow.has(addr);
      if (this.memo.size >= MEMO_MAX) this.memo.clear();
      this.memo.set(address, ok);
    }
    return ok;
  }
}
