import { owned } from "../owned.ts";
import type { Key } from "../store/store.ts";

export type ProjectItem = Key & {
  entity: "project";
  id: string;
  ownerId: string;
  name: string;
  description: string;
  createdAt: number;
  updatedAt: number;
  gsi1pk: string;
  gsi1sk: string;
};

export interface Project {
  id: string;
  name: string;
  description: string;
  createdAt: number;
  updatedAt: number;
}

export const projectKey = (ownerId: string, id: string) => owned.key(ownerId, "PROJECT", id);

export const toProject = (p: ProjectItem): Project => ({
  id: p.id,
  name: p.name,
  description: p.description,
  createdAt: p.createdAt,
  updatedAt: p.updatedAt,
});
