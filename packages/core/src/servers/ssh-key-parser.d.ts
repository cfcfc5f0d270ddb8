/**
 * ssh2's key parser module, whose `parseKey` is `ssh2.utils.parseKey` (ssh2
 * ships no types; @types/ssh2 types the re-export). CommonJS that Node cannot
 * name the exports of: import it as a default.
 */
declare module "ssh2/lib/protocol/keyParser.js" {
  const keyParser: { parseKey: typeof import("ssh2").utils.parseKey };
  export default keyParser;
}
