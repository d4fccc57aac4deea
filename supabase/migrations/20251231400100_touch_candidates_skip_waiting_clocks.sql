-- An out-of-office reply's return date holds the contact's next touch (docs/inbound.md): the touch queue skips a clock
-- whose waiting_until is still ahead. The clock's compliance is not changed by the wait: a contact away past its due date
-- is overdue, and the queue and the status say why nothing is planned for it.
create or replace function hourglass.touch_candidates(p_tenant_id uuid, p_limit integer, p_skip_open boolean)
 RETURNS TABLE(clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text, days_overdue integer, next_touch_due timestamp with time zone, priority_score numeric, priority_reason text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_zone text;
  v_floor numeric;
begin
  v_now := hourglass.now();
  if not exists (select 1 from public.client_patterns p where p.tenant_id = p_tenant_id and p.pattern_type = 'best_time' and p.is_active) then
    return query
    select c.id, c.entity_type, c.entity_id, a.id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (c.waiting_until is null or c.waiting_until <= v_now)
      and (not p_skip_open or (not exists (
        select 1 from public.cards o
        where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
          and o.kind in ('touch_task', 'approval') and o.status = 'open')
        and not exists (
        select 1 from public.message_outbox m
        where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
    order by c.priority_score desc, c.next_touch_due, c.id
    limit p_limit;
    return;
  end if;

  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  -- The N-th stored priority among the candidates; nothing below it by more than the bonus can reach the top N.
  select c.priority_score into v_floor
  from public.engagement_clocks c
  where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (c.waiting_until is null or c.waiting_until <= v_now)
    and (not p_skip_open or (not exists (
      select 1 from public.cards o
      where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
        and o.kind in ('touch_task', 'approval') and o.status = 'open')
      and not exists (
      select 1 from public.message_outbox m
      where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
  order by c.priority_score desc
  offset p_limit - 1 limit 1;

  return query
  select x.id, x.entity_type, x.entity_id, x.account_id, x.owner_user_id, x.compliance_status, x.days_overdue, x.next_touch_due,
         x.priority_score + x.bonus,
         case when x.bonus > 0 then pg_catalog.concat_ws('; ', x.priority_reason, pg_catalog.format('best time to reach now (+%s)', x.bonus))
              else x.priority_reason end
  from (
    select c.id, c.entity_type, c.entity_id, a.id as account_id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason,
           case when bt.pattern_data -> 'best_slots' @> pg_catalog.to_jsonb(
                       (extract(isodow from v_now at time zone coalesce(k.timezone, a.timezone, v_zone, 'UTC'))::integer - 1) * 24
                       + extract(hour from v_now at time zone coalesce(k.timezone, a.timezone, v_zone, 'UTC'))::integer)
                then 20 else 0 end as bonus
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    left join public.client_patterns bt on bt.tenant_id = c.tenant_id and bt.entity_type = c.entity_type and bt.entity_id = c.entity_id
      and bt.pattern_type = 'best_time' and bt.is_active
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (c.waiting_until is null or c.waiting_until <= v_now)
      and c.priority_score >= coalesce(v_floor - 20, '-infinity'::numeric)
      and (not p_skip_open or (not exists (
        select 1 from public.cards o
        where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
          and o.kind in ('touch_task', 'approval') and o.status = 'open')
        and not exists (
        select 1 from public.message_outbox m
        where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
  ) x
  order by x.priority_score + x.bonus desc, x.next_touch_due, x.id
  limit p_limit;
end
$function$;

-- Delivery events name a message by the provider's id when they carry no Hourglass id (docs/inbound.md, matching).
create index idx_message_outbox_tenant_provider_message on public.message_outbox (tenant_id, provider_message_id)
  where provider_message_id is not null;
