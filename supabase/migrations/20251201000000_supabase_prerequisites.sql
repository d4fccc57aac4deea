-- What a Supabase project already provides and the rest of the schema relies on: the API roles and the
-- auth.uid() / auth.jwt() / auth.role() functions that read the request's JWT claims.
--
-- Every object here is created only when absent, so this file is a no-op on Supabase and builds the same
-- surface on a plain PostgreSQL (the embedded cluster, a managed server).

do $roles$
declare
  v_role text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
    if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = v_role) then
      execute pg_catalog.format('create role %I nologin noinherit', v_role);
    end if;
  end loop;

  -- Supabase's service_role skips RLS; background jobs (the worker) run as it.
  if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role' and r.rolbypassrls) then
    alter role service_role bypassrls;
  end if;

  -- A connecting role must be a member of the API roles to switch to them per request, as PostgREST's
  -- authenticator does. A superuser needs no membership; a managed server's owner role does (PostgreSQL 16
  -- grants a role's creator only ADMIN, not SET, by default: see createrole_self_grant).
  if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = current_user and r.rolsuper) then
    foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
      if not pg_catalog.pg_has_role(current_user, v_role, 'MEMBER') then
        execute pg_catalog.format('grant %I to %I', v_role, current_user);
      end if;
    end loop;
  end if;
end
$roles$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

-- The three functions below have the bodies Supabase gives them: the newer `request.jwt.claims` JSON
-- setting, falling back to the older per-claim settings PostgREST 8 and earlier wrote.
do $auth$
begin
  if pg_catalog.to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
    language sql stable
    as $fn$
      select
      coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $fn$;
    comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
  end if;

  if pg_catalog.to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
    language sql stable
    as $fn$
      select
      coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $fn$;
    comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
  end if;

  if pg_catalog.to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
    language sql stable
    as $fn$
      select
        coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
    $fn$;
  end if;
end
$auth$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;
