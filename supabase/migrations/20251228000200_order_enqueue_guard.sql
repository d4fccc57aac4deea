-- Only the processor's own writes skip the order queue. Its transactions set hourglass.order_processor = 'on', and the
-- enqueue triggers skip rows written under it (20251228000100). But a custom setting is anyone's to set: a member
-- writing orders directly (role authenticated, or anon) could set it in the same transaction and have a changed order
-- skip validation. The triggers now honor it only for other roles (the processor's, service_role), and enqueue_order no
-- longer checks it itself — the triggers' WHEN conditions decide (enqueue_order is theirs alone: no role may execute it).

drop trigger orders_enqueue on public.orders;
create trigger orders_enqueue after insert or update of status, po_number, ship_to, requested_ship_date, currency, subtotal, total,
  shipping_amount, tax_amount, account_id on public.orders
  for each row when (pg_catalog.current_setting('hourglass.order_processor', true) is distinct from 'on'
                     or current_user in ('anon', 'authenticated'))
  execute function hourglass.on_order_change();

drop trigger order_lines_enqueue on public.order_lines;
create trigger order_lines_enqueue after insert or update or delete on public.order_lines
  for each row when (pg_catalog.current_setting('hourglass.order_processor', true) is distinct from 'on'
                     or current_user in ('anon', 'authenticated'))
  execute function hourglass.on_order_line_change();

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
    auto_fix_attempts = 0, claimed_by = null, claimed_until = null, updated_at = hourglass.now();
  -- An entry being processed goes back to pending too: the processor's write is fenced on its claim (status
  -- 'processing', claimed_by, claim_token) and changes nothing, and the changed order is validated again.
end
$$;
