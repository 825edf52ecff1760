// The process-wide registry of groups by name: newGroup, getGroup, removeGroup.
import { Group } from "./group.js";
import type { Getter, GroupOptions } from "./local-group.js";

const registry = new Map<string, Group>();

/**
 * Makes a group and registers it under `name`, for {@link getGroup} and for
 * transports that serve groups by name.
 *
 * @param cacheBytes byte budget of this node's cache for the group; `0` means unbounded.
 * @throws Error when a group of that name exists, unless `options.replace`.
 */
export function newGroup(
  name: string,
  cacheBytes: number,
  getter: Getter,
  options: GroupOptions = {},
): Group {
  if (registry.has(name) && options.replace !== true) {
    throw new Error(`group "${name}" already exists; pass { replace: true } to replace it`);
  }
  const group = new Group(name, cacheBytes, getter, options);
  registry.set(name, group);
  return group;
}

/** The group registered under `name`, or `undefined`. */
export function getGroup(name: string): Group | undefined {
  return registry.get(name);
}

/** Unregisters the group named `name`; returns whether there was one. */
export function removeGroup(name: string): boolean {
  return registry.delete(name);
}
