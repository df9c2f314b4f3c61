// One JSON object per line on stdout: easy to read in `docker logs`, easy to grep in tests.
// Logging never takes the node down: a closed stdout pipe (EPIPE) only stops the log, and the
// same message repeated by a flood of failing requests is rate-limited (rateLimited()).
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function jsonLogger(nodeId: string, write: (line: string) => void = stdoutWriter()): Logger {
  const emit = (level: string, msg: string, fields?: LogFields) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, node: nodeId, msg, ...fields }) + "\n");
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
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
  return { info: gate("info"), warn: gate("warn"), error: gate("error") };
}
