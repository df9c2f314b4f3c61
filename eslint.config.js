// Lint rules shared by every package: typescript-eslint's recommended set, without type information
// so that lint stays fast; `tsc --noEmit` in each package's lint script does the type checking.
// The layering rules below keep the architecture as docs/architecture.md draws it: the protocol
// packages are pure (no network, disk or RPC), and the node's request logic knows replicas only
// through its seam (requests/replicas.ts), never the RPC code that reaches them.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** Modules that do I/O or speak the wire: none of them belongs in pure protocol code. */
const IO_AND_WIRE = [
  { group: ["node:net", "node:http", "node:http2", "node:https", "node:fs", "node:fs/*", "node:dgram", "node:child_process"], message: "protocol packages are pure: no network or disk I/O (put it at the edge, behind an interface)" },
  { group: ["net", "http", "http2", "https", "fs", "fs/*", "dgram", "child_process"], message: "protocol packages are pure: no network or disk I/O (put it at the edge, behind an interface)" },
  { group: ["@connectrpc/*", "@dynamo-ts/proto", "@dynamo-ts/proto/*"], message: "protocol packages are pure: no RPC framework or protobuf types" },
];

export default tseslint.config(
  { ignores: ["**/dist/**", "**/gen/**", "**/node_modules/**", "data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    // Pure protocol packages (tests may use what they like).
    files: ["packages/{ring,vclock,merkle,gossip}/src/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: IO_AND_WIRE }] },
  },
  {
    // The node's request logic: quorums, versions, limits. Replica I/O only through the seam.
    files: ["packages/node/src/requests/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["**/rpc/*", "**/rpc/**"], message: "request logic does not import RPC code: reach replicas through requests/replicas.ts" },
            { group: ["@connectrpc/connect-node", "@dynamo-ts/proto", "node:net", "node:http", "node:http2", "node:fs", "node:fs/*"], message: "request logic does no I/O and knows no wire format" },
          ],
        },
      ],
    },
  },
);
