import { GetParametersCommand } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { loadSecrets, readSecrets } from "./secrets.ts";

/** An SSM stand-in holding parameters by path; records the paths asked for. */
function ssm(parameters: Record<string, string>) {
  const asked: string[][] = [];
  return {
    asked,
    send: async (command: unknown) => {
      const input = (command as GetParametersCommand).input;
      expect(command).toBeInstanceOf(GetParametersCommand);
      expect(input.WithDecryption).toBe(true);
      asked.push(input.Names ?? []);
      return {
        Parameters: (input.Names ?? [])
          .filter((n) => n in parameters)
          .map((Name) => ({ Name, Value: parameters[Name] })),
      };
    },
  };
}

const env = { SST_APP: "hoist", SST_STAGE: "prod", SST_SSM_PREFIX: "/sst/hoist/prod/" };

describe("loadSecrets", () => {
  it("uses prefetched values, fetches marked ones from the stage path, then the fallback", async () => {
    const client = ssm({
      "/sst/hoist/prod/Secret/A/value": "from-stage",
      "/sst/hoist/.fallback/Secret/B/value": "from-fallback",
    });
    const values = await loadSecrets(
      ["A", "B", "C", "UNBOUND"],
      {
        ...env,
        SST_Secret_value_A: "__FETCH_FROM_SSM__",
        SST_Secret_value_B: "__FETCH_FROM_SSM__",
        SST_Secret_value_C: "inline",
      },
      client as never,
    );
    expect(values).toEqual({ A: "from-stage", B: "from-fallback", C: "inline", UNBOUND: undefined });
    expect(client.asked).toEqual([
      ["/sst/hoist/prod/Secret/A/value", "/sst/hoist/prod/Secret/B/value"],
      ["/sst/hoist/.fallback/Secret/B/value"],
    ]);
  });

  it("names a bound secret that was never set", async () => {
    await expect(
      loadSecrets(
        ["JWT_PRIVATE_KEY"],
        { ...env, SST_Secret_value_JWT_PRIVATE_KEY: "__FETCH_FROM_SSM__" },
        ssm({}) as never,
      ),
    ).rejects.toThrow("JWT_PRIVATE_KEY");
  });

  it("asks SSM nothing when nothing is bound", async () => {
    const client = ssm({});
    expect(await loadSecrets(["X"], env, client as never)).toEqual({ X: undefined });
    expect(client.asked).toEqual([]);
  });
});

describe("readSecrets", () => {
  it("reads from the stage path, then the fallback, whatever the environment holds", async () => {
    const client = ssm({ "/sst/hoist/prod/Secret/A/value": "a", "/sst/hoist/.fallback/Secret/B/value": "b" });
    const values = await readSecrets(["A", "B"], { ...env, SST_Secret_value_A: "ignored" }, client as never);
    expect(values).toEqual({ A: "a", B: "b" });
    expect(client.asked).toEqual([
      ["/sst/hoist/prod/Secret/A/value", "/sst/hoist/prod/Secret/B/value"],
      ["/sst/hoist/.fallback/Secret/B/value"],
    ]);
  });

  it("leaves an optional secret nobody set undefined, and names a required one", async () => {
    const client = ssm({});
    const values = await readSecrets(["OIDC_CLIENT_SECRET"], env, client as never, {
      optional: ["OIDC_CLIENT_SECRET"],
    });
    expect(values).toEqual({ OIDC_CLIENT_SECRET: undefined });
    expect(client.asked).toHaveLength(2);
    await expect(readSecrets(["OIDC_ISSUER", "X"], env, ssm({}) as never, { optional: ["X"] })).rejects.toThrow(
      /stage prod: OIDC_ISSUER \(/,
    );
  });
});
