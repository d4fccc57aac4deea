-- Roles within a tenant. A member's role (tenant_members.role) names a row of tenant_roles, which lists what the role
-- may do: its capabilities. Every tenant starts with six roles (owner, admin, manager, controller, member, viewer); a
-- host CRM adds its own role names, mapped to capabilities, by inserting rows (docs/schema.md, "Roles and
-- capabilities"). The functions users call check a capability, never a role name, so a host's names work everywhere.

-- What a role may do, in one place. 'read' is every member's; the rest are granted role by role.
create function hourglass.capabilities() returns text[]
language sql immutable set search_path = ''
as $$
  select array['read', 'edit_crm', 'record_touches', 'ingest_events', 'work_any_card', 'approve', 'override_credit',
               'resolve_exceptions', 'run_cycles', 'manage_settings', 'manage_members']::text[]
$$;
revoke execute on function hourglass.capabilities() from public, anon;
grant execute on function hourglass.capabilities() to authenticated, service_role;

create function hourglass.is_capability_list(p_capabilities text[]) returns boolean
language sql immutable set search_path = ''
as $$
  select p_capabilities is not null
    and pg_catalog.array_position(p_capabilities, null) is null
    and p_capabilities <@ hourglass.capabilities()
$$;
revoke execute on function hourglass.is_capability_list(text[]) from public, anon;
grant execute on function hourglass.is_capability_list(text[]) to authenticated, service_role;

create table public.tenant_roles (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- The role's name as tenant_members.role holds it: the defaults, or a host CRM's own (e.g. 'sales_rep').
  role text not null check (pg_catalog.btrim(role) <> '' and pg_catalog.length(role) <= 63),
  capabilities text[] not null check (hourglass.is_capability_list(capabilities) and 'read' = any (capabilities)),
  description text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (tenant_id, role)
);

-- The six roles every tenant starts with.
create function hourglass.default_tenant_roles()
returns table (role text, capabilities text[], description text)
language sql stable set search_path = ''
as $$
  values
    ('owner', hourglass.capabilities(),
     'Everything, including making and removing other owners'),
    ('admin', hourglass.capabilities(),
     'Settings, schedule, policies, rules, strategies and members (but not owners)'),
    ('manager', array['read', 'edit_crm', 'record_touches', 'ingest_events', 'work_any_card', 'approve', 'override_credit',
                      'resolve_exceptions']::text[],
     'Approves held actions, overrides credit, resolves order exceptions, works any card'),
    ('controller', array['read', 'override_credit', 'resolve_exceptions']::text[],
     'Credit overrides and the order exception workflow'),
    ('member', array['read', 'edit_crm', 'record_touches', 'ingest_events']::text[],
     'CRM data, touches, events and their own cards'),
    ('viewer', array['read']::text[],
     'Reads everything in the tenant, changes nothing')
$$;
revoke execute on function hourglass.default_tenant_roles() from public, anon, authenticated;

create function hourglass.create_tenant_roles() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.tenant_roles (tenant_id, role, capabilities, description)
  select new.id, d.role, d.capabilities, d.description from hourglass.default_tenant_roles() d
  on conflict (tenant_id, role) do nothing;
  return new;
end
$$;
revoke execute on function hourglass.create_tenant_roles() from public, anon, authenticated;

create trigger tenants_create_roles after insert on public.tenants
  for each row execute function hourglass.create_tenant_roles();

insert into public.tenant_roles (tenant_id, role, capabilities, description)
select t.id, d.role, d.capabilities, d.description from public.tenants t cross join hourglass.default_tenant_roles() d
on conflict (tenant_id, role) do nothing;

-- A member's role must be one of the tenant's roles: the fixed list of names gives way to the table. The role
-- 'credit_controller' (orders, 20251224000000) becomes 'controller', which has the same capabilities and more.
alter table public.tenant_members drop constraint tenant_members_role_check;
update public.tenant_members set role = 'controller' where role = 'credit_controller';
alter table public.tenant_members
  add constraint tenant_members_role_fkey foreign key (tenant_id, role) references public.tenant_roles (tenant_id, role) on update cascade;
create index idx_tenant_members_tenant_role on public.tenant_members (tenant_id, role);

-- Members read their tenant's roles; changes go through set_tenant_role / remove_tenant_role (or the service role).
revoke all on table public.tenant_roles from anon, authenticated;
grant select on table public.tenant_roles to authenticated;
grant select, insert, update, delete on table public.tenant_roles to service_role;
select hourglass.enable_tenant_isolation('public.tenant_roles'::regclass);

-- ---------------------------------------------------------------------------------------------------
-- Who is calling. Inside a SECURITY DEFINER function current_user is the function's owner, so the caller is read
-- from the role the session set (SET ROLE, or set_config('role', …) as PostgREST does), else the login role.
-- ---------------------------------------------------------------------------------------------------

create function hourglass.caller_role() returns text
language sql stable set search_path = ''
as $$
  select coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user::text)
