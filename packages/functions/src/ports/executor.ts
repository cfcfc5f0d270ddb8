import { Ssh2Executor } from "@hoist/core/servers/ssh";

export const ssh2Executor = () => new Ssh2Executor();
