/**
 * deploy/k8s/*.yaml against the Kubernetes schemas (kubernetes-models, offline): every object
 * validates, no field is unknown to the schema (a typo like "readinesProbe" would otherwise be
 * dropped silently by the API server), the dohd containers are locked down as the README says,
 * and the dohd configuration inside each ConfigMap passes dohd's own validation.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { validateConfig } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';

const DIR = fileURLToPath(new URL('../../../deploy/k8s/', import.meta.url));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
interface ModelClass {
  new (data: Obj): { validate(): void; toJSON(): Obj };
  prototype: { validate(): void };
}
const MODELS: Record<string, ModelClass> = {
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'apps/v1/DaemonSet': DaemonSet as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'v1/Namespace': Namespace as unknown as ModelClass,
};

/**
 * Validates against the schema and lists the fields the schema does not know. The compiled
 * validators read every property the schema defines; a key they never read is not in it.
 */
function validate(doc: Obj): string[] {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) throw new Error(`no schema here for ${doc.apiVersion} ${doc.kind}: add it to MODELS`);
  const seen: { path: string; obj: Obj; read: Set<PropertyKey> }[] = [];
  const track = (v: unknown, path: string): unknown => {
    if (v === null || typeof v !== 'object') return v;
    const read = new Set<PropertyKey>();
    const copy = Array.isArray(v) ? v.map((x, i) => track(x, `${path}[${i}]`)) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, track(x, `${path}.${k}`)]));
    seen.push({ path, obj: v as Obj, read });
    return new Proxy(copy as Obj, {
      get(t, k, r) {
        read.add(k);
        return Reflect.get(t, k, r);
      },
    });
  };
  const model = new Model(doc);
  model.validate(); // throws with the schema path of the first problem
  Model.prototype.validate.call(track(model.toJSON(), '') as never);
  const unknown = seen.flatMap((s) => (Array.isArray(s.obj) ? [] : Object.keys(s.obj).filter((k) => !s.read.has(k)).map((k) => `${s.path}.${k}`)));
  // Inside an unknown field nothing is read: name only the outermost one.
  return unknown.filter((p) => !unknown.some((q) => q !== p && (p.startsWith(`${q}.`) || p.startsWith(`${q}[`))));
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const docs: { file: string; doc: Obj }[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return { file, doc: d.toJS() as Obj };
  }),
);
const workloads = docs.filter((d) => d.doc.kind === 'Deployment' || d.doc.kind === 'DaemonSet');
const dohdContainers = workloads.flatMap(({ file, doc }) =>
  [...(doc.spec.template.spec.initContainers ?? []), ...doc.spec.template.spec.containers]
    .filter((c: Obj) => c.name === 'dohd')
    .map((c: Obj) => ({ file, pod: doc.spec.template.spec as Obj, c })),
);


