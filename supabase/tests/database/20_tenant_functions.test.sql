-- Functions across tenants, called as Supabase's REST layer calls them (rpc: SET LOCAL ROLE, request.jwt.claims):
-- every function of public that acts for a tenant, or on a tenant's row, refuses a member of another tenant, and
-- anon; and nothing of either tenant changes. The list of functions is held to the catalog: a new tenant-scoped
-- function (an argument p_tenant_id, p_card_id, p_exception_id or p_order_id) fails here until it is added to
-- hourglass_tests.prepare_calls().
begin;
\ir ../fixtures/two_tenants.psql
select hourglass_tests.seed_two_tenants();
select hourglass_tests.prepare_calls('member uA', '00000000-0000-4000-b000-00000000000b');
select hourglass_tests.prepare_calls('anon', '00000000-0000-4000-a000-00000000000a');
select plan((select pg_catalog.count(*)::integer + 5 from hourglass_tests.calls));

select set_eq(
  $$select 'public.' || p.proname || '(' || pg_catalog.replace(pg_catalog.oidvectortypes(p.proargtypes), ', ', ',') || ')' from pg_catalog.pg_proc p
    where p.pronamespace = 'public'::regnamespace
      and p.proargnames && array['p_tenant_id', 'p_card_id', 'p_exception_id', 'p_order_id']
      and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')$$,
  $$select distinct c.signature from hourglass_tests.calls c$$,
  'every tenant-scoped function of public is called by these tests');

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a1","role":"authenticated"}', true);
select matches(hourglass_tests.attempt(c.sql), c.refused, format('%s: refuses member uA of tenant A acting on tenant B', c.signature))
from hourglass_tests.calls c where c.who = 'member uA' order by c.signature;
-- The database clock is the service role's to move: not a member's, of any tenant.
select is(hourglass_tests.attempt('select hourglass.freeze_time(''2099-01-01 00:00:00+00'')'), '42501', 'hourglass.freeze_time refuses a member');
select is(hourglass_tests.attempt('select hourglass.thaw_time()'), '42501', 'hourglass.thaw_time refuses a member');
reset role;

set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true);
select matches(hourglass_tests.attempt(c.sql), c.refused, format('%s: refuses anon', c.signature))
from hourglass_tests.calls c where c.who = 'anon' order by c.signature;
reset role;

select ok(hourglass_tests.unchanged('00000000-0000-4000-b000-00000000000b'), 'nothing of tenant B changed');
select ok(hourglass_tests.unchanged('00000000-0000-4000-a000-00000000000a'), 'nothing of tenant A changed');

select * from finish();
rollback;
