// What kind of identity a notebook member id names, from its Clerk prefix
// (`user_`, `org_`, `mch_`), and how the app labels each kind. Pure: the
// share dialog and the tests use it. The server is the judge of validity; an
// id this does not recognise is still sent, so its 400 message is shown.

const KINDS = [
  { prefix: 'user_', kind: 'user', label: 'user' },
  { prefix: 'org_', kind: 'org', label: 'org' },
  { prefix: 'mch_', kind: 'machine', label: 'machine' },
];

/** `'user'`, `'org'`, `'machine'`, or null for an id of no known kind. */
export function memberKind(id) {
  const s = String(id ?? '').trim();
  const k = KINDS.find((x) => s.startsWith(x.prefix) && s.length > x.prefix.length);
  return k ? k.kind : null;
}

/** The badge text for a member id's kind ('user', 'org', 'machine'; '' when unknown). */
export function kindLabel(id) {
  const kind = memberKind(id);
  return KINDS.find((x) => x.kind === kind)?.label ?? '';
}

/**
 * The organizations in what Clerk's `user.getOrganizationMemberships()`
 * resolves to (a paginated `{data}` in clerk-js 5, an array in older
 * versions): `[{id, name}]`, by name, without duplicates or non-`org_` ids.
 */
export function orgsFromMemberships(result) {
  const list = Array.isArray(result) ? result : Array.isArray(result?.data) ? result.data : [];
  const seen = new Map();
  for (const m of list) {
    const org = m?.organization;
    if (!org || memberKind(org.id) !== 'org' || seen.has(org.id)) continue;
    seen.set(org.id, { id: org.id, name: typeof org.name === 'string' && org.name ? org.name : org.id });
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The org role choices of the dev sign-in box, `org:admin` first (the dev default). */
export const ORG_ROLES = ['org:admin', 'org:member'];

/**
 * The dev sign-in's saved state: `{user, org, orgRole}` from what
 * sessionStorage holds (a JSON object, or the bare user id older pages saved).
 */
export function parseDevSignIn(saved) {
  if (!saved) return null;
  let v;
  try { v = JSON.parse(saved); } catch { v = saved; }
  if (typeof v === 'string') return v ? { user: v, org: null, orgRole: null } : null;
  if (!v || typeof v.user !== 'string' || !v.user) return null;
  const org = typeof v.org === 'string' && v.org ? v.org : null;
  return { user: v.user, org, orgRole: org && ORG_ROLES.includes(v.orgRole) ? v.orgRole : org ? ORG_ROLES[0] : null };
}
