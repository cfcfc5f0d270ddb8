import { createApp } from "@hoist/core/http/app";
import { handle } from "hono/aws-lambda";
import { awsDeps } from "./aws-deps.ts";

export const handler = handle(createApp(await awsDeps()));
