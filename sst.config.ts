import type { SSTConfig } from "sst";
import { Stack } from "sst/constructs";
import { lambdaNodejs } from "./infra/esbuild.ts";
import { suppressSstCustomResourceHandler } from "./infra/nag.ts";
import { PRODUCTION_STAGE } from "./infra/stage.ts";
import { Api } from "./stacks/Api.ts";
import { Data } from "./stacks/Data.ts";
import { Jobs } from "./stacks/Jobs.ts";
import { Realtime } from "./stacks/Realtime.ts";
import { Schedules } from "./stacks/Schedules.ts";

export default {
  config(input) {
    return { name: "hoist", region: input.region ?? "us-east-1" };
  },
  stacks(app) {
    app.setDefaultFunctionProps({
      runtime: "nodejs22.x",
      architecture: "arm_64",
      // X-Ray needs `xray:Put*` on "*"; logs are enough for now.
      tracing: "disabled",
      nodejs: lambdaNodejs,
      environment: { HOIST_STAGE: app.stage },
    });
    // Dev and preview stages leave nothing behind on `sst remove`; prod keeps
    // what its constructs retain (table, key).
    if (app.stage !== PRODUCTION_STAGE) app.setDefaultRemovalPolicy("destroy");

    app.stack(Data).stack(Realtime).stack(Schedules).stack(Jobs).stack(Api);

    for (const stack of app.node.children) {
      if (stack instanceof Stack) suppressSstCustomResourceHandler(stack.customResourceHandler);
    }
  },
} satisfies SSTConfig;
