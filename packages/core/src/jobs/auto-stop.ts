import { type Deps, type ScheduledEvent, ScheduledEventSchema } from "../ports.ts";

/**
 * What EventBridge Scheduler (or the local scheduler) invokes when an app's
 * auto-stop time comes. The apps module supplies `stop`; the event is
 * validated first, so a malformed schedule input is refused, not run.
 */
export function createScheduledEventHandler(
  deps: Deps,
  handlers: {
    [T in ScheduledEvent["type"]]: (event: Extract<ScheduledEvent, { type: T }>, deps: Deps) => Promise<void>;
  },
) {
  return async (input: unknown): Promise<void> => {
    const event = ScheduledEventSchema.parse(input);
    await (handlers[event.type] as (event: ScheduledEvent, deps: Deps) => Promise<void>)(event, deps);
  };
}
