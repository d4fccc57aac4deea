-- The order processor's writes, cheaper (docs/orders.md, docs/benchmarks.md "orders").
--
-- The processor's own updates of orders and order lines (the host status, fixed totals, a filled ship-to, a repriced
-- line) run with hourglass.order_processor = 'on' in their transaction, and hourglass.enqueue_order returns at once
-- on it. The row triggers still fired for each of those rows: an after-trigger event queued per row, and two plpgsql
-- calls to find out there was nothing to do. Their WHEN condition now skips them for those writes, when the row
-- changes rather than at the end of the statement; every other insert, update or delete queues the order as before.

drop trigger orders_enqueue on public.orders;
create trigger orders_enqueue after insert or update of status, po_number, ship_to, requested_ship_date, currency, subtotal, total,
  shipping_amount, tax_amount, account_id on public.orders
  for each row when (pg_catalog.current_setting('hourglass.order_processor', true) is distinct from 'on')
  execute function hourglass.on_order_change();

drop trigger order_lines_enqueue on public.order_lines;
create trigger order_lines_enqueue after insert or update or delete on public.order_lines
  for each row when (pg_catalog.current_setting('hourglass.order_processor', true) is distinct from 'on')
  execute function hourglass.on_order_line_change();
