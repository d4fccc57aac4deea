-- Catalog guardrails: every table of public is covered by these tests and has row-level security on; every SECURITY
-- DEFINER function pins its search_path; every view runs as its caller, so row-level security applies through it.
begin;
\ir ../fixtures/two_tenants.psql
select plan(4);

select set_eq(
  $$select c.relname::text from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')$$,
  $$select hourglass_tests.tables()$$,
  'the guardrail tests cover every table in public (a new table goes into hourglass_tests.tables())');

select is_empty(
  $$select c.relname from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity$$,
  'row-level security is enabled on every table in public');

-- Without a pinned search_path, a caller's objects earlier on the path run with the owner's rights (CVE-2018-1058).
select is_empty(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'hourglass'::regnamespace) and p.prosecdef
      and not exists (select 1 from pg_catalog.unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
      and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')$$,
  'every SECURITY DEFINER function in public and hourglass sets search_path');

-- A view runs as its owner unless security_invoker (PostgreSQL 15+): through it, the owner's bypass of row-level
-- security would show every tenant's rows.
select is_empty(
  $$select c.relname from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
      and not coalesce('security_invoker=true' = any (c.reloptions) or 'security_invoker=on' = any (c.reloptions), false)
      -- An extension's views (pgTAP's own, when it is installed in public) are the extension's business.
      and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')$$,
  'every view in public is security_invoker');

select * from finish();
rollback;
