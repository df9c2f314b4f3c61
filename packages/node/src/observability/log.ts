// One JSON object per line on stdout (pino): easy to read in `docker logs`, easy to grep in
// tests. Every line a client request causes carries that request's id (requestId: the
// client's x-request-id when it sent a sane one, else made up when the first line is written),
// found through AsyncLocalStorage so no call site passes it along. Secrets never reach a line:
// the fields that could hold one are redacted by name. Logging never takes the node down: a
// closed stdout pipe (EPIPE) only stops the log, and the same message repeated by a flood of
// failing requests is rate-limited (rateLimited()).
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { pino } from "pino";

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names whose values are never written (any depth up to two below the line). */
const SECRET_FIELDS = ["authorization", "x-dynamo-cluster-secret", "clusterSecret", "cluster_secret", "secret", "token", "password"];
const REDACTED_PATHS = SECRET_FIELDS.flatMap((f) => [`["${f}"]`, `*["${f}"]`, `*.*["${f}"]`]);

/** The request a piece of work belongs to, for the log lines it causes. */
interface RequestScope {
  id: string | undefined;
}
const requestScope = new AsyncLocalStorage<RequestScope>();

/** What an incoming x-request-id may be to be used as is: short, printable, no separators to forge fields with. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Runs `work` (a request's handling) so that the lines it causes carry a request id. */
export function withRequestScope<T>(incomingId: string | string[] | undefined, work: () => T): T {
  const id = typeof incomingId === "string" && REQUEST_ID.test(incomingId) ? incomingId : undefined;
  return requestScope.run({ id }, work);
}

/** The current request's id, made up on first use when the client sent none. */
export function currentRequestId(): string | undefined {
  const scope = requestScope.getStore();
  if (!scope) return undefined;
  scope.id ??= randomBytes(8).toString("hex");
  return scope.id;
}

export function jsonLogger(nodeId: string, write: (line: string) => void = stdoutWriter(), level: LogLevel = "info"): Logger {
  const logger = pino(
    {
      level,
      base: { node: nodeId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      mixin: () => {
        const id = requestScope.getStore() ? currentRequestId() : undefined;
        return id === undefined ? {} : { requestId: id };
      },
    },
    { write },
  );
  const emit = (method: "debug" | "info" | "warn" | "error") => (msg: string, fields?: LogFields) => {
    if (fields) logger[method](fields, msg);
    else logger[method](msg);
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

let stdoutBroken = false;

/** Writes to stdout until it fails (a reader that went away); then drops lines. */
function stdoutWriter(): (line: string) => void {
  return (line) => {
    if (stdoutBroken) return;
    try {
      process.stdout.write(line);
    } catch {
      stdoutBroken = true;
    }
  };
}

/**
 * A write to a pipe nobody reads any more fails asynchronously with EPIPE, as an 'error' event on
 * the stream: unhandled, it would end the process. The node keeps serving without its log.
 */
export function survivePipeErrors(): void {
  process.stdout.on("error", () => {
    stdoutBroken = true;
  });
  process.stderr.on("error", () => {});
}

export interface RateLimit {
  /** Lines of one message allowed per window. */
  readonly burst: number;
  readonly windowMs: number;
}

export const DEFAULT_LOG_RATE_LIMIT: RateLimit = { burst: 10, windowMs: 10_000 };

/**
 * At most `burst` lines of each message (the `msg` text, whatever its fields) per window; the
 * first line of a later window says how many were dropped. Memory is bounded by the number of
 * distinct message texts, which are constants in the code.
 */
export function rateLimited(log: Logger, limit: RateLimit = DEFAULT_LOG_RATE_LIMIT, now: () => number = Date.now): Logger {
  const windows = new Map<string, { start: number; lines: number; suppressed: number }>();
  const gate = (level: keyof Logger) => (msg: string, fields?: LogFields) => {
    const t = now();
    let w = windows.get(msg);
    if (!w || t - w.start >= limit.windowMs) {
      const suppressed = w?.suppressed ?? 0;
      w = { start: t, lines: 0, suppressed: 0 };
      windows.set(msg, w);
      if (suppressed > 0) fields = { ...fields, suppressedBefore: suppressed };
    }
    if (w.lines >= limit.burst) {
      w.suppressed++;
      return;
    }
    w.lines++;
    if (w.lines === limit.burst) fields = { ...fields, rateLimited: `further "${msg}" lines are dropped for the rest of ${limit.windowMs} ms` };
    log[level](msg, fields);
  };
  return { debug: gate("debug"), info: gate("info"), warn: gate("warn"), error: gate("error") };
}
