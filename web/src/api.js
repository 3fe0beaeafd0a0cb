// The REST client: every call carries a fresh `Authorization: Bearer` token;
// a 401 is retried once with a newly fetched token, and a second 401 means
// the user is signed out.

export class ApiError extends Error {
  constructor(status, code, message, body = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export function makeApi(auth, onSignedOut = () => {}) {
  async function request(method, path, { json, body, headers = {}, raw = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      const token = await auth.getToken({ force: attempt > 0 });
      if (!token) throw new ApiError(401, 'unauthenticated', 'You are signed out.');
      const init = { method, headers: { ...headers, authorization: `Bearer ${token}` } };
      if (json !== undefined) {
        init.body = JSON.stringify(json);
        init.headers['content-type'] = 'application/json';
      } else if (body !== undefined) {
        init.body = body;
      }
      let response;
      try {
        response = await fetch(path, init);
      } catch {
        throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
      }
      if (response.status === 401 && attempt === 0) continue;
      if (!response.ok) {
        const parsed = await response.json().catch(() => null);
        const error = parsed?.error ?? {};
        if (response.status === 401) onSignedOut();
        throw new ApiError(response.status, error.code ?? `http_${response.status}`,
          error.message ?? response.statusText ?? 'request failed', error);
      }
      if (raw) return response;
      if (response.status === 204) return null;
      return response.json();
    }
  }

  const nb = (id) => `/api/v1/notebooks/${encodeURIComponent(id)}`;
  return {
    request,
    me: () => request('GET', '/api/v1/me'),
    listNotebooks: (cursor) =>
      request('GET', `/api/v1/notebooks?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
    createNotebook: (title, cells) => request('POST', '/api/v1/notebooks', { json: cells ? { title, cells } : { title } }),
    renameNotebook: (id, title) => request('PATCH', nb(id), { json: { title } }),
    deleteNotebook: (id) => request('DELETE', nb(id)),
    exportIpynb: async (id) => (await request('GET', `${nb(id)}/ipynb`, { raw: true })).blob(),
    importIpynb: (file, title) =>
      request('POST', `/api/v1/notebooks/import${title ? `?title=${encodeURIComponent(title)}` : ''}`, {
        body: file,
        headers: { 'content-type': 'application/json' },
      }),
    members: (id) => request('GET', `${nb(id)}/members`),
    putMember: (id, user, role) => request('PUT', `${nb(id)}/members/${encodeURIComponent(user)}`, { json: { role } }),
    removeMember: (id, user) => request('DELETE', `${nb(id)}/members/${encodeURIComponent(user)}`),
  };
}
