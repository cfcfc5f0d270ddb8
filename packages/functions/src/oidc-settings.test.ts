import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { generateKeySetJson } from "@hoist/core/auth/keys";
import { testTable } from "@hoist/core/testing/dynamo";
import { TestOidcProvider } from "@hoist/core/testing/oidc-provider";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { awsDeps } from "./aws-deps.ts";
import { httpEvent } from "./testing/http-event.ts";

/**
 * On a stage SST deployed, the http function's secrets are prefetched into its environment and OpenID
 * Connect's are read from SSM on first use (aws-deps.ts): here through the real SDK, against a loopback
 * SSM that records what it is asked and answers what `parameters` holds (or refuses, when `refuse` is set).
 */
const parameters = new Map<string, string>();
const asked: string[][] = [];
let refuse = false;
let ssm: Server;
let op: TestOidcProvider;

async function fakeSsm(): Promise<Server> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c;
    });
    req.on("end", () => {
      const names = (JSON.parse(body) as { Names: string[] }).Names;
      asked.push(names);
      res.setHeader("content-type", "application/x-amz-json-1.1");
      if (refuse) {
        res.statusCode = 400;
        res.end(
          JSON.stringify({ __type: "AccessDeniedException", message: "not authorized to perform ssm:GetParameters" }),
        );
        return;
      }
      const found = names.filter((n) => parameters.has(n));
      res.end(
        JSON.stringify({
          Parameters: found.map((Name) => ({ Name, Value: parameters.get(Name), Type: "SecureString" })),
          InvalidParameters: names.filter((n) => !parameters.has(n)),
        }),
      );
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return server;
}

const stagePath = (name: string) => `/sst/hoist/test/Secret/${name}/value`;
function setOidc(settings: Record<string, string> | undefined) {
  parameters.clear();
  if (!settings) return;
  parameters.set(stagePath("OIDC_ISSUER"), settings.HOIST_OIDC_ISSUER as string);
  parameters.set(stagePath("OIDC_CLIENT_ID"), settings.HOIST_OIDC_CLIENT_ID as string);
  parameters.set(stagePath("OIDC_CLIENT_SECRET"), settings.HOIST_OIDC_CLIENT_SECRET as string);
}

beforeAll(async () => {
  const table = await testTable("oidcssm");
  ssm = await fakeSsm();
  op = await TestOidcProvider.start({ redirectUri: "https://api.example.com/api/auth/oidc/callback" });
  // What stacks/Api.ts gives the http function once SST's prefetcher ran: values, no SSM markers, no OIDC.
  Object.assign(process.env, {
    SST_APP: "hoist",
    SST_STAGE: "test",
    SST_SSM_PREFIX: "/sst/hoist/test/",
    SST_Secret_value_JWT_PRIVATE_KEY: await generateKeySetJson(),
    SST_Secret_value_GITHUB_CLIENT_SECRET: "github-client-secret",
    SST_Secret_value_GITHUB_WEBHOOK_SECRET: "github-webhook-secret",
    HOIST_TABLE_NAME: table.tableName,
    HOIST_LOG_LEVEL: "silent",
    AWS_ENDPOINT_URL_DYNAMODB: inject("dynamoEndpoint"),
    AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${(ssm.address() as AddressInfo).port}`,
    AWS_REGION: "local",
    AWS_ACCESS_KEY_ID: "hoist",
    AWS_SECRET_ACCESS_KEY: "local",
  });
});
afterAll(async () => {
  await op.stop();
  await new Promise<void>((ok) => ssm.close(() => ok()));
});

/** A browser-less GET, asking for JSON problems. */
const get = (path: string) => httpEvent("GET", path, { headers: { accept: "application/json" } });

describe("OpenID Connect settings on AWS", () => {
  it("are read from SSM on the first sign-in, not at import, and then kept", async () => {
    setOidc(op.env());
    asked.length = 0;
    const { handler } = (await import("./http.ts")) as unknown as {
      handler: (e: APIGatewayProxyEventV2) => Promise<{ statusCode: number; headers?: Record<string, string> }>;
    };
    expect(asked).toEqual([]); // the import: prefetched secrets only

    expect((await handler(get("/health"))).statusCode).toBe(200);
    expect(asked).toEqual([]);

    const login = await handler(get("/api/auth/oidc/login"));
    expect(login.statusCode).toBe(302);
    expect(login.headers?.location).toMatch(new RegExp(`^${op.env().HOIST_OIDC_ISSUER}`));
    expect(asked).toEqual([["OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"].map(stagePath)]);

    expect((await handler(get("/api/auth/oidc/login"))).statusCode).toBe(302);
    expect(asked).toHaveLength(1);
  });

  it("are not configured when no stage or fallback value is set", async () => {
    setOidc(undefined);
    asked.length = 0;
    const deps = await awsDeps();
    expect(await deps.readOidcSettings?.()).toBeUndefined();
    expect(asked.map((names) => names[0])).toEqual([
      stagePath("OIDC_ISSUER"),
      "/sst/hoist/.fallback/Secret/OIDC_ISSUER/value",
    ]);
  });

  it("answer 503 when SSM refuses, and are read again on the next try", async () => {
    setOidc(op.env());
    refuse = true;
    const deps = await awsDeps();
    await expect(deps.readOidcSettings?.()).rejects.toMatchObject({ status: 503, code: "unavailable" });
    refuse = false;
    expect(await deps.readOidcSettings?.()).toMatchObject({ issuer: op.env().HOIST_OIDC_ISSUER });
  });

  it("answer 503 when set but invalid, naming no value", async () => {
    setOidc({ ...op.env(), HOIST_OIDC_ISSUER: "ftp://sso.example.com" });
    const deps = await awsDeps();
    const err = await deps.readOidcSettings?.().catch((e: Error) => e);
    expect(err).toMatchObject({ status: 503, code: "not_configured" });
    expect(String((err as Error).message)).not.toContain("ftp://");
  });
});
