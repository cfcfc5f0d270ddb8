import { loadConfig } from "@hoist/core/config";
import { Ssh2Executor } from "@hoist/core/servers/ssh";

/**
 * Built on first use, from the same environment `awsDeps` reads its config
 * from (the SSH settings need no secrets): on AWS the deny list then holds
 * loopback and the private ranges too.
 */
export const ssh2Executor = () => new Ssh2Executor({ networks: loadConfig().ssh });
