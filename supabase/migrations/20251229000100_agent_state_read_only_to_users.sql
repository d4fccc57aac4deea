-- On Supabase every table in public is reachable by any signed-in user through the REST layer, with their own token:
-- RLS decides which tenant, the grants decide what. Until now members could write agent-owned state directly (insert
-- an approved approval card, set credit_override_by, resolve exceptions as anyone, set strategy counters, rewrite
-- clocks and events). From here, what the agent owns is read-only to users; every decision a person makes goes
-- through a SECURITY DEFINER function that checks the caller's capability in the tenant (tenant_roles) and takes who
-- acted from auth.uid(). The full matrix, table by table and role by role, is in docs/schema.md.

-- ---------------------------------------------------------------------------------------------------
-- Grants. Revoked from authenticated: writes to agent-owned tables. Host CRM data and the tenant's own rules stay
-- writable, each behind a capability (the restrictive policies below).
-- ---------------------------------------------------------------------------------------------------

revoke insert, update, delete, truncate on table public.cards from authenticated;
revoke insert, update, delete, truncate on table public.engagement_clocks from authenticated;
revoke insert, update, delete, truncate on table public.order_processing_queue from authenticated;
revoke insert, update, delete, truncate on table public.order_processing_exceptions from authenticated;
revoke insert, update, delete, truncate on table public.warehouse_events from authenticated;
-- Strategies: a person names and shapes them; the counters and scores are the agent's (attribution learns them).
revoke insert, update, delete, truncate on table public.success_strategies from authenticated;
grant insert (id, tenant_id, strategy_key, name, description, applies_to, action_template, is_active)
  on table public.success_strategies to authenticated;
grant update (name, description, applies_to, action_template, is_active) on table public.success_strategies to authenticated;

-- Writes that stay open to members, each behind a capability: restrictive policies, AND-ed with tenant_isolation,
-- so a member whose role lacks the capability writes nothing (an UPDATE or DELETE finds no rows; an INSERT is
-- refused with 42501). Reads are unchanged: every member reads the whole tenant.
create function hourglass.require_capability_to_write(p_table regclass, p_capability text) returns void
language plpgsql volatile set search_path = ''
as $$
declare
  v_tenants constant text := pg_catalog.format('tenant_id = any ((select hourglass.tenant_ids_with(%L))::uuid[])', p_capability);
begin
  execute pg_catalog.format('create policy capability_insert on %s as restrictive for insert to authenticated with check (%s)', p_table, v_tenants);
  execute pg_catalog.format('create policy capability_update on %s as restrictive for update to authenticated using (%s) with check (%s)',
    p_table, v_tenants, v_tenants);
  execute pg_catalog.format('create policy capability_delete on %s as restrictive for delete to authenticated using (%s)', p_table, v_tenants);
end
$$;
revoke execute on function hourglass.require_capability_to_write(regclass, text) from public, anon, authenticated, service_role;

select hourglass.require_capability_to_write(t, 'edit_crm')
from pg_catalog.unnest(array['public.accounts', 'public.contacts', 'public.products', 'public.orders', 'public.order_lines']::regclass[]) t;
select hourglass.require_capability_to_write(t, 'manage_settings')
from pg_catalog.unnest(array['public.engagement_frequency_rules', 'public.price_rules', 'public.order_requirement_rules',
  'public.success_strategies']::regclass[]) t;

-- An opt-out is the contact's own word: a user may record one, but not clear or move it (the service role can, for
-- a contact who opted back in through the host CRM).
create function hourglass.guard_contact_opt_out() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if old.opted_out_at is not null and new.opted_out_at is distinct from old.opted_out_at and not hourglass.caller_bypasses_rls() then
    raise exception using errcode = '42501',
      message = pg_catalog.format('contacts.opted_out_at: contact %s opted out at %s; a user cannot clear or change an opt-out (the host CRM''s service role records an opt-in)',
        old.id, old.opted_out_at);
  end if;
  return new;