describe('deploy/k8s manifests', () => {
  it('has the sidecar Deployment, the node-local DaemonSet with its Service, and ConfigMaps', () => {
    expect(files.sort()).toEqual(['configmap.yaml', 'daemonset.yaml', 'sidecar-deployment.yaml']);
    expect(docs.map((d) => `${d.file}:${d.doc.kind}`).sort()).toEqual([
      'configmap.yaml:ConfigMap',
      'daemonset.yaml:ConfigMap',
      'daemonset.yaml:DaemonSet',
      'daemonset.yaml:Namespace',
      'daemonset.yaml:Service',
      'sidecar-deployment.yaml:Deployment',
    ]);
  });

  for (const { file, doc } of docs) {
    it(`${file}: ${doc.kind} ${doc.metadata?.name} validates against the Kubernetes schema, with no unknown field`, () => {
      expect(validate(doc)).toEqual([]);
    });
  }

  it('the schema check catches a wrong type and an unknown field', () => {
    const d = structuredClone(workloads.find((w) => w.doc.kind === 'Deployment')!.doc);
    d.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: '/readyz', port: 9153 } };
    expect(validate(d)).toEqual(['.spec.template.spec.containers[0].readinesProbe']);
    d.spec.replicas = 'two';
    expect(() => validate(d)).toThrow(/replicas must be integer/);
  });

  it('dohd runs as non-root with only NET_BIND_SERVICE, a read-only root, limits and probes', () => {
    expect(dohdContainers.map((x) => x.file).sort()).toEqual(['daemonset.yaml', 'sidecar-deployment.yaml']);
    for (const { c, pod } of dohdContainers) {
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
      });
      expect(c.securityContext.runAsUser).toBeGreaterThan(0);
      expect(c.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c.resources.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(c.ports.find((p: Obj) => p.name === 'metrics').containerPort).toBe(9153);
      // Binding port 53 as a non-root user, without file capabilities.
      expect(pod.securityContext.sysctls).toContainEqual({ name: 'net.ipv4.ip_unprivileged_port_start', value: '53' });
      // The mounted ConfigMap exists in the same file set.
      const vol = pod.volumes.find((v: Obj) => v.name === c.volumeMounts.find((m: Obj) => m.mountPath === '/etc/dohd').name);
      expect(docs.some((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === vol.configMap.name)).toBe(true);
      expect(c.args).toEqual(['run', '--config', '/etc/dohd/dohd.yaml']);
    }
  });

  it('the sidecar pod resolves through dohd on 127.0.0.1 with the cluster search list and ndots 5', () => {
    const { pod, c } = dohdContainers.find((x) => x.file === 'sidecar-deployment.yaml')!;
    expect(pod.dnsPolicy).toBe('None');
    expect(pod.dnsConfig.nameservers).toEqual(['127.0.0.1']);
    expect(pod.dnsConfig.searches).toEqual(['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    expect(pod.dnsConfig.options).toContainEqual({ name: 'ndots', value: '5' });
    expect(c.restartPolicy).toBe('Always'); // a native sidecar: up before the app, down after it
  });

  it('the node-local Service keeps traffic on the node and targets the DaemonSet', () => {
    const svc = docs.find((d) => d.doc.kind === 'Service')!.doc;
    const ds = docs.find((d) => d.doc.kind === 'DaemonSet')!.doc;
    expect(svc.spec.internalTrafficPolicy).toBe('Local');
    expect(svc.spec.selector).toEqual(ds.spec.template.metadata.labels);
    expect(svc.spec.ports.map((p: Obj) => `${p.port}/${p.protocol}`)).toEqual(['53/UDP', '53/TCP']);
  });

  const configMaps = docs.filter((d) => d.doc.kind === 'ConfigMap');
  for (const { file, doc } of configMaps) {
    const raw = () => parseAllDocuments(doc.data['dohd.yaml'] as string)[0]!.toJS() as Obj;

    it(`${file}: the dohd configuration listens where the probes and the pod DNS expect it`, () => {
      const cfg = raw();
      expect(cfg.admin.listen).toBe('0.0.0.0:9153');
      expect(cfg.listen).toEqual([file === 'configmap.yaml' ? '127.0.0.1:53' : '0.0.0.0:53']);
      expect(cfg.forward['cluster.local']).toBe('cluster-dns');
      expect(cfg.forward['in-addr.arpa']).toBe('cluster-dns');
      expect(cfg.groups['cluster-dns'].upstreams).toEqual([{ address: '10.96.0.10:53' }]);
    });

    it(`${file}: the dohd configuration, forwarding rules included, passes dohd's validation`, () => {
      const c = validateConfig(raw());
      expect(c.upstreams.map((u) => new URL(u.url).hostname)).toEqual(['cloudflare-dns.com', 'dns.google']);
      expect(c.admin).toEqual({ listen: '0.0.0.0:9153' });
      expect(c.forward).toEqual({ 'cluster.local': 'cluster-dns', 'in-addr.arpa': 'cluster-dns', 'ip6.arpa': 'cluster-dns' });
      expect(c.groups['cluster-dns']!.strategy).toBe('failover');
    });
  }
});
