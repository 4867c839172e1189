/**
 * Access control: which client sources may use this resolver. Everything not in the
 * allow list gets REFUSED (by the policy stage).
 */
import { CidrList, parseClientAddress } from '../config/cidr.js';

export class Acl {
  private readonly allow: CidrList;

  constructor(allow: readonly string[]) {
    this.allow = new CidrList(allow);
  }

  /** True when the source address (as the socket reports it) is in the allow list. */
  allows(address: string): boolean {
    const addr = parseClientAddress(address);
    return addr !== null && this.allow.has(addr);
  }
}
