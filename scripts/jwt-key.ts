/**
 * Prints a new JWT signing key set (Ed25519 JWK with a kid) for the AWS
 * stages' `JWT_PRIVATE_KEY` secret. To rotate, put the new key first and keep
 * the old one after it until the old access tokens have expired.
 */
import { generateKeySetJson } from "../packages/core/src/auth/keys.ts";

process.stdout.write(`${JSON.stringify(JSON.parse(await generateKeySetJson()))}\n`);
