-- The functions through which users change agent state (20251229000100) write columns the derived-column guards
-- protect (20251229400100): a touch on a clock, a queue entry sent back to validation or withdrawn, a credit override.
-- Like the product's other writers, each runs with hourglass.derived_write = 'on' for exactly its own duration.
alter function hourglass.record_engagement_touch(uuid, text, uuid, text, text, uuid) set hourglass.derived_write = 'on';
alter function public.complete_touch_card(uuid, text, text) set hourglass.derived_write = 'on';
alter function public.set_clock_frequency(uuid, text, uuid, integer) set hourglass.derived_write = 'on';
alter function public.resolve_order_exception(uuid, text, text, text) set hourglass.derived_write = 'on';
alter function public.override_order_credit(uuid, text, text) set hourglass.derived_write = 'on';

-- Signed-in users no longer update the guarded tables (20251229000100), so the guards' refusal helper is the owner's.
revoke execute on function hourglass.refuse_derived_write(text, text[], text, text) from authenticated;
