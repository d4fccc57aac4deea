-- Writes across tenants, as Supabase's REST layer runs a request (SET LOCAL ROLE, request.jwt.claims): a member or an
-- owner of tenant A cannot insert rows into tenant B, update or delete B's rows, move A's rows into B, or truncate a
-- table; anon writes nothing. Whether a member may write its own tenant's rows is not asserted here (which writes a
-- role may make in its own tenant is docs/schema.md's matrix and its own tests).
begin;
\ir ../fixtures/two_tenants.psql
select plan((select pg_catalog.count(*)::integer * 17 + 4 from hourglass_tests.tables()));
select hourglass_tests.seed_two_tenants();
select hourglass_tests.prepare_writes('member uA', 'authenticated', '00000000-0000-4000-a000-0000000000a1',
  '00000000-0000-4000-a000-00000000000a', '00000000-0000-4000-b000-00000000000b');
select hourglass_tests.prepare_writes('owner oA', 'authenticated', '00000000-0000-4000-a000-0000000000a2',
  '00000000-0000-4000-a000-00000000000a', '00000000-0000-4000-b000-00000000000b');
-- anon against tenant A: no tenant is anon's.
select hourglass_tests.prepare_writes('anon', 'anon', null, null, '00000000-0000-4000-a000-00000000000a');

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a1","role":"authenticated"}', true);
select matches(hourglass_tests.attempt(w.sql), w.refused, format('%s: member uA %s', w.table_name, w.what))
from hourglass_tests.writes w where w.who = 'member uA' and w.what not like 'unfiltered%' order by w.table_name, w.what;
reset role;

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a2","role":"authenticated"}', true);
select matches(hourglass_tests.attempt(w.sql), w.refused, format('%s: owner oA %s', w.table_name, w.what))
from hourglass_tests.writes w where w.who = 'owner oA' and w.what not like 'unfiltered%' order by w.table_name, w.what;
reset role;

set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true);
select matches(hourglass_tests.attempt(w.sql), w.refused, format('%s: anon %s', w.table_name, pg_catalog.replace(w.what, 'the other tenant', 'a tenant')))
from hourglass_tests.writes w where w.who = 'anon' and w.what not like 'unfiltered%' order by w.table_name, w.what;
reset role;

-- Refused or without effect: as the table owner sees it, neither tenant changed.
select ok(hourglass_tests.unchanged('00000000-0000-4000-b000-00000000000b'), 'nothing of tenant B changed');
select ok(hourglass_tests.unchanged('00000000-0000-4000-a000-00000000000a'), 'nothing of tenant A changed');

-- Statements with no filter, judged by the UPDATE and DELETE policies alone (PostgreSQL applies the SELECT
-- policies only to a statement that reads a column): every row each reaches is recorded, and none is changed.
select hourglass_tests.install_probes();

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a1","role":"authenticated"}', true);
do $$ begin perform hourglass_tests.attempt(w.sql) from hourglass_tests.writes w where w.who = 'member uA' and w.what like 'unfiltered%'; end $$;
reset role;
select is((select pg_catalog.count(*) from hourglass_tests.reached r where r.table_name = t and r.tenant is distinct from '00000000-0000-4000-a000-00000000000a'),
          0::bigint, format('%s: member uA''s update and delete without a filter reach no row of another tenant', t))
from hourglass_tests.tables() t;
delete from hourglass_tests.reached;

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a2","role":"authenticated"}', true);
do $$ begin perform hourglass_tests.attempt(w.sql) from hourglass_tests.writes w where w.who = 'owner oA' and w.what like 'unfiltered%'; end $$;
reset role;
select is((select pg_catalog.count(*) from hourglass_tests.reached r where r.table_name = t and r.tenant is distinct from '00000000-0000-4000-a000-00000000000a'),
          0::bigint, format('%s: owner oA''s update and delete without a filter reach no row of another tenant', t))
from hourglass_tests.tables() t;
delete from hourglass_tests.reached;

set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true);
do $$ begin perform hourglass_tests.attempt(w.sql) from hourglass_tests.writes w where w.who = 'anon' and w.what like 'unfiltered%'; end $$;
reset role;
select is((select pg_catalog.count(*) from hourglass_tests.reached r where r.table_name = t), 0::bigint,
          format('%s: anon''s update and delete without a filter reach no row', t))
from hourglass_tests.tables() t;

select ok(hourglass_tests.unchanged('00000000-0000-4000-b000-00000000000b'), 'in the end, nothing of tenant B changed');
select ok(hourglass_tests.unchanged('00000000-0000-4000-a000-00000000000a'), 'in the end, nothing of tenant A changed');

select * from finish();
rollback;
