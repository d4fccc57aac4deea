-- An order a person took out of automatic processing stays out when it changes (issue 15, the upsert audit in
-- docs/schema.md). Dismissing an order's exception cancels its queue entry ("a person handles it",
-- resolve_order_exception); enqueue_order's upsert then put the entry back to pending at the order's next change (the
-- person editing it, say), undoing their decision without a word. An entry whose last change was such a dismissal now
-- stays cancelled; setting its status to 'pending' queues it again (docs/orders.md). Changes of other entries, and of an
-- order cancelled in the host, go on as before. Same signature, body otherwise unchanged; no role may execute it (the
-- enqueue triggers call it).

create or replace function hourglass.enqueue_order(p_tenant_id uuid, p_order_id uuid) returns void
language plpgsql volatile set search_path = ''
as $$
declare
  v_status text;
begin
  select o.status into v_status from public.orders o where o.tenant_id = p_tenant_id and o.id = p_order_id;
  if v_status is null or v_status = 'draft' then
    return;
  end if;
  insert into public.order_processing_queue as q (tenant_id, order_id, status, created_at, updated_at)
  values (p_tenant_id, p_order_id, case when v_status = 'cancelled' then 'cancelled' else 'pending' end, hourglass.now(), hourglass.now())
  on conflict (tenant_id, order_id) do update set
    status = case when v_status = 'cancelled' then 'cancelled' else 'pending' end,
    pricing_status = 'pending', credit_status = 'pending', requirements_status = 'pending',
    auto_fix_attempts = 0, claimed_by = null, claimed_until = null, updated_at = hourglass.now()
  -- Withdrawn by a person: cancelled by the dismissal of one of its exceptions, and not changed since.
  where not (q.status = 'cancelled' and exists (
    select 1 from public.order_processing_exceptions e
    where e.tenant_id = q.tenant_id and e.queue_id = q.id and e.resolution_status = 'dismissed' and e.resolved_at >= q.updated_at));
  -- An entry being processed goes back to pending too: the processor's write is fenced on its claim (status
  -- 'processing', claimed_by, claim_token) and changes nothing, and the changed order is validated again.
end
$$;
revoke execute on function hourglass.enqueue_order(uuid, uuid) from public, anon, authenticated;