end
$$;
revoke execute on function hourglass.guard_contact_opt_out() from public, anon, authenticated;
create trigger contacts_guard_opt_out before update of opted_out_at on public.contacts
  for each row execute function hourglass.guard_contact_opt_out();

-- ---------------------------------------------------------------------------------------------------
-- The functions users call now run as their owner (the tables behind them are no longer writable by users), so each
-- checks the caller itself: assert_tenant_access (membership and the function's capability), rows of other tenants
-- reported as not found, and who acted from auth.uid() (hourglass.acting_as).
-- ---------------------------------------------------------------------------------------------------

-- Whether the caller may see a tenant's rows: a SECURITY DEFINER function reads every row, so it filters as RLS would.
create function hourglass.is_visible_tenant(p_tenant_id uuid) returns boolean
language sql stable set search_path = ''
as $$
  select hourglass.caller_bypasses_rls() or p_tenant_id = any (hourglass.current_tenant_ids())
$$;
revoke execute on function hourglass.is_visible_tenant(uuid) from public, anon;
grant execute on function hourglass.is_visible_tenant(uuid) to authenticated, service_role;

-- A member works their own cards and unassigned ones; another person's card needs work_any_card.
create function hourglass.assert_card_worker(p_tenant_id uuid, p_assignee uuid, p_function text) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_assignee is not null and p_assignee is distinct from (select auth.uid()) and not hourglass.caller_bypasses_rls()
     and not 'work_any_card' = any (hourglass.current_capabilities(p_tenant_id)) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: the card is assigned to someone else; completing or dismissing another person''s card needs the capability ''work_any_card'' (roles: owner, admin, manager)',
        p_function);
  end if;
end
$$;
revoke execute on function hourglass.assert_card_worker(uuid, uuid, text) from public, anon;
grant execute on function hourglass.assert_card_worker(uuid, uuid, text) to authenticated, service_role;

-- Batches and the compliance refresh keep their bodies: their first statement is assert_tenant_access, which now
-- checks the capability too, and every statement after it is scoped to p_tenant_id.
alter function public.record_touches(uuid, jsonb, text) security definer;
alter function public.ingest_events(uuid, jsonb, text) security definer;
alter function public.refresh_engagement_compliance(uuid) security definer;

-- update_engagement_clock keeps its body under another name; the public function in front of it records a signed-in
-- caller's touch as theirs ('user:<id>'), whatever p_touch_by says (its default, 'agent', is the worker's).
alter function public.update_engagement_clock(uuid, text, uuid, text, text, uuid) rename to record_engagement_touch;
alter function public.record_engagement_touch(uuid, text, uuid, text, text, uuid) set schema hourglass;
revoke execute on function hourglass.record_engagement_touch(uuid, text, uuid, text, text, uuid) from public, anon, authenticated;
grant execute on function hourglass.record_engagement_touch(uuid, text, uuid, text, text, uuid) to service_role;

create function public.update_engagement_clock(
  p_tenant_id uuid,
  p_entity_type text,
  p_entity_id uuid,
  p_touch_type text,
  p_touch_by text default 'agent',
  p_card_id uuid default null
) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
begin
  return hourglass.record_engagement_touch(p_tenant_id, p_entity_type, p_entity_id, p_touch_type,
    case when hourglass.caller_bypasses_rls() then p_touch_by else hourglass.acting_as(null, 'update_engagement_clock') end, p_card_id);
end
$$;
revoke execute on function public.update_engagement_clock(uuid, text, uuid, text, text, uuid) from public, anon;
grant execute on function public.update_engagement_clock(uuid, text, uuid, text, text, uuid) to authenticated, service_role;

