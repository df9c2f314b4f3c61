// Small state files (identity, membership, ring status, incarnation, transfer progress) are
// written to a temporary file and renamed over the old one: a crash leaves one or the other,
// never a torn file.
import { renameSync, writeFileSync } from "node:fs";

export function writeFileAtomically(file: string, text: string, options: { readonly flush?: boolean } = {}): void {
  writeFileSync(`${file}.tmp`, text, options);
  renameSync(`${file}.tmp`, file);
}
