-- Within their own tenant, what a signed-in member may not do to the agent's state (docs/schema.md, "Who may write
-- what"), tried as Supabase's REST layer would let them: straight at the tables, and through the functions with a
-- role that lacks the capability or with someone else's name. Then the same decisions made the right way, recording
-- who made them from the token.
begin;
\ir ../fixtures/two_tenants.psql
select hourglass_tests.seed_two_tenants();
-- A viewer of tenant A besides its member (uA) and owner (oA).
insert into public.tenant_members (tenant_id, user_id, role)
values ('00000000-0000-4000-a000-00000000000a', '00000000-0000-4000-a000-0000000000a3', 'viewer');
create temporary table ids on commit drop as
select (select c.id from public.cards c where c.tenant_id = '00000000-0000-4000-a000-00000000000a' and c.kind = 'approval') as approval,
       (select c.id from public.cards c where c.tenant_id = '00000000-0000-4000-a000-00000000000a' and c.kind = 'touch_task') as touch_card,
       (select e.id from public.order_processing_exceptions e where e.tenant_id = '00000000-0000-4000-a000-00000000000a') as exception,
       (select e.order_id from public.order_processing_exceptions e where e.tenant_id = '00000000-0000-4000-a000-00000000000a') as order_id,
       (select k.id from public.contacts k where k.tenant_id = '00000000-0000-4000-a000-00000000000a') as contact;
grant select on ids to authenticated;
select plan(20);

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a1","role":"authenticated"}', true);

-- Straight at the tables the agent owns.
select is(hourglass_tests.attempt($$insert into public.cards (tenant_id, kind, title, status, completed_at, completed_by, payload)
  values ('00000000-0000-4000-a000-00000000000a', 'approval', 'Send it', 'done', now(), 'user:00000000-0000-4000-a000-0000000000a2',
          '{"action_key": "forged", "approval": {"decision": "approved"}, "action": {"kind": "send_message"}}')$$),
  '42501', 'a member cannot insert an approval card already approved in the owner''s name');
select is(hourglass_tests.attempt(format($$update public.cards set status = 'done', completed_at = now() where id = %L$$, (select approval from ids))),
  '42501', 'a member cannot mark an approval card approved');
select is(hourglass_tests.attempt(format($$update public.order_processing_queue set credit_override_by = 'user:owner', credit_status = 'passed' where order_id = %L$$,
  (select order_id from ids))), '42501', 'a member cannot write a credit override on the queue');
select is(hourglass_tests.attempt(format($$update public.order_processing_exceptions set resolution_status = 'resolved', resolved_by = 'user:owner' where id = %L$$,
  (select exception from ids))), '42501', 'a member cannot mark an exception resolved in anyone''s name');
select is(hourglass_tests.attempt($$update public.success_strategies set success_count = 1000, effectiveness_score = 1$$),
  '42501', 'a member cannot set a strategy''s counters');
select is(hourglass_tests.attempt($$update public.engagement_clocks set last_touch_at = now(), compliance_status = 'compliant'$$),
  '42501', 'a member cannot rewrite an engagement clock');
select is(hourglass_tests.attempt($$delete from public.warehouse_events$$), '42501', 'a member cannot delete events');
select is(hourglass_tests.attempt($$update public.warehouse_events set payload = '{}'$$), '42501', 'a member cannot rewrite events');
select is(hourglass_tests.attempt($$update public.tenant_members set role = 'owner'$$), '42501', 'a member cannot change a role');
select is(hourglass_tests.attempt($$update public.tenant_roles set capabilities = '{read,approve}'$$), '42501', 'a member cannot give a role capabilities');

-- Through the functions, without the capability, or naming someone else.
select is(hourglass_tests.attempt(format('select public.decide_approval(%L, true)', (select approval from ids))),
  '42501', 'decide_approval refuses a member (no approve capability)');
select is(hourglass_tests.attempt(format('select public.override_order_credit(%L, %L)', (select order_id from ids), 'trust me')),
  '42501', 'override_order_credit refuses a member (no override_credit capability)');
select is(hourglass_tests.attempt(format('select public.resolve_order_exception(%L, %L, %L)', (select exception from ids), 'resolved', 'done')),
  '42501', 'resolve_order_exception refuses a member (no resolve_exceptions capability)');
select is(hourglass_tests.attempt(format('select public.set_tenant_member(%L, %L, %L)', '00000000-0000-4000-a000-00000000000a',
  '00000000-0000-4000-a000-0000000000a1', 'owner')), '42501', 'set_tenant_member refuses a member making themselves owner');

-- A touch a member records is theirs, whatever they say it was.
select lives_ok(format($$select public.update_engagement_clock(%L, 'contact', %L, 'call', 'agent')$$,
  '00000000-0000-4000-a000-00000000000a', (select contact from ids)), 'a member records a touch');
reset role;
select is((select c.last_touch_by from public.engagement_clocks c where c.entity_id = (select contact from ids)),
  'user:00000000-0000-4000-a000-0000000000a1', 'the touch is recorded as the member''s, not the agent''s');

-- A viewer reads but writes no CRM data.
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a3","role":"authenticated"}', true);
select is(hourglass_tests.attempt($$insert into public.accounts (tenant_id, name) values ('00000000-0000-4000-a000-00000000000a', 'Viewer''s account')$$),
  '42501', 'a viewer cannot insert an account');

-- The owner decides, as themselves; naming someone else is refused.
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a2","role":"authenticated"}', true);
select is(hourglass_tests.attempt(format('select public.decide_approval(%L, true, null, %L)', (select approval from ids), 'someone else')),
  '42501', 'decide_approval refuses a p_by naming someone other than the caller');
select is(hourglass_tests.attempt(format('select public.decide_approval(%L, true)', (select approval from ids))), 'rows:1', 'the owner approves');
reset role;
select is((select c.completed_by from public.cards c where c.id = (select approval from ids)),
  'user:00000000-0000-4000-a000-0000000000a2', 'the approval records the owner, from the token');

select * from finish();
rollback;
