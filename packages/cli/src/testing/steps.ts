import type { Harness } from "./harness.ts";

/** The CLI arguments that add the harness's loopback SSH target as server `name`. */
export const addServer = (h: Harness, name = "box") => [
  "servers",
  "add",
  name,
  "--address",
  h.ssh.host,
  "--port",
  String(h.ssh.port),
  "--user",
  h.ssh.username,
  "--key-file",
  h.keyFile,
];

/** The CLI arguments that create app `name` in `project` on `server`, in `path`, deploying with `command`. */
export const createAppSteps = (a: {
  name: string;
  project: string;
  path: string;
  command: string;
  server?: string;
}) => [
  "apps",
  "create",
  a.name,
  "--project",
  a.project,
  "--server",
  a.server ?? "box",
  "--path",
  a.path,
  "--deploy-command",
  a.command,
];
