#!/usr/bin/env node
// Entry point: `dynamo-node --node-id n1 ...` (see --help). Exit codes: 0 after a clean
// shutdown, 2 for invalid configuration, 1 when start-up fails. DYNAMO_EXIT_WITH_PARENT=1 (set
// by the tests and scripts/local-cluster.mjs) makes it stop when the process that started it dies.
import { ConfigError, helpText, parseConfig } from "./config.js";
import { jsonLogger, rateLimited, survivePipeErrors } from "./observability/log.js";
import { DynamoNode, StartupError } from "./node.js";
import { VERSION } from "./version.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText() + "\n");
    return;
  }
  if (argv.includes("--version")) {
    process.stdout.write(`dynamo-node ${VERSION}\n`);
    return;
  }
  let config;
  try {
    config = parseConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dynamo-node: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  survivePipeErrors();
  const log = rateLimited(jsonLogger(config.nodeId, undefined, config.logLevel));
  process.on("uncaughtException", (err) => {
    process.stderr.write(`dynamo-node: uncaught exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
  let node: DynamoNode;
  try {
    node = await DynamoNode.open(config, log);
    await node.start();
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`dynamo-node: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // A node that left the cluster (admin Leave) exits once it has stopped.
  void node.stopped.then(() => process.exit(0));
  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn("second signal: exiting now", { signal });
      process.exit(1);
    }
    log.info("signal received", { signal });
    node.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("shutdown failed", { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  if (process.env.DYNAMO_EXIT_WITH_PARENT === "1") exitWithParent(() => shutdown("parent exited"));
}

/**
 * For processes started by tests and scripts: stop cleanly once the parent is gone (killed
 * with SIGKILL, it cannot stop its children), instead of living on as an orphan holding ports
 * and CPU. Linux gives an orphan a new parent, so a changed ppid means the parent died.
 */
function exitWithParent(stop: () => void): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    stop();
  }, 1000);
  timer.unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`dynamo-node: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
