import { ForbiddenException, GoneException, PostToConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi";
import { describe, expect, it } from "vitest";
import { ApiGatewayBroadcaster } from "./apigw-broadcaster.ts";

function recorder(error?: Error) {
  const sent: PostToConnectionCommand[] = [];
  return {
    sent,
    send: async (command: PostToConnectionCommand) => {
      sent.push(command);
      if (error) throw error;
      return {};
    },
  };
}

const endpoint = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev";

describe("ApiGatewayBroadcaster", () => {
  it("posts the message as JSON bytes to the connection", async () => {
    const client = recorder();
    const result = await new ApiGatewayBroadcaster({ endpoint, client }).post("conn-1", { type: "log", line: "hi" });
    expect(result).toBe("sent");
    expect(client.sent[0]).toBeInstanceOf(PostToConnectionCommand);
    const input = client.sent[0]?.input;
    expect(input?.ConnectionId).toBe("conn-1");
    expect(new TextDecoder().decode(input?.Data as Uint8Array)).toBe('{"type":"log","line":"hi"}');
  });

  it('reports a connection that is gone (410) as "gone"', async () => {
    const gone = new GoneException({ message: "Gone", $metadata: { httpStatusCode: 410 } });
    expect(await new ApiGatewayBroadcaster({ endpoint, client: recorder(gone) }).post("conn-1", {})).toBe("gone");

    // A gateway that answers 410 without the error type in its body still counts.
    const bare = Object.assign(new Error("410"), { name: "UnknownError", $metadata: { httpStatusCode: 410 } });
    expect(await new ApiGatewayBroadcaster({ endpoint, client: recorder(bare) }).post("conn-1", {})).toBe("gone");
  });

  it("throws any other error", async () => {
    const forbidden = new ForbiddenException({ message: "Forbidden", $metadata: { httpStatusCode: 403 } });
    await expect(new ApiGatewayBroadcaster({ endpoint, client: recorder(forbidden) }).post("conn-1", {})).rejects.toBe(
      forbidden,
    );
  });
});
