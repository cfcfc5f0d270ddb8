import type { APIGatewayProxyEventV2 } from "aws-lambda";

/**
 * A request as API Gateway's HTTP API (payload 2.0) hands it to the http
 * function: a literal, for tests and the lambda bench to call the handler with.
 */
export function httpEvent(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: "",
    headers: {
      host: "api.example.com",
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body ? { "content-type": "application/json" } : {}),
      ...opts.headers,
    },
    requestContext: {
      accountId: "123456789012",
      apiId: "api",
      domainName: "api.example.com",
      domainPrefix: "api",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: "hoist-test" },
      requestId: "req",
      routeKey: "$default",
      stage: "$default",
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
    isBase64Encoded: false,
  };
}
