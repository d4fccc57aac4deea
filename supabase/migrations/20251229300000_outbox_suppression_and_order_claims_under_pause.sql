-- The kill switches hold every side effect, and a message is checked again at the moment it is sent (issue 15, part 3;
-- docs/outbox.md "Send-time checks", docs/scheduler.md "What the kill switches hold", docs/orders.md).
--
-- 1. message_outbox gets a terminal status, 'suppressed': at the moment of sending the message was no longer allowed
--    (the contact opted out or is do-not-contact, or its account is; its channel was disabled or removed). It is never
--    sent, never counts as a touch, and says why (suppressed_code for grouping, suppressed_reason in words). Distinct
--    from 'cancelled', which stays what an operator does by hand.
-- 2. held_reason: why a pending message waits although it was due — outside the tenant's send window (or on a
--    holiday), the dispatcher holds it until the window opens instead of dropping it; cleared when it is claimed.
-- 3. claim_orders skips paused tenants (and claims nothing under the global pause). The dispatcher's and the order
--    writer's own checks are in their SQL (OutboxDispatcher.cs, OrderWriter.cs).

alter table public.message_outbox drop constraint message_outbox_status_check;
alter table public.message_outbox add constraint message_outbox_status_check
  check (status in ('pending', 'sending', 'sent', 'failed', 'cancelled', 'suppressed'));

alter table public.message_outbox
  add column suppressed_at timestamptz,
  add column suppressed_code text check (suppressed_code in (
    'contact_opted_out', 'contact_do_not_contact', 'account_do_not_contact', 'channel_disabled', 'channel_missing')),
  add column suppressed_reason text,
  add column held_reason text;

alter table public.message_outbox add constraint message_outbox_suppressed_check
  check ((status = 'suppressed') = (suppressed_at is not null)
         and (status <> 'suppressed' or (suppressed_code is not null and suppressed_reason is not null)));

-- ---------------------------------------------------------------------------------------------------
-- claim_orders: as in 20251224000000_orders.sql, and a paused tenant's entries are not claimed (its orders wait,
-- untouched, until it is resumed); under the global pause nothing is. Same signature, language, SECURITY (invoker)
-- and search_path; its grants are kept by CREATE OR REPLACE.
-- ---------------------------------------------------------------------------------------------------

create or replace function public.claim_orders(p_worker text, p_limit integer, p_visibility_seconds integer default 300, p_tenant_id uuid default null)
returns table (queue_id uuid, tenant_id uuid, order_id uuid, claim_token bigint, auto_fix_attempts integer, max_auto_fix_attempts integer,
  credit_override_by text, credit_override_reason text)
language plpgsql volatile set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz;
begin
  if p_worker is null or pg_catalog.btrim(p_worker) = '' then
    raise exception using errcode = '22023', message = 'claim_orders: p_worker must not be empty';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception using errcode = '22023', message = pg_catalog.format('claim_orders: p_limit must be between 1 and 1000 (got %s)', p_limit);
  end if;
  if p_visibility_seconds is null or p_visibility_seconds < 1 then
    raise exception using errcode = '22023', message = 'claim_orders: p_visibility_seconds must be at least 1';
  end if;
  if p_tenant_id is not null then
    perform hourglass.assert_tenant_access(p_tenant_id, 'claim_orders');
  end if;
  -- The global kill switch: nothing is claimed.
  if (select c.paused from hourglass.agent_control c where c.singleton) then
    return;
  end if;
  v_now := hourglass.now();
  return query
  with pending as (
    select q.id from public.order_processing_queue q
    where q.status = 'pending' and (p_tenant_id is null or q.tenant_id = p_tenant_id)
      and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = q.tenant_id and s.paused)
    order by q.priority desc, q.created_at
    limit p_limit
    for update of q skip locked
  ), lapsed as (
    select q.id from public.order_processing_queue q
    where q.status = 'processing' and q.claimed_until < v_now and (p_tenant_id is null or q.tenant_id = p_tenant_id)
      and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = q.tenant_id and s.paused)
    limit p_limit
    for update of q skip locked
  ), picked as (
    select l.id from lapsed l
    union
    select p.id from pending p
    limit p_limit
  )
  update public.order_processing_queue q
  set status = 'processing', claimed_by = p_worker, claimed_until = v_now + pg_catalog.make_interval(secs => p_visibility_seconds),
      claim_token = pg_catalog.nextval('hourglass.order_claim_tokens'), updated_at = v_now
  from picked
  where q.id = picked.id
  returning q.id, q.tenant_id, q.order_id, q.claim_token, q.auto_fix_attempts, q.max_auto_fix_attempts, q.credit_override_by, q.credit_override_reason;
end
$$;
