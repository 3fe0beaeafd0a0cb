import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memberKind, kindLabel, orgsFromMemberships, parseDevSignIn } from '../src/member-id.js';

test('member ids are told apart by their Clerk prefix', () => {
  assert.equal(memberKind('user_bob'), 'user');
  assert.equal(memberKind('org_team'), 'org');
  assert.equal(memberKind('mch_exporter'), 'machine');
  assert.equal(memberKind(' org_team '), 'org');
  assert.equal(memberKind('bob'), null);
  assert.equal(memberKind('org_'), null);
  assert.equal(memberKind('organization_x'), null);
  assert.equal(memberKind(undefined), null);
  assert.equal(kindLabel('org_team'), 'org');
  assert.equal(kindLabel('mch_x'), 'machine');
  assert.equal(kindLabel('nope'), '');
});

test("Clerk's memberships become the organizations to offer", () => {
  const m = (id, name) => ({ organization: { id, name } });
  const paged = { data: [m('org_b', 'Beta'), m('org_a', 'Alpha'), m('org_b', 'Beta'), m('bad', 'X'), {}], total_count: 5 };
  assert.deepEqual(orgsFromMemberships(paged), [{ id: 'org_a', name: 'Alpha' }, { id: 'org_b', name: 'Beta' }]);
  assert.deepEqual(orgsFromMemberships([m('org_x', '')]), [{ id: 'org_x', name: 'org_x' }]);
  assert.deepEqual(orgsFromMemberships(null), []);
});

test('the dev sign-in state reads old and new saved forms', () => {
  assert.deepEqual(parseDevSignIn('user_alice'), { user: 'user_alice', org: null, orgRole: null });
  assert.deepEqual(parseDevSignIn(JSON.stringify({ user: 'user_dave', org: 'org_team', orgRole: 'org:member' })),
    { user: 'user_dave', org: 'org_team', orgRole: 'org:member' });
  assert.deepEqual(parseDevSignIn(JSON.stringify({ user: 'user_dave', org: 'org_team', orgRole: 'org:root' })),
    { user: 'user_dave', org: 'org_team', orgRole: 'org:admin' });
  assert.equal(parseDevSignIn(''), null);
  assert.equal(parseDevSignIn(JSON.stringify({ org: 'org_x' })), null);
});
