-- The policy enforcer: each tenant's policy document, versioned; every decision other than allow recorded in
-- agent_policy_violations with the version and the action's key; approvals as cards that a person decides.
-- The rules themselves are evaluated in-process (src/Hourglass.Core/Policies, docs/policies.md).

-- ---------------------------------------------------------------------------------------------------
-- Policy documents. Every save is a new version; the highest version is the one in force. Only Hourglass
-- writes here (as the service role, after validating the document against docs/policy.schema.json and
-- checking the caller may): members read their tenant's versions, and no API role can write a document that
-- skipped validation.
-- ---------------------------------------------------------------------------------------------------

create table public.tenant_policy_documents (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  version integer not null check (version > 0),
  document jsonb not null check (pg_catalog.jsonb_typeof(document) = 'object'),
  created_by text not null check (pg_catalog.btrim(created_by) <> ''),
  comment text,
  created_at timestamptz not null default now(),
  unique (tenant_id, version)
);

revoke all on table public.tenant_policy_documents from anon, authenticated;
grant select on table public.tenant_policy_documents to authenticated;
grant select, insert on table public.tenant_policy_documents to service_role;
select hourglass.enable_tenant_isolation('public.tenant_policy_documents'::regclass);

-- ---------------------------------------------------------------------------------------------------
-- Violations: which version decided, the action's idempotency key (one row per action and rule, however
-- often a replayed hour re-decides it), and the rule's kind.
-- ---------------------------------------------------------------------------------------------------

alter table public.agent_policy_violations add column policy_version text;
alter table public.agent_policy_violations add column action_key text;
alter table public.agent_policy_violations add column rule_kind text;
create unique index uq_policy_violations_action_rule on public.agent_policy_violations (tenant_id, action_key, policy_key)
  where action_key is not null;
-- Trends and filters by rule over time.
create index idx_policy_violations_tenant_rule on public.agent_policy_violations (tenant_id, policy_key, created_at desc);

-- Accounts on credit hold: order actions for them need a person (the credit_hold rule).
alter table public.accounts add column credit_hold boolean not null default false;

-- ---------------------------------------------------------------------------------------------------
-- Approvals. A require_approval decision opens an 'approval' card holding the action; a person approves or
-- rejects it (decide_approval); an approved action runs in the tenant's next cycle, after the policy is
-- checked again at that moment. Open approvals expire at due_at.
-- ---------------------------------------------------------------------------------------------------

-- One open approval per action: a replayed hour never asks twice.
create unique index uq_cards_open_approval on public.cards (tenant_id, (payload ->> 'action_key'))
  where kind = 'approval' and status = 'open';
-- The approvals part finds approved actions still to run.
create index idx_cards_tenant_approved on public.cards (tenant_id, completed_at)
  where kind = 'approval' and status = 'done';

create function public.decide_approval(p_card_id uuid, p_approve boolean, p_note text default null, p_by text default null)
returns text
language plpgsql volatile set search_path = ''
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
  -- Under RLS another tenant's card is not found, never leaked.
  select k.id, k.tenant_id, k.kind, k.status, k.due_at into v_card from public.cards k where k.id = p_card_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = pg_catalog.format('decide_approval: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'decide_approval');
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

  -- A signed-in person is who their token says; only the service role (the CLI, the worker) may name someone.
  v_by := coalesce('user:' || (select auth.uid())::text, 'service:' || nullif(pg_catalog.btrim(p_by), ''), 'service');
  v_status := case when p_approve then 'done' else 'dismissed' end;
  update public.cards k
  set status = v_status, completed_at = v_now, completed_by = v_by, updated_at = v_now,
      payload = k.payload || pg_catalog.jsonb_build_object('approval', pg_catalog.jsonb_build_object(
        'decision', case when p_approve then 'approved' else 'rejected' end, 'by', v_by, 'at', v_now, 'note', p_note))
  where k.id = p_card_id;
  return case when p_approve then 'approved' else 'rejected' end;
end
$$;
revoke execute on function public.decide_approval(uuid, boolean, text, text) from public, anon;
grant execute on function public.decide_approval(uuid, boolean, text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- Trends: violations per day (in the tenant's time zone) by rule, severity and decision, for the last
-- p_days days.
-- ---------------------------------------------------------------------------------------------------

create function public.policy_violation_trends(p_tenant_id uuid, p_days integer default 30)
returns table (day date, policy_key text, severity text, decision text, violations bigint)
language plpgsql stable set search_path = ''
as $$
#variable_conflict use_column
declare
  v_zone text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'policy_violation_trends');
  if p_days is null or p_days < 1 or p_days > 366 then
    raise exception using errcode = '22023', message = pg_catalog.format('policy_violation_trends: p_days must be between 1 and 366 (got %s)', p_days);
  end if;
  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  return query
  select (v.created_at at time zone coalesce(v_zone, 'UTC'))::date, v.policy_key, v.severity, v.decision, pg_catalog.count(*)
  from public.agent_policy_violations v
  where v.tenant_id = p_tenant_id and v.created_at >= hourglass.now() - pg_catalog.make_interval(days => p_days)
  group by 1, 2, 3, 4
  order by 1, 2, 3, 4;
end
$$;
revoke execute on function public.policy_violation_trends(uuid, integer) from public, anon;
grant execute on function public.policy_violation_trends(uuid, integer) to authenticated, service_role;
