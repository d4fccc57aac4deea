-- What the world answered, per day (docs/inbound.md, "Seeing it"): the dashboard's and status's counts of deliveries,
-- bounces, complaints, unsubscribes and replies, from message_delivery_events, in the tenant's time zone. A reply's
-- label decides what it counts as: an out-of-office answer is not a reply, an unsubscribe in words is an unsubscribe,
-- a bounce told in words is a soft bounce. Events skipped (no message of the tenant matched) are counted apart.
-- Also: the one-click unsubscribe link (docs/unsubscribe.md) records its opt-out on the message's history, as source
-- 'one_click'.

alter table public.message_delivery_events drop constraint message_delivery_events_source_check;
alter table public.message_delivery_events add constraint message_delivery_events_source_check
  check (source in ('hourglass', 'resend', 'postmark', 'sendgrid', 'imap', 'simulator', 'one_click'));

create function public.inbound_event_trends(p_tenant_id uuid, p_days integer default 30)
returns table (day date, delivered bigint, bounces_hard bigint, bounces_soft bigint, complaints bigint, unsubscribes bigint,
               replies bigint, out_of_office bigint, skipped bigint)
language plpgsql stable set search_path = ''
as $$
#variable_conflict use_column
declare
  v_zone text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'inbound_event_trends');
  if p_days is null or p_days < 1 or p_days > 366 then
    raise exception using errcode = '22023', message = pg_catalog.format('inbound_event_trends: p_days must be between 1 and 366 (got %s)', p_days);
  end if;
  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  return query
  select (e.occurred_at at time zone coalesce(v_zone, 'UTC'))::date,
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'delivered'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'bounce_hard'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and (e.event_type = 'bounce_soft' or e.reply_label = 'bounce_notice')),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'complaint'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and (e.event_type = 'unsubscribe' or e.reply_label = 'unsubscribe_request')),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'reply'
                                       and e.reply_label is distinct from 'out_of_office' and e.reply_label is distinct from 'unsubscribe_request'
                                       and e.reply_label is distinct from 'bounce_notice'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.reply_label = 'out_of_office'),
         pg_catalog.count(*) filter (where e.effect = 'skipped')
  from public.message_delivery_events e
  where e.tenant_id = p_tenant_id and e.occurred_at >= hourglass.now() - pg_catalog.make_interval(days => p_days)
  group by 1
  order by 1;
end
$$;
revoke execute on function public.inbound_event_trends(uuid, integer) from public, anon;
grant execute on function public.inbound_event_trends(uuid, integer) to authenticated, service_role;
insert into hourglass.function_capabilities (function_name, capability) values ('inbound_event_trends', 'read');
