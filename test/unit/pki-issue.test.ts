/** The PKI fixture's bad certificates (test/fixtures/pki.ts issueCert) are what their names say. */
import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { issueCert, makePki } from '../fixtures/pki.js';

describe('issueCert', () => {
  it('expired, not yet valid, self-signed, IP-only, and a chain of intermediates', async () => {
    const ca = await makePki();
    try {
      const caX = new X509Certificate(ca.caPem);
      const hour = 3_600_000;
      const expired = new X509Certificate((await issueCert(ca, { notBefore: new Date(Date.now() - 2 * hour), notAfter: new Date(Date.now() - hour) })).certPem);
      expect(new Date(expired.validTo).getTime()).toBeLessThan(Date.now());
      expect(expired.checkIssued(caX)).toBe(true);
      const future = new X509Certificate((await issueCert(ca, { notBefore: new Date(Date.now() + 24 * hour), notAfter: new Date(Date.now() + 48 * hour) })).certPem);
      expect(new Date(future.validFrom).getTime()).toBeGreaterThan(Date.now());
      const self = new X509Certificate((await issueCert(ca, { selfSigned: true })).certPem);
      expect(self.checkIssued(caX)).toBe(false);
      expect(self.verify(self.publicKey)).toBe(true);
      const ipOnly = new X509Certificate((await issueCert(ca, { dnsNames: [], ips: ['127.0.0.1'] })).certPem);
      expect(ipOnly.subjectAltName).toBe('IP Address:127.0.0.1');
      const chain = (await issueCert(ca, { intermediates: 4 })).certPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!.map((p) => new X509Certificate(p));
      expect(chain.length).toBe(5);
      for (let i = 0; i < 4; i++) expect(chain[i]!.checkIssued(chain[i + 1]!)).toBe(true);
      expect(chain[4]!.checkIssued(caX)).toBe(true);
    } finally {
      await ca.cleanup();
    }
  });
});
