import { describe, expect, it } from "vitest";
import { createHttpApp } from "../http/app.ts";
import { testDeps } from "../testing/deps.ts";

describe("the live log page", () => {
  it("is served at / with its CSP, and tells the browser where the WebSocket is when it is elsewhere", async () => {
    const plain = createHttpApp(await testDeps());
    const res = await plain.request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self' 'sha256-");
    expect(await res.text()).not.toContain('<meta name="hoist-ws-url"');

    const aws = createHttpApp(
      await testDeps({ HOIST_PUBLIC_WS_URL: "wss://abc.execute-api.us-east-1.amazonaws.com/prod" }),
    );
    const html = await (await aws.request("/")).text();
    expect(html).toContain('<meta name="hoist-ws-url" content="wss://abc.execute-api.us-east-1.amazonaws.com/prod">');
  });
});
