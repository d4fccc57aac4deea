-- Reads across tenants, as Supabase's REST layer runs a request: SET LOCAL ROLE and the JWT claims in
-- request.jwt.claims. A member (and an owner) of tenant A sees no row of any other tenant in any table; anon sees
-- nothing at all. "No SELECT privilege at all" (42501) also sees nothing.
begin;
\ir ../fixtures/two_tenants.psql
select plan((select pg_catalog.count(*)::integer * 3 + 2 from hourglass_tests.tables()));
select hourglass_tests.seed_two_tenants();

-- The member uA of tenant A.
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a1","role":"authenticated"}', true);

select results_eq('select id from public.tenants', $$values ('00000000-0000-4000-a000-00000000000a'::uuid)$$,
  'member uA sees its own tenant, and only it');
select matches(hourglass_tests.attempt(format('select 1 from public.%I where %I is distinct from %L', t, hourglass_tests.tenant_column(t),
                 '00000000-0000-4000-a000-00000000000a')),
               '^(rows:0|42501)$', format('%s: member uA sees no row of another tenant', t))
from hourglass_tests.tables() t;
reset role;

-- The owner oA of tenant A: more rights in its own tenant, none in another.
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-a000-0000000000a2","role":"authenticated"}', true);

select matches(hourglass_tests.attempt(format('select 1 from public.%I where %I is distinct from %L', t, hourglass_tests.tenant_column(t),
                 '00000000-0000-4000-a000-00000000000a')),
               '^(rows:0|42501)$', format('%s: owner oA sees no row of another tenant', t))
from hourglass_tests.tables() t;
reset role;

-- anon: the project's public key, no user.
set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true);

select matches(hourglass_tests.attempt(format('select 1 from public.%I', t)), '^(rows:0|42501)$', format('%s: anon reads nothing', t))
from hourglass_tests.tables() t;
reset role;

select ok(hourglass_tests.unchanged('00000000-0000-4000-b000-00000000000b'), 'nothing of tenant B changed');

select * from finish();
rollback;
