-- Recording a touch never moves a clock's last touch back (issue 15, the upsert audit in docs/schema.md).
-- update_engagement_clock's upsert set last_touch_at to now even when the clock held a later touch (one recorded by
-- record_touches with its own occurred_at, up to touch_future_skew_seconds ahead): the later touch, its type and who
-- made it were replaced by an earlier one, and the due date moved back with them. record_touches already keeps the
-- newer touch. Now every writer does: a touch older than the clock's last is counted (touch_count) but the clock keeps
-- its latest touch and the due date that follows from it. A trigger, so the rule holds for every function that records
-- touches, whoever redefines them; it fires only for a new touch (touch_count grows) that is older than the last.

create function hourglass.keep_latest_touch() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.last_touch_at := old.last_touch_at;
  new.last_touch_type := old.last_touch_type;
  new.last_touch_by := old.last_touch_by;
  new.last_card_id := old.last_card_id;
  new.recovered_at := old.recovered_at;
  new.next_touch_due := old.last_touch_at + pg_catalog.make_interval(days => new.touch_frequency_days);
  return new;
end
$$;
revoke execute on function hourglass.keep_latest_touch() from public, anon, authenticated;

-- After engagement_clocks_derived_guard (which sees the writer's own values), before engagement_clocks_override.
create trigger engagement_clocks_keep_latest_touch before update on public.engagement_clocks
  for each row when (new.last_touch_at < old.last_touch_at and new.touch_count > old.touch_count)
  execute function hourglass.keep_latest_touch();