$$;
revoke execute on function hourglass.caller_role() from public;
grant execute on function hourglass.caller_role() to anon, authenticated, service_role;

create or replace function hourglass.caller_bypasses_rls() returns boolean
language plpgsql stable set search_path = ''
as $$
begin
  return coalesce((select r.rolsuper or r.rolbypassrls from pg_catalog.pg_roles r where r.rolname = hourglass.caller_role()), false);
end
$$;

-- The signed-in caller's capabilities in a tenant: empty for a non-member, every capability for callers that
-- bypass row-level security (the service role, the worker). SECURITY DEFINER: it reads past RLS by design.
create function hourglass.current_capabilities(p_tenant_id uuid) returns text[]
language plpgsql stable security definer set search_path = ''
as $$
begin
  if hourglass.caller_bypasses_rls() then
    return hourglass.capabilities();
  end if;
  return coalesce((
    select r.capabilities from public.tenant_members m
    join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
    where m.tenant_id = p_tenant_id and m.user_id = (select auth.uid())), '{}'::text[]);
end
$$;
revoke execute on function hourglass.current_capabilities(uuid) from public, anon;
grant execute on function hourglass.current_capabilities(uuid) to authenticated, service_role;

-- The tenants in which the current user holds a capability: the write policies call it as
-- `(select hourglass.tenant_ids_with('edit_crm'))`, once per statement (an initPlan), like current_tenant_ids().
create function hourglass.tenant_ids_with(p_capability text) returns uuid[]
language plpgsql stable security definer set search_path = ''
as $$
begin
  return coalesce((
    select pg_catalog.array_agg(m.tenant_id) from public.tenant_members m
    join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
    where m.user_id = (select auth.uid()) and p_capability = any (r.capabilities)), '{}'::uuid[]);
end
$$;
revoke execute on function hourglass.tenant_ids_with(text) from public, anon;
grant execute on function hourglass.tenant_ids_with(text) to authenticated, service_role;

-- The capability each user-callable function needs, named as the function names itself when it calls
-- assert_tenant_access. A function not listed here refuses every signed-in caller: adding a function users may call
-- means adding its row (and a test walks this table against the functions users can execute).
create table hourglass.function_capabilities (
  function_name text primary key,
  capability text not null check (hourglass.is_capability_list(array[capability]))
);
insert into hourglass.function_capabilities (function_name, capability) values
  ('engagement_queue', 'read'),
  ('engagement_movement', 'read'),
  ('policy_violation_trends', 'read'),
  ('refresh_engagement_compliance', 'read'),
  ('update_engagement_clock', 'record_touches'),
  ('record_touches', 'record_touches'),
  ('complete_touch_card', 'record_touches'),
  ('dismiss_card', 'record_touches'),
  ('ingest_events', 'ingest_events'),
  ('set_clock_frequency', 'edit_crm'),
  ('decide_approval', 'approve'),
  ('override_order_credit', 'override_credit'),
  ('review_order_exception', 'resolve_exceptions'),
  ('resolve_order_exception', 'resolve_exceptions'),
  ('set_tenant_member', 'manage_members'),
  ('remove_tenant_member', 'manage_members'),
  ('set_tenant_role', 'manage_members'),
  ('remove_tenant_role', 'manage_members');
revoke all on table hourglass.function_capabilities from public, anon, authenticated;
grant select on table hourglass.function_capabilities to service_role;

-- The check every tenant-scoped function makes first, now with the capability the function needs. Raises:
--   22004 when the tenant id is null;
--   23503 when a caller that sees every tenant names one that does not exist;
--   42501 when a user is not a member of the tenant (indistinguishable from "no such tenant", so nothing leaks),
--         or is a member whose role lacks the function's capability (the message names the role, the capability
--         and the roles that have it).
-- SECURITY DEFINER: the membership and role lookups read past RLS, and the function-to-capability table is not the
-- users' to read.
create or replace function hourglass.assert_tenant_access(p_tenant_id uuid, p_function text) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_role text;
  v_capabilities text[];
  v_needed text;
