// Readers of the plain HTTP key API's sibling answers (300 Multiple Choices) for its tests: a
// strict multipart/mixed (RFC 2046) parser giving each part's headers and exact bytes, and the
// siblings of either kind of answer as (text, content type) pairs.

export interface Part {
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** The parts of `body`, whose Content-Type is `contentType` (multipart/mixed; boundary=...). Throws on anything malformed. */
export function parseMultipart(contentType: string | null, body: Buffer): Part[] {
  const match = /^multipart\/mixed; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})$/.exec(contentType ?? "");
  if (!match) throw new Error(`not a multipart/mixed content type: ${contentType}`);
  const delimiter = `--${match[1]}`;
  if (!body.subarray(0, delimiter.length + 2).equals(Buffer.from(`${delimiter}\r\n`))) throw new Error("the body does not open with the boundary");
  const close = Buffer.from(`\r\n${delimiter}--\r\n`);
  if (!body.subarray(body.length - close.length).equals(close)) throw new Error("the body does not end with the closing boundary");
  const inner = body.subarray(delimiter.length + 2, body.length - close.length);
  const parts: Part[] = [];
  const separator = Buffer.from(`\r\n${delimiter}\r\n`);
  let rest = inner;
  for (;;) {
    const at = rest.indexOf(separator);
    parts.push(parsePart(at === -1 ? rest : rest.subarray(0, at)));
    if (at === -1) return parts;
    rest = rest.subarray(at + separator.length);
  }
}

function parsePart(part: Buffer): Part {
  const end = part.indexOf("\r\n\r\n");
  if (end === -1) throw new Error("a part has no blank line after its headers");
  const headers: Record<string, string> = {};
  for (const line of part.subarray(0, end).toString("latin1").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`bad part header line: ${line}`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body: part.subarray(end + 4) };
}

/** The siblings of a 300 answer, multipart or JSON, as sorted [value as text, content type] pairs; the JSON answer's context too. */
export function siblingsOf(contentType: string | null, body: Buffer): { siblings: [string, string][]; context?: string } {
  if (contentType === "application/json") {
    const doc = JSON.parse(body.toString()) as { siblings: { value_base64: string; content_type: string }[]; context: string };
    const siblings = doc.siblings.map((s): [string, string] => [Buffer.from(s.value_base64, "base64").toString(), s.content_type]);
    return { siblings: siblings.sort(), context: doc.context };
  }
  const parts = parseMultipart(contentType, body).map((p): [string, string] => [p.body.toString(), p.headers["content-type"] ?? ""]);
  return { siblings: parts.sort() };
}
