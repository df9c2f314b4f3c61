import { MAX_PIGGYBACK_LIMIT } from "./config.js";
import { MEMBER_STATES, RING_STATUSES } from "./types.js";

/** Longest member id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 256;
/** Longest address, in UTF-8 bytes. */
export const MAX_ADDRESS_BYTES = 512;
/** Most members a sync (full-state) message may carry. */
export const MAX_SYNC_MEMBERS = 16_384;
/** Largest sequence number (they are uint32 and wrap). */
export const MAX_SEQ = 0xffff_ffff;

const utf8 = new TextEncoder();

function utf8Length(s: string): number {
  // Fast path for ASCII, which is what ids and addresses almost always are.
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  return ascii ? s.length : utf8.encode(s).length;
}

function stringProblem(value: unknown, what: string, maxBytes: number): string | undefined {
  if (typeof value !== "string") return `${what} must be a string`;
  if (value.length === 0) return `${what} must not be empty`;
  if (value.length > maxBytes) return `${what} is longer than ${maxBytes} bytes`;
  if (!value.isWellFormed()) return `${what} is not well-formed Unicode`;
  if (utf8Length(value) > maxBytes) return `${what} is longer than ${maxBytes} bytes`;
  return undefined;
}

export function idProblem(value: unknown, what = "id"): string | undefined {
  return stringProblem(value, what, MAX_ID_BYTES);
}

export function addressProblem(value: unknown, what = "address"): string | undefined {
  return stringProblem(value, what, MAX_ADDRESS_BYTES);
}

export function incarnationProblem(value: unknown, what = "incarnation"): string | undefined {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    return `${what} must be a non-negative safe integer`;
  }
  return undefined;
}

function ringProblem(value: Record<string, unknown>, what: string): string | undefined {
  if (!RING_STATUSES.includes(value["ringStatus"] as never)) return `${what}.ringStatus is not a ring status`;
  return incarnationProblem(value["ringVersion"], `${what}.ringVersion`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function updateProblem(value: unknown, index: number): string | undefined {
  if (!isRecord(value)) return `updates[${index}] must be an object`;
  return (
    idProblem(value["id"], `updates[${index}].id`) ??
    addressProblem(value["address"], `updates[${index}].address`) ??
    (MEMBER_STATES.includes(value["state"] as never) ? undefined : `updates[${index}].state is not a member state`) ??
    incarnationProblem(value["incarnation"], `updates[${index}].incarnation`) ??
    ringProblem(value, `updates[${index}]`)
  );
}

/**
 * Structural validation of a message object (the same rules the codec enforces), so that
 * Swim.receive can ignore malformed objects instead of throwing. Returns a reason, or undefined.
 */
export function messageProblem(m: unknown): string | undefined {
  if (!isRecord(m)) return "message must be an object";
  const type = m["type"];
  if (type !== "ping" && type !== "ack" && type !== "ping-req" && type !== "sync-request" && type !== "sync-response") {
    return `unknown message type ${JSON.stringify(String(type))}`;
  }
  const seq = m["seq"];
  if (typeof seq !== "number" || !Number.isInteger(seq) || seq < 0 || seq > MAX_SEQ) {
    return "seq must be a uint32";
  }
  const from = m["from"];
  if (!isRecord(from)) return "from must be an object";
  const fromProblem =
    idProblem(from["id"], "from.id") ??
    addressProblem(from["address"], "from.address") ??
    incarnationProblem(from["incarnation"], "from.incarnation") ??
    ringProblem(from, "from");
  if (fromProblem !== undefined) return fromProblem;
  if (type === "ping") {
    const p = idProblem(m["targetId"], "targetId");
    if (p !== undefined) return p;
  }
  if (type === "ping-req") {
    const target = m["target"];
    if (!isRecord(target)) return "target must be an object";
    const p = idProblem(target["id"], "target.id") ?? addressProblem(target["address"], "target.address");
    if (p !== undefined) return p;
  }
  const updates = m["updates"];
  if (!Array.isArray(updates)) return "updates must be an array";
  const max = type === "sync-request" || type === "sync-response" ? MAX_SYNC_MEMBERS : MAX_PIGGYBACK_LIMIT;
  if (updates.length > max) return `too many updates (${updates.length} > ${max})`;
  for (let i = 0; i < updates.length; i++) {
    const p = updateProblem(updates[i], i);
    if (p !== undefined) return p;
  }
  return undefined;
}
