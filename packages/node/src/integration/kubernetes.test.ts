// The Kubernetes manifests in k8s/, rendered offline by Debian's `kubectl kustomize` (no cluster
// is contacted: they are not run against a live cluster here). Checks what would break a real
// deployment quietly: the container's environment is parsed by the node's own config parser
// (a misspelt DYNAMO_* variable would be ignored by the node, so every one must be a real option),
// the probes name the container's port and the node's health paths, the Services and the
// PodDisruptionBudget select the StatefulSet's pods, and the secret comes from a Secret.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { helpText, parseConfig } from "../config.js";

const K8S_DIR = fileURLToPath(new URL("../../../../k8s", import.meta.url));
const INSTALL = "apt-get install -y kubectl";

async function render(): Promise<{ manifests: K8sObject[] } | { missing: string }> {
  try {
    const { stdout } = await promisify(execFile)("kubectl", ["kustomize", K8S_DIR], { timeout: 30_000 });
    return { manifests: parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject) };
  } catch (err) {
    if ((err as { code?: unknown }).code === "ENOENT") return { missing: `kubectl not found; install it: ${INSTALL}` };
    throw err;
  }
}

// The parts of the objects the checks read.
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet: { path: string; port: string };
}
interface Container {
  name: string;
  env: EnvVar[];
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: Probe;
  readinessProbe: Probe;
  startupProbe?: Probe;
  volumeMounts: Array<{ name: string; mountPath: string }>;
  securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean };
}
interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    clusterIP?: string;
    publishNotReadyAddresses?: boolean;
    ports?: Array<{ name: string; port: number; targetPort: string }>;
    serviceName?: string;
    replicas?: number;
    maxUnavailable?: number;
    template?: { metadata: { labels: Record<string, string> }; spec: { containers: Container[]; securityContext: { runAsNonRoot: boolean } } };
    volumeClaimTemplates?: Array<{ metadata: { name: string } }>;
  };
}

const SUITE = "the Kubernetes manifests (k8s/, kubectl kustomize)";
const rendered = await render();
if ("missing" in rendered) {
  if (process.env.CI === "true") throw new Error(`integration suite "${SUITE}" cannot run on CI: ${rendered.missing}`);
  console.warn(`[integration] skipping "${SUITE}": ${rendered.missing}`);
}

describe.skipIf("missing" in rendered)(SUITE, () => {
  const objects = "manifests" in rendered ? rendered.manifests : [];
  const one = (kind: string, name?: string) => {
    const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
    expect(found.map((o) => `${o.kind}/${o.metadata.name}`)).toHaveLength(1);
    return found[0]!;
  };
  const statefulSet = () => one("StatefulSet");
  const container = () => statefulSet().spec.template!.spec.containers[0]!;
  const podLabels = () => statefulSet().spec.template!.metadata.labels;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels()[k] === v);

  it("render a StatefulSet, a headless Service for the seeds, a client Service and a PodDisruptionBudget", () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(["PodDisruptionBudget", "Service", "Service", "StatefulSet"]);
    // No Secret is shipped: a published default would be the same secret in every cluster.
    expect(objects.filter((o) => o.kind === "Secret")).toEqual([]);
  });

  it("give every pod a node id, an advertised address and seeds the node's own config accepts", () => {
    const known = new Set([...helpText().matchAll(/\[(DYNAMO_[A-Z0-9_]+)\]/g)].map((m) => m[1]!));
    const env: Record<string, string> = {};
    const fields: Record<string, string> = { "metadata.name": "dynamo-1", "metadata.namespace": "kv" };
    const expand = (value: string) => value.replaceAll(/\$\(([A-Z_]+)\)/g, (_, name: string) => env[name] ?? `$(${name})`);
    for (const v of container().env) {
      if (v.name.startsWith("DYNAMO_")) expect(known, `${v.name} is not an option of dynamo-node`).toContain(v.name);
      if (v.value !== undefined) env[v.name] = expand(v.value);
      else if (v.valueFrom?.fieldRef) env[v.name] = fields[v.valueFrom.fieldRef.fieldPath]!;
      else if (v.valueFrom?.secretKeyRef) env[v.name] = randomBytes(32).toString("hex");
    }
    expect(container().env.find((v) => v.name === "DYNAMO_CLUSTER_SECRET")?.valueFrom?.secretKeyRef).toEqual({ name: "dynamo-cluster-secret", key: "secret" });

    const config = parseConfig([], env);
    const peers = statefulSet().spec.serviceName!;
    expect(config.nodeId).toBe("dynamo-1");
    expect(config.advertise).toBe(`dynamo-1.${peers}.kv.svc.cluster.local:7001`);
    expect(config.seeds).toEqual([0, 1, 2].map((i) => `dynamo-${i}.${peers}.kv.svc.cluster.local:7001`));
    expect(config.seeds).toHaveLength(statefulSet().spec.replicas!);
    expect(config.dataDir).toBe(container().volumeMounts.find((m) => m.name === "data")?.mountPath);
    expect(statefulSet().spec.volumeClaimTemplates!.map((t) => t.metadata.name)).toContain("data");
    expect(config.listen).toBe(`0.0.0.0:${container().ports.find((p) => p.name === "rpc")?.containerPort}`);
    expect([config.n, config.r, config.w]).toEqual([3, 2, 2]);
  });

  it("probe liveness and readiness separately, on the node's port", () => {
    const c = container();
    expect(c.livenessProbe.httpGet).toEqual({ path: "/livez", port: "rpc" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "rpc" });
    expect(c.startupProbe?.httpGet).toEqual({ path: "/livez", port: "rpc" });
  });

  it("select the StatefulSet's pods from both Services and the PodDisruptionBudget", () => {
    const headless = one("Service", statefulSet().spec.serviceName);
    expect(headless.spec.clusterIP).toBe("None");
    // A starting node must reach its seeds before any node is ready.
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const client = objects.find((o) => o.kind === "Service" && o.metadata.name !== headless.metadata.name)!;
    for (const service of [headless, client]) {
      expect(selects(service.spec.selector!)).toBe(true);
      expect(service.spec.ports).toEqual([expect.objectContaining({ port: 7001, targetPort: "rpc" })]);
    }
    expect(selects(statefulSet().spec.selector!.matchLabels!)).toBe(true);
    const budget = one("PodDisruptionBudget");
    expect(selects(budget.spec.selector!.matchLabels!)).toBe(true);
    // With N=3 and R=W=2, one replica of a key may be down at a time.
    expect(budget.spec.maxUnavailable).toBe(1);
  });

  it("run as a non-root user without privilege escalation, on a read-only root filesystem", () => {
    expect(statefulSet().spec.template!.spec.securityContext.runAsNonRoot).toBe(true);
    expect(container().securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
  });
});
