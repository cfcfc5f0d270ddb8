import { table } from "@hoist/core/store/table";
import { AttributeType, BillingMode, ProjectionType, Table } from "aws-cdk-lib/aws-dynamodb";
import { Construct } from "constructs";
import { PRODUCTION_STAGE, removalPolicyFor } from "./stage.ts";

export interface HoistTableProps {
  stage: string;
}

/**
 * The single table, built from the shape the embedded runtime also uses
 * (`@hoist/core/store/table`), so keys and indexes are defined once.
 * On-demand, point-in-time recovery, TTL on `expiresAt`.
 */
export class HoistTable extends Construct {
  readonly table: Table;

  constructor(scope: Construct, id: string, props: HoistTableProps) {
    super(scope, id);
    const prod = props.stage === PRODUCTION_STAGE;
    this.table = new Table(this, "Table", {
      partitionKey: { name: table.partitionKey, type: AttributeType.STRING },
      sortKey: { name: table.sortKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: table.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: prod,
      removalPolicy: removalPolicyFor(props.stage),
    });
    for (const index of table.indexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
        sortKey: { name: index.sortKey, type: AttributeType.STRING },
        projectionType: ProjectionType.ALL,
      });
    }
  }
}
