import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

/** What `hoist login` stores: where Hoist is and how to sign in to it. */
export interface StoredConfig {
  url?: string;
  /** Where the WebSocket is, when it is not `/ws` on the URL's origin (learnt at login). */
  wsUrl?: string;
  username?: string;
  /** A password sign-in: the access token and its refresh token (rotated on every refresh). */
  accessToken?: string;
  refreshToken?: string;
  /** An API token (`hst_…`): used as the bearer as it is, never refreshed. */
  apiToken?: string;
}

/** `$XDG_CONFIG_HOME/hoist/config.json`, by default `~/.config/hoist/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "hoist", "config.json");
}

export async function readConfig(path = configPath()): Promise<StoredConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
    const out: StoredConfig = {};
    for (const key of ["url", "wsUrl", "username", "accessToken", "refreshToken", "apiToken"] as const) {
      const value = (parsed as Record<string, unknown>)[key];
      if (typeof value === "string" && value) out[key] = value;
    }
    return out;
  } catch {
    throw new Error(`${path} is not a Hoist config file; remove it and run \`hoist login\` again`);
  }
}

/** Written whole, readable by the user alone (file 0600, directory 0700). */
export async function writeConfig(config: StoredConfig, path = configPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function removeConfig(path = configPath()): Promise<void> {
  await rm(path, { force: true });
}