begin
  if p_tenant_id is null then
    raise exception using errcode = '22004', message = pg_catalog.format('%s: p_tenant_id must not be null', p_function);
  end if;
  if hourglass.caller_bypasses_rls() then
    if not exists (select 1 from public.tenants t where t.id = p_tenant_id) then
      raise exception using errcode = '23503', message = pg_catalog.format('%s: unknown tenant %s', p_function, p_tenant_id);
    end if;
    return;
  end if;

  select m.role, r.capabilities into v_role, v_capabilities
  from public.tenant_members m join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
  where m.tenant_id = p_tenant_id and m.user_id = (select auth.uid());
  if not found then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: tenant %s does not exist or the current user is not a member of it', p_function, p_tenant_id);
  end if;

  select f.capability into v_needed from hourglass.function_capabilities f where f.function_name = p_function;
  if v_needed is null then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: signed-in users may not call it; the service role (the worker, the CLI) does', p_function);
  end if;
  if not v_needed = any (v_capabilities) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: your role ''%s'' in tenant %s lacks the capability ''%s''; roles that have it: %s',
        p_function, v_role, p_tenant_id, v_needed,
        coalesce((select pg_catalog.string_agg(r.role, ', ' order by r.role) from public.tenant_roles r
                  where r.tenant_id = p_tenant_id and v_needed = any (r.capabilities)), 'none'));
  end if;
end
$$;

-- Who acts, for the record: the signed-in user (from their token, never from an argument), else the service role,
-- which may name the person it acts for (the CLI's --by). A user naming anyone else is refused.
create function hourglass.acting_as(p_by text, p_function text) returns text
language plpgsql stable set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
begin
  if hourglass.caller_bypasses_rls() then
    return coalesce('service:' || nullif(pg_catalog.btrim(p_by), ''), 'service');
  end if;
  if v_user is null then
    raise exception using errcode = '42501', message = pg_catalog.format('%s: no signed-in user (auth.uid() is null)', p_function);
  end if;
  if p_by is not null and pg_catalog.btrim(p_by) not in ('', v_user::text, 'user:' || v_user::text) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: p_by may not name someone else (%L); a signed-in user acts as themselves, only the service role names who it acts for',
        p_function, p_by);
  end if;
  return 'user:' || v_user::text;
end
$$;
revoke execute on function hourglass.acting_as(text, text) from public, anon;
grant execute on function hourglass.acting_as(text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- Members and roles, for owners and admins (capability manage_members). Only an owner makes, changes or removes
-- an owner, and a tenant that has an owner keeps at least one.
-- ---------------------------------------------------------------------------------------------------

create function hourglass.assert_owner_change_allowed(p_tenant_id uuid, p_function text) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not hourglass.caller_bypasses_rls() and not exists (
      select 1 from public.tenant_members m
      join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
      where m.tenant_id = p_tenant_id and m.user_id = (select auth.uid()) and m.role = 'owner') then
    raise exception using errcode = '42501', message = pg_catalog.format('%s: only an owner may make, change or remove an owner', p_function);
  end if;
end
$$;
revoke execute on function hourglass.assert_owner_change_allowed(uuid, text) from public, anon;
grant execute on function hourglass.assert_owner_change_allowed(uuid, text) to authenticated, service_role;

create function public.set_tenant_member(p_tenant_id uuid, p_user_id uuid, p_role text)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_old text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'set_tenant_member');
  if p_user_id is null then
    raise exception using errcode = '22004', message = 'set_tenant_member: p_user_id must not be null';
  end if;
  if p_role is null or not exists (select 1 from public.tenant_roles r where r.tenant_id = p_tenant_id and r.role = p_role) then
    raise exception using errcode = '22023',
      message = pg_catalog.format('set_tenant_member: p_role %L is not a role of the tenant (roles: %s)', p_role,
        (select pg_catalog.string_agg(r.role, ', ' order by r.role) from public.tenant_roles r where r.tenant_id = p_tenant_id));
  end if;
  select m.role into v_old from public.tenant_members m where m.tenant_id = p_tenant_id and m.user_id = p_user_id for update;
  if v_old is not distinct from p_role then
    return 'unchanged';
  end if;
  if p_role = 'owner' or v_old = 'owner' then
    perform hourglass.assert_owner_change_allowed(p_tenant_id, 'set_tenant_member');
  end if;
  if v_old = 'owner' and not exists (
      select 1 from public.tenant_members m where m.tenant_id = p_tenant_id and m.role = 'owner' and m.user_id <> p_user_id) then
    raise exception using errcode = '55000', message = 'set_tenant_member: this is the tenant''s last owner; make someone else owner first';
  end if;
  insert into public.tenant_members (tenant_id, user_id, role) values (p_tenant_id, p_user_id, p_role)
  on conflict (tenant_id, user_id) do update set role = excluded.role;
  return case when v_old is null then 'added' else 'changed' end;
