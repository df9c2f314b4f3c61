// Container health probe: GET /readyz (ready for clients: started, stores writable, enough
// members up for the default R and W; a lone node of an N=3 cluster is not) on the port the node listens on (from DYNAMO_LISTEN, as
// the image configures it), exit 0 only on 200. Runs under node because the image has no shell
// or curl. Bounded by its own timeout so a wedged node reads as unhealthy, not as a hung probe.
const listen = process.env.DYNAMO_LISTEN || "127.0.0.1:7001";
const separator = listen.lastIndexOf(":");
const host = listen.slice(0, separator);
const port = listen.slice(separator + 1);
// A wildcard bind is probed over loopback; a specific address is probed where it is bound.
const probeHost = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "[::]" ? "[::1]" : host;

// With TLS on (DYNAMO_TLS_CA_FILE), the probe speaks https and trusts the cluster CA.
const caFile = process.env.DYNAMO_TLS_CA_FILE;
const { readFileSync } = await import("node:fs");
const client = caFile ? await import("node:https") : await import("node:http");

try {
  const { status, body } = await new Promise((resolve, reject) => {
    const req = client.get(
      { host: probeHost.replace(/^\[|\]$/g, ""), port: Number(port), path: "/readyz", timeout: 2500, ...(caFile ? { ca: readFileSync(caFile), servername: "localhost" } : {}) },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out after 2.5 s")));
    req.on("error", reject);
  });
  if (status !== 200) {
    console.error(`readyz answered ${status}: ${body.trim()}`);
    process.exit(1);
  }
} catch (error) {
  console.error(`readyz unreachable: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
