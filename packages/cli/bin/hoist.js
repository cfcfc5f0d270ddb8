#!/usr/bin/env node
// The `hoist` command: src/main.ts run through tsx (a root devDependency) in this process.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
const code = await main(process.argv);
// Open sockets, timers and stdin are not waited for: the command is done once its output is written.
process.stdout.write("", () => process.exit(code));
