// Envelopes of length-prefixed messages (a flags byte, a 4-byte big-endian length, the message):
// Connect streaming and gRPC frame messages this way. The lean paths write and read them here
// (the replica stream's two sides, gRPC unary), and rpc-handler.ts rewrites one in place.
import { Code, ConnectError } from "@connectrpc/connect";

export const ENVELOPE_HEADER_BYTES = 5;
export const FLAG_COMPRESSED = 0b01;
export const FLAG_END_STREAM = 0b10;
export const STREAM_CONTENT_TYPE = "application/connect+proto";

export function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, ENVELOPE_HEADER_BYTES);
  return out;
}

/** Fills in the envelope header of a message encoded after ENVELOPE_HEADER_BYTES reserved bytes. */
export function framed(flags: number, message: Buffer): Buffer {
  message[0] = flags;
  message.writeUInt32BE(message.byteLength - ENVELOPE_HEADER_BYTES, 1);
  return message;
}

/**
 * Splits a body into envelopes as its chunks arrive. The first error (an envelope over the read
 * limit, or one `deliver` refuses by calling fail()) ends the input: later chunks are ignored.
 */
export class EnvelopeReader {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  error: ConnectError | undefined;

  constructor(
    private readonly readMaxBytes: number,
    private readonly deliver: (flags: number, data: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.error) return;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.byteLength;
    while (!this.error && this.bufferedBytes >= ENVELOPE_HEADER_BYTES) {
      const head = this.buffered.length === 1 ? this.buffered[0]! : this.flatten();
      const flags = head[0]!;
      const length = head.readUInt32BE(1);
      if (length > this.readMaxBytes)
        return this.fail(new ConnectError(`message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted));
      if (this.bufferedBytes < ENVELOPE_HEADER_BYTES + length) return;
      const all = this.buffered.length === 1 ? this.buffered[0]! : this.flatten();
      const data = all.subarray(ENVELOPE_HEADER_BYTES, ENVELOPE_HEADER_BYTES + length);
      const rest = all.subarray(ENVELOPE_HEADER_BYTES + length);
      this.buffered = rest.byteLength > 0 ? [rest] : [];
      this.bufferedBytes = rest.byteLength;
      this.deliver(flags, data);
    }
  }

  /** Bytes received that do not yet make a whole envelope. */
  get partialBytes(): number {
    return this.bufferedBytes;
  }

  fail(error: ConnectError): void {
    this.error ??= error;
    this.buffered = [];
    this.bufferedBytes = 0;
  }

  private flatten(): Buffer {
    const all = Buffer.concat(this.buffered, this.bufferedBytes);
    this.buffered = [all];
    return all;
  }
}
