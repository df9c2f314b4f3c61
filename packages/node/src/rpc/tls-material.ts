// The node's TLS material: its certificate and key and the cluster CA, read from files and read
// again when they change (polled every 2 s: certificates are rotated without a restart). New
// connections, accepted or dialled, use the material as last loaded; a file that does not parse
// (half written, wrong key) keeps the previous material and logs why.
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import * as tls from "node:tls";
import type { TlsFiles } from "../config.js";
import type { Logger } from "../observability/log.js";

export const ALPN_PROTOCOLS = ["h2", "http/1.1"];

/** What a TLS client or server needs: PEM bytes of the certificate chain, the key, the CA. */
export interface TlsPem {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

export class TlsMaterial {
  private pem: TlsPem;
  private mtimes: string;
  private timer: NodeJS.Timeout | undefined;

  /** Reads the files now; throws with the reason when they do not make a usable certificate. */
  constructor(
    private readonly files: TlsFiles,
    private readonly log: Logger,
  ) {
    this.mtimes = this.currentMtimes();
    this.pem = readPem(files);
    checkLoads(this.pem, files);
  }

  /** The server side's options (certificate, key, the cluster CA for client certificates). */
  serverOptions(): tls.SecureContextOptions {
    return { cert: this.pem.cert, key: this.pem.key, ca: this.pem.ca, minVersion: "TLSv1.2" };
  }

  /** Options for the next outgoing connection to another node: our certificate, and only the cluster CA trusted. */
  clientOptions(): TlsPem {
    return this.pem;
  }

  /** Starts polling the files for changes; `onReload` runs after new material is loaded. */
  watch(onReload: () => void, intervalMs = 2_000): void {
    this.timer = setInterval(() => {
      if (this.reloadIfChanged()) onReload();
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reloads when a file's mtime or size changed; returns whether new material was loaded. */
  reloadIfChanged(): boolean {
    const mtimes = this.currentMtimes();
    if (mtimes === this.mtimes) return false;
    this.mtimes = mtimes;
    try {
      const pem = readPem(this.files);
      checkLoads(pem, this.files);
      this.pem = pem;
      this.log.info("TLS certificate, key or CA reloaded", { cert: this.files.certFile, subject: subjectOf(pem.cert) });
      return true;
    } catch (err) {
      this.log.warn("TLS files changed but do not load; keeping the previous ones", { error: (err as Error).message });
      return false;
    }
  }

  private currentMtimes(): string {
    return [this.files.certFile, this.files.keyFile, this.files.caFile]
      .map((file) => {
        try {
          const st = statSync(file);
          return `${st.mtimeMs}/${st.size}`;
        } catch {
          return "missing";
        }
      })
      .join(",");
  }
}

function readPem(files: TlsFiles): TlsPem {
  return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), ca: readFileSync(files.caFile) };
}

/** Throws with the reason when the certificate, key and CA do not make a usable TLS context. */
function checkLoads(pem: TlsPem, files: TlsFiles): void {
  try {
    tls.createSecureContext({ cert: pem.cert, key: pem.key, ca: pem.ca, minVersion: "TLSv1.2" });
  } catch (err) {
    throw new Error(`TLS: ${files.certFile} with ${files.keyFile} and CA ${files.caFile} do not load: ${(err as Error).message}`, { cause: err });
  }
}

function subjectOf(cert: Buffer): string {
  try {
    return new X509Certificate(cert).subject.replaceAll("\n", ", ");
  } catch {
    return "?";
  }
}

/** Whether the connection a request came on presented a client certificate the cluster CA signed. */
export function hasPeerCertificate(socket: unknown): boolean {
  return (socket as Partial<tls.TLSSocket> | null)?.authorized === true;
}