end
$$;

create function public.remove_tenant_member(p_tenant_id uuid, p_user_id uuid)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_old text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'remove_tenant_member');
  if p_user_id is null then
    raise exception using errcode = '22004', message = 'remove_tenant_member: p_user_id must not be null';
  end if;
  select m.role into v_old from public.tenant_members m where m.tenant_id = p_tenant_id and m.user_id = p_user_id for update;
  if not found then
    return false;
  end if;
  if v_old = 'owner' then
    perform hourglass.assert_owner_change_allowed(p_tenant_id, 'remove_tenant_member');
    if not exists (select 1 from public.tenant_members m where m.tenant_id = p_tenant_id and m.role = 'owner' and m.user_id <> p_user_id) then
      raise exception using errcode = '55000', message = 'remove_tenant_member: this is the tenant''s last owner; make someone else owner first';
    end if;
  end if;
  delete from public.tenant_members m where m.tenant_id = p_tenant_id and m.user_id = p_user_id;
  return true;
end
$$;

-- A host's own role name, or new capabilities for an existing one. The owner role keeps every capability.
create function public.set_tenant_role(p_tenant_id uuid, p_role text, p_capabilities text[], p_description text default null)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_existed boolean;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'set_tenant_role');
  if p_role is null or pg_catalog.btrim(p_role) = '' or pg_catalog.length(p_role) > 63 then
    raise exception using errcode = '22023', message = 'set_tenant_role: p_role must be 1-63 characters';
  end if;
  if p_role = 'owner' then
    raise exception using errcode = '22023', message = 'set_tenant_role: the owner role always has every capability';
  end if;
  if not hourglass.is_capability_list(p_capabilities) then
    raise exception using errcode = '22023',
      message = pg_catalog.format('set_tenant_role: p_capabilities %L has an unknown capability (known: %s)',
        p_capabilities, pg_catalog.array_to_string(hourglass.capabilities(), ', '));
  end if;
  -- Nobody grants what they do not hold: an admin cannot mint a role above their own.
  if not hourglass.caller_bypasses_rls() and not (p_capabilities <@ hourglass.current_capabilities(p_tenant_id)) then
    raise exception using errcode = '42501', message = 'set_tenant_role: a role may not have capabilities you do not have yourself';
  end if;
  v_existed := exists (select 1 from public.tenant_roles r where r.tenant_id = p_tenant_id and r.role = p_role);
  insert into public.tenant_roles (tenant_id, role, capabilities, description)
  values (p_tenant_id, p_role,
          (select pg_catalog.array_agg(distinct c order by c) from pg_catalog.unnest(p_capabilities || array['read']) c),
          p_description)
  on conflict (tenant_id, role) do update
    set capabilities = excluded.capabilities, description = coalesce(excluded.description, public.tenant_roles.description),
        updated_at = hourglass.now();
  return case when v_existed then 'changed' else 'added' end;
end
$$;

create function public.remove_tenant_role(p_tenant_id uuid, p_role text)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'remove_tenant_role');
  if p_role = 'owner' then
    raise exception using errcode = '22023', message = 'remove_tenant_role: the owner role cannot be removed';
  end if;
  if exists (select 1 from public.tenant_members m where m.tenant_id = p_tenant_id and m.role = p_role) then
    raise exception using errcode = '55000',
      message = pg_catalog.format('remove_tenant_role: members still have the role %L; give them another role first', p_role);
  end if;
  delete from public.tenant_roles r where r.tenant_id = p_tenant_id and r.role = p_role;
  return found;
end
$$;

revoke execute on function public.set_tenant_member(uuid, uuid, text), public.remove_tenant_member(uuid, uuid),
  public.set_tenant_role(uuid, text, text[], text), public.remove_tenant_role(uuid, text) from public, anon;
grant execute on function public.set_tenant_member(uuid, uuid, text), public.remove_tenant_member(uuid, uuid),
  public.set_tenant_role(uuid, text, text[], text), public.remove_tenant_role(uuid, text) to authenticated, service_role;
