import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { ApiGatewayBroadcaster } from "@hoist/core/adapters/aws/apigw-broadcaster";
import { awsResource } from "@hoist/core/config";

export const apiGatewayBroadcaster = () => {
  const endpoint = awsResource("HOIST_WS_ENDPOINT");
  return new ApiGatewayBroadcaster({ endpoint, client: new ApiGatewayManagementApiClient({ endpoint }) });
};
