/** JSON calls over real HTTP to a running Hoist (the embedded runtime in end-to-end tests). */
export function fetchApi(baseUrl: () => string) {
  return async <T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body ? { "content-type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as T };
  };
}
