/**
 * The default plans: `free` (new users' default), `pro` and `team`, in the
 * shape of a plans file (HOIST_PLANS_FILE takes a JSON file of this shape
 * instead). Kept as a module, not a .json file, so every bundler that builds
 * the Lambdas (SST's esbuild among them) takes it without import attributes.
 * Limits are counts, minutes per month and requests per minute; prices are
 * cents per unit.
 */
export const DEFAULT_PLANS = {
  default: "free",
  plans: {
    free: {
      limits: {
        servers: 1,
        apps: 3,
        runningApps: 1,
        deployMinutes: 100,
        appMinutes: 3000,
        requestsPerMinute: 60,
      },
      prices: {
        requests: 0.01,
        deployments: 1,
        deploySeconds: 0.05,
        appRunningMinutes: 0.5,
      },
    },
    pro: {
      limits: {
        servers: 5,
        apps: 25,
        runningApps: 10,
        deployMinutes: 1000,
        appMinutes: 50000,
        requestsPerMinute: 600,
      },
      prices: {
        requests: 0.005,
        deployments: 0.5,
        deploySeconds: 0.02,
        appRunningMinutes: 0.2,
      },
    },
    team: {
      limits: {
        servers: 50,
        apps: 250,
        runningApps: 100,
        deployMinutes: 10000,
        requestsPerMinute: 3000,
      },
      prices: {
        requests: 0.002,
        deployments: 0.2,
        deploySeconds: 0.01,
        appRunningMinutes: 0.1,
      },
    },
  },
};
