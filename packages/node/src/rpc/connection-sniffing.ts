// Byte-level helpers of the listener: telling HTTP/2 from HTTP/1.1 by a connection's first
// bytes, and the frames that refuse an HTTP/2 connection without an HTTP/2 session.
import * as http2 from "node:http2";
import type * as net from "node:net";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Calls `decide` once the first bytes of `socket` can only be one of the two protocols, with
 * whether it is HTTP/2 and the bytes read so far (no longer flowing to any listener).
 */
export function detectProtocol(socket: net.Socket, decide: (isH2: boolean, head: Buffer) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, H2_PREFACE.length);
    const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    // Decide once the bytes seen so far can only be one of the two.
    if (isH2 && head.length < H2_PREFACE.length) return;
    socket.off("data", onData);
    decide(isH2, head);
  };
  socket.on("data", onData);
}

/** A server SETTINGS frame (no streams allowed) and a GOAWAY ENHANCE_YOUR_CALM with `message`. */
export function h2Refusal(message: string): Buffer {
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(0x3, 0); // SETTINGS_MAX_CONCURRENT_STREAMS
  settings.writeUInt32BE(0, 2);
  const debug = Buffer.from(message);
  const goaway = Buffer.alloc(8 + debug.length);
  goaway.writeUInt32BE(0, 0); // last stream id: none was processed, every request may be retried
  goaway.writeUInt32BE(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 4);
  debug.copy(goaway, 8);
  return Buffer.concat([h2Frame(0x4, settings), h2Frame(0x7, goaway)]);
}

function h2Frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = 0; // flags
  header.writeUInt32BE(0, 5); // stream 0: the connection
  return Buffer.concat([header, payload]);
}
