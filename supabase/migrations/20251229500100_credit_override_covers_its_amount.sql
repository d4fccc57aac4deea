-- A credit override is a person's word about an amount: "this order may go over the limit". Until now it stayed on
-- the queue entry when the order grew afterwards, so an override given for 1,000 passed the credit check of the same
-- order at 50,000. The entry now remembers the total the override was given for, and an order that grows past it
-- loses the override (recorded as an event): its credit is judged again, and a person may override again for the new
-- amount. An order that shrinks or stays the same keeps it.

alter table public.order_processing_queue add column credit_override_total numeric;
comment on column public.order_processing_queue.credit_override_total is
  'The order''s total when credit was overridden: an order that grows past it loses the override.';

update public.order_processing_queue q set credit_override_total = o.total
from public.orders o
where o.tenant_id = q.tenant_id and o.id = q.order_id and q.credit_override_by is not null and q.credit_override_total is null;

-- Whoever records an override (override_order_credit, or the service role by hand), the amount is the order's own.
create function hourglass.stamp_credit_override_total() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.credit_override_by is null then
    new.credit_override_total := null;
  elsif tg_op = 'INSERT' or new.credit_override_at is distinct from old.credit_override_at then
    new.credit_override_total := (select o.total from public.orders o where o.tenant_id = new.tenant_id and o.id = new.order_id);
  end if;
  return new;
end
$$;
revoke execute on function hourglass.stamp_credit_override_total() from public, anon, authenticated;

create trigger order_processing_queue_credit_override_total
  before insert or update of credit_override_by, credit_override_at, credit_override_total on public.order_processing_queue
  for each row execute function hourglass.stamp_credit_override_total();

-- An order that grows past the amount its override was given for loses the override.
create function hourglass.lapse_outgrown_credit_override() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_queue record;
begin
  select q.id, q.credit_override_by, q.credit_override_total into v_queue
  from public.order_processing_queue q
  where q.tenant_id = new.tenant_id and q.order_id = new.id and q.credit_override_by is not null and q.credit_override_total < new.total
  for update;
  if found then
    update public.order_processing_queue q
    set credit_override_by = null, credit_override_reason = null, credit_override_at = null, updated_at = hourglass.now()
    where q.id = v_queue.id;
    insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
    values (new.tenant_id, 'order_credit_override_lapsed', 'order', new.id,
            pg_catalog.jsonb_build_object('overridden_by', v_queue.credit_override_by, 'overridden_total', v_queue.credit_override_total,
                                          'total', new.total), 'hourglass', hourglass.now());
  end if;
  return null;
end
$$;
revoke execute on function hourglass.lapse_outgrown_credit_override() from public, anon, authenticated;

-- Named to run before orders_enqueue (AFTER triggers fire in name order), so the order is validated again without it.
create trigger orders_credit_override_lapses after update of total on public.orders
  for each row when (new.total > old.total) execute function hourglass.lapse_outgrown_credit_override();