create or replace function public.complete_touch_card(p_card_id uuid, p_touch_type text default 'call', p_notes text default null)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_card record;
  v_by text;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'complete_touch_card: p_card_id must not be null';
  end if;
  select k.id, k.tenant_id, k.kind, k.status, k.entity_type, k.entity_id, k.assignee_user_id into v_card
  from public.cards k where k.id = p_card_id for update;
  -- Another tenant's card is "not found", never leaked.
  if not found or not hourglass.is_visible_tenant(v_card.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('complete_touch_card: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'complete_touch_card');
  perform hourglass.assert_card_worker(v_card.tenant_id, v_card.assignee_user_id, 'complete_touch_card');
  if v_card.kind <> 'touch_task' then
    raise exception using errcode = '22023', message = pg_catalog.format('complete_touch_card: card %s is a %s card, not a touch_task', p_card_id, v_card.kind);
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('complete_touch_card: card %s is %s, not open', p_card_id, v_card.status);
  end if;

  v_by := hourglass.acting_as(null, 'complete_touch_card');
  update public.cards k
  set status = 'done', completed_at = hourglass.now(), completed_by = v_by, updated_at = hourglass.now(),
      payload = k.payload || pg_catalog.jsonb_build_object('touch_type', p_touch_type, 'notes', p_notes)
  where k.id = p_card_id;
  return hourglass.record_engagement_touch(v_card.tenant_id, v_card.entity_type, v_card.entity_id, p_touch_type, v_by, p_card_id);
end
$$;

-- Dismissing a touch task or a notice: the person says why. Approvals are decided (decide_approval) and exception
-- reviews close with their exception (resolve_order_exception), never dismissed here.
create function public.dismiss_card(p_card_id uuid, p_reason text default null)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_card record;
  v_by text;
  v_now timestamptz;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'dismiss_card: p_card_id must not be null';
  end if;
  select k.id, k.tenant_id, k.kind, k.status, k.assignee_user_id into v_card from public.cards k where k.id = p_card_id for update;
  if not found or not hourglass.is_visible_tenant(v_card.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('dismiss_card: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'dismiss_card');
  perform hourglass.assert_card_worker(v_card.tenant_id, v_card.assignee_user_id, 'dismiss_card');
  if v_card.kind not in ('touch_task', 'notice') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('dismiss_card: card %s is a %s card; only touch tasks and notices are dismissed (approvals: decide_approval; exception reviews: resolve_order_exception)',
        p_card_id, v_card.kind);
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('dismiss_card: card %s is %s, not open', p_card_id, v_card.status);
  end if;
  v_by := hourglass.acting_as(null, 'dismiss_card');
  v_now := hourglass.now();
  update public.cards k
  set status = 'dismissed', completed_at = v_now, completed_by = v_by, updated_at = v_now,
      payload = k.payload || pg_catalog.jsonb_build_object('dismissed_because', p_reason)
  where k.id = p_card_id;
  return 'dismissed';
end
$$;
revoke execute on function public.dismiss_card(uuid, text) from public, anon;
grant execute on function public.dismiss_card(uuid, text) to authenticated, service_role;

create or replace function public.decide_approval(p_card_id uuid, p_approve boolean, p_note text default null, p_by text default null)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_card record;
  v_by text;
  v_now timestamptz;
  v_status text;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'decide_approval: p_card_id must not be null';
  end if;
  if p_approve is null then
    raise exception using errcode = '22004', message = 'decide_approval: p_approve must be true (approve) or false (reject)';
  end if;
  select k.id, k.tenant_id, k.kind, k.status, k.due_at into v_card from public.cards k where k.id = p_card_id for update;
  if not found or not hourglass.is_visible_tenant(v_card.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('decide_approval: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'decide_approval');
  v_by := hourglass.acting_as(p_by, 'decide_approval');
  if v_card.kind <> 'approval' then
    raise exception using errcode = '22023', message = pg_catalog.format('decide_approval: card %s is a %s card, not an approval', p_card_id, v_card.kind);
  end if;
  v_now := hourglass.now();
  -- Past its due time it is expired, whether or not a cycle has swept it yet (the error rolls back any write
  -- here, so the sweep in the approvals part records the status).
  if v_card.status = 'open' and v_card.due_at is not null and v_card.due_at < v_now then
    v_card.status := 'expired';
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('decide_approval: card %s is %s, not open%s', p_card_id, v_card.status,
      case when v_card.status = 'expired' then pg_catalog.format(' (it expired at %s)', v_card.due_at) else '' end);
  end if;

  v_status := case when p_approve then 'done' else 'dismissed' end;
  update public.cards k
  set status = v_status, completed_at = v_now, completed_by = v_by, updated_at = v_now,
      payload = k.payload || pg_catalog.jsonb_build_object('approval', pg_catalog.jsonb_build_object(
        'decision', case when p_approve then 'approved' else 'rejected' end, 'by', v_by, 'at', v_now, 'note', p_note))
  where k.id = p_card_id;
  return case when p_approve then 'approved' else 'rejected' end;
end
$$;

create or replace function public.review_order_exception(p_exception_id uuid, p_by text default null)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_exception record;
  v_by text;
begin
  if p_exception_id is null then
    raise exception using errcode = '22004', message = 'review_order_exception: p_exception_id must not be null';
  end if;
  select e.id, e.tenant_id, e.order_id, e.resolution_status into v_exception
  from public.order_processing_exceptions e where e.id = p_exception_id for update;
  if not found or not hourglass.is_visible_tenant(v_exception.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('review_order_exception: exception %s not found', p_exception_id);
  end if;
  perform hourglass.assert_tenant_access(v_exception.tenant_id, 'review_order_exception');
  v_by := hourglass.acting_as(p_by, 'review_order_exception');
  if v_exception.resolution_status <> 'open' then
    raise exception using errcode = '55000',
      message = pg_catalog.format('review_order_exception: exception %s is %s, not open', p_exception_id, v_exception.resolution_status);
  end if;
  update public.order_processing_exceptions e
  set resolution_status = 'in_review', updated_at = hourglass.now(),
      details = e.details || pg_catalog.jsonb_build_object('review', pg_catalog.jsonb_build_object('by', v_by, 'at', hourglass.now()))
  where e.id = p_exception_id;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_exception.tenant_id, 'order_exception_in_review', 'order', v_exception.order_id,
          pg_catalog.jsonb_build_object('exception_id', p_exception_id, 'by', v_by), 'hourglass', hourglass.now());
  return 'in_review';
end
$$;

create or replace function public.resolve_order_exception(p_exception_id uuid, p_resolution text, p_notes text, p_by text default null)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_exception record;
  v_by text;
  v_now timestamptz;
begin
  if p_exception_id is null then
    raise exception using errcode = '22004', message = 'resolve_order_exception: p_exception_id must not be null';
  end if;
  if p_resolution is null or p_resolution not in ('resolved', 'dismissed') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('resolve_order_exception: p_resolution must be ''resolved'' or ''dismissed'' (got %L)', p_resolution);
  end if;
  if p_notes is null or pg_catalog.btrim(p_notes) = '' then
    raise exception using errcode = '22023', message = 'resolve_order_exception: p_notes must say why';
  end if;
  select e.id, e.tenant_id, e.order_id, e.queue_id, e.resolution_status into v_exception
  from public.order_processing_exceptions e where e.id = p_exception_id for update;
  if not found or not hourglass.is_visible_tenant(v_exception.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('resolve_order_exception: exception %s not found', p_exception_id);
  end if;
  perform hourglass.assert_tenant_access(v_exception.tenant_id, 'resolve_order_exception');
  v_by := hourglass.acting_as(p_by, 'resolve_order_exception');
  if v_exception.resolution_status not in ('open', 'in_review') then
    raise exception using errcode = '55000',
      message = pg_catalog.format('resolve_order_exception: exception %s is already %s', p_exception_id, v_exception.resolution_status);
  end if;

  v_now := hourglass.now();
  update public.order_processing_exceptions e
  set resolution_status = p_resolution, resolved_by = v_by, resolved_at = v_now, resolution_notes = p_notes, updated_at = v_now
  where e.id = p_exception_id;
  update public.cards k
  set status = case when p_resolution = 'resolved' then 'done' else 'dismissed' end, completed_at = v_now, completed_by = v_by, updated_at = v_now
  where k.tenant_id = v_exception.tenant_id and k.kind = 'exception_review' and k.status = 'open'
    and k.payload ->> 'exception_id' = p_exception_id::text;

  if p_resolution = 'resolved' then
    -- Re-validate: a person changed what was wrong (or says it is right now); the fix attempts start over.
    update public.order_processing_queue q
    set status = 'pending', pricing_status = 'pending', credit_status = 'pending', requirements_status = 'pending',
        auto_fix_attempts = 0, claimed_by = null, claimed_until = null, updated_at = v_now
    where q.tenant_id = v_exception.tenant_id and q.id = v_exception.queue_id and q.status <> 'processing';
  else
    update public.order_processing_queue q
    set status = 'cancelled', claimed_by = null, claimed_until = null, updated_at = v_now
    where q.tenant_id = v_exception.tenant_id and q.id = v_exception.queue_id and q.status <> 'processing';
  end if;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_exception.tenant_id, 'order_exception_' || p_resolution, 'order', v_exception.order_id,
          pg_catalog.jsonb_build_object('exception_id', p_exception_id, 'by', v_by, 'notes', p_notes), 'hourglass', v_now);
  return p_resolution;
end
$$;

-- Who may override credit is now a capability (override_credit: owner, admin, manager, controller by default),
-- not a list of role names.
create or replace function public.override_order_credit(p_order_id uuid, p_reason text, p_by text default null)
returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_queue record;
  v_by text;
  v_now timestamptz;
begin
  if p_order_id is null then
    raise exception using errcode = '22004', message = 'override_order_credit: p_order_id must not be null';
  end if;
  if p_reason is null or pg_catalog.btrim(p_reason) = '' then
    raise exception using errcode = '22023', message = 'override_order_credit: p_reason must say why';
  end if;
  select q.id, q.tenant_id, q.status into v_queue from public.order_processing_queue q where q.order_id = p_order_id for update;
  if not found or not hourglass.is_visible_tenant(v_queue.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('override_order_credit: order %s is not in the processing queue', p_order_id);
  end if;
  perform hourglass.assert_tenant_access(v_queue.tenant_id, 'override_order_credit');
  v_by := hourglass.acting_as(p_by, 'override_order_credit');
  if v_queue.status in ('processing', 'cancelled') then
    raise exception using errcode = '55000', message = pg_catalog.format('override_order_credit: the order''s entry is %s', v_queue.status);
  end if;
  v_now := hourglass.now();
  update public.order_processing_queue q
  set credit_override_by = v_by, credit_override_reason = p_reason, credit_override_at = v_now,
      status = 'pending', credit_status = 'pending', claimed_by = null, claimed_until = null, updated_at = v_now
  where q.id = v_queue.id;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_queue.tenant_id, 'order_credit_override', 'order', p_order_id,
          pg_catalog.jsonb_build_object('by', v_by, 'reason', p_reason), 'hourglass', v_now);
  return 'overridden';
end
$$;

-- A clock's own touch frequency (null: back to the rules). The clock's override trigger recomputes its due date.
create function public.set_clock_frequency(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, p_days integer)
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_days integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'set_clock_frequency');
  if p_entity_type is null or p_entity_type not in ('contact', 'account') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('set_clock_frequency: p_entity_type must be ''contact'' or ''account'' (got %L)', p_entity_type);
  end if;
  if p_days is not null and (p_days < 1 or p_days > 366) then
    raise exception using errcode = '22023', message = pg_catalog.format('set_clock_frequency: p_days must be 1-366, or null for the rules (got %s)', p_days);
  end if;
  update public.engagement_clocks c set frequency_override_days = p_days
  where c.tenant_id = p_tenant_id and c.entity_type = p_entity_type and c.entity_id = p_entity_id
  returning c.touch_frequency_days into v_days;
  if not found then
    raise exception using errcode = '23503',
      message = pg_catalog.format('set_clock_frequency: %s %s has no clock in tenant %s', p_entity_type, p_entity_id, p_tenant_id);
  end if;
  return v_days;
end
$$;
revoke execute on function public.set_clock_frequency(uuid, text, uuid, integer) from public, anon;
grant execute on function public.set_clock_frequency(uuid, text, uuid, integer) to authenticated, service_role;
